"""The S3 and Hypha servers the tests use really start, accept an upload and give it back."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def test_s3_server_roundtrip_through_s3hook(s3_server: Any, tmp_path: Path) -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id="imaging_s3")
    data = os.urandom(6 * 1024 * 1024)  # multipart-size upload
    src = tmp_path / "frame.bin"
    src.write_bytes(data)
    hook.load_file(str(src), key="fixtures/frame.bin", bucket_name="imaging", replace=True)
    assert hook.check_for_key("fixtures/frame.bin", bucket_name="imaging")
    obj = hook.get_key("fixtures/frame.bin", bucket_name="imaging")
    assert obj.get()["Body"].read() == data
    assert "fixtures/frame.bin" in hook.list_keys(bucket_name="imaging", prefix="fixtures/")


def test_s3_server_rejects_bad_signature(s3_server: Any) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    bad = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key="wrong",
        region_name="us-east-1",
        config=Config(signature_version="s3v4"),
    )
    with pytest.raises(ClientError):
        bad.list_objects_v2(Bucket="imaging")


def test_hypha_artifact_upload_and_download(hypha_server: Any, tmp_path: Path) -> None:
    import httpx
    from hypha_rpc import connect_to_server

    async def scenario() -> bytes:
        server = await connect_to_server(
            {"server_url": hypha_server.url, "token": hypha_server.root_token}
        )
        try:
            ws = "fixture-ws"
            await server.create_workspace(
                {"name": ws, "description": "fixture test", "persistent": True}, overwrite=True
            )
            am = await server.get_service("public/artifact-manager")
            coll = await am.create(
                type="collection",
                alias=f"{ws}/fixture-collection",
                manifest={"name": "fixture"},
                overwrite=True,
            )
            ds = await am.create(
                parent_id=coll.id,
                alias=f"{ws}/fixture-ds",
                type="dataset",
                manifest={"name": "ds"},
                stage=True,
                overwrite=True,
            )
            put_url = await am.put_file(ds.id, file_path="hello.txt")
            async with httpx.AsyncClient() as http:
                r = await http.put(put_url, content=b"hello hypha")
                r.raise_for_status()
            await am.commit(ds.id)
            get_url = await am.get_file(ds.id, file_path="hello.txt")
            async with httpx.AsyncClient() as http:
                r = await http.get(get_url)
                r.raise_for_status()
                return r.content
        finally:
            await server.disconnect()

    assert asyncio.run(scenario()) == b"hello hypha"
