"""The shared S3 store: the amazon provider's S3Hook does head / list / get / download."""

from __future__ import annotations

from typing import Any

from include.common.storage import S3Store, s3_store
from include.photos import storage as photo_storage


def test_store_uses_the_s3hook_against_a_real_server(s3_server: Any, tmp_path) -> None:
    store = s3_store("imaging_s3", "imaging")
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    assert isinstance(store.hook, S3Hook)
    store.put_bytes("shared/a/one.txt", b"1", "text/plain", {"who": "test"})
    store.put_bytes("shared/a/two.txt", b"22")
    assert store.head("shared/a/missing") is None and not store.exists("shared/a/missing")
    assert store.head("shared/a/one.txt")["ContentLength"] == 1
    assert store.list_keys("shared/a/") == ["shared/a/one.txt", "shared/a/two.txt"]
    assert store.get_bytes("shared/a/two.txt") == b"22"
    assert store.download("shared/a/two.txt", tmp_path).read_bytes() == b"22"
    # sizes with the keys (the design upload plans its batches from them)
    assert store.list_objects("shared/a/") == [("shared/a/one.txt", 1), ("shared/a/two.txt", 2)]
    # to an exact path, through a partial folder that does not stay behind; a rerun overwrites
    dest = tmp_path / "in" / "copy.bin"
    dest.parent.mkdir()
    for _ in range(2):
        assert store.download_to("shared/a/two.txt", dest).read_bytes() == b"22"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["copy.bin"]
    # the photo pipeline's storage calls go through the store (retries + breaker around them)
    # (a prefix of its own: the session's S3 server is shared with the photo e2e tests)
    key = "test-storage/thumbnails/x.jpg"
    assert photo_storage.put_once(store, "imaging", key, b"j", "image/jpeg") == "uploaded"
    assert photo_storage.head(store, "imaging", key) is not None
    assert photo_storage.list_keys(store, "imaging", "test-storage/thumbnails/") == [key]
    assert photo_storage.get_bytes(store, "imaging", key) == b"j"


class RecordingHook:
    """The S3Hook interface, recording calls (no raw boto3 head/list/download is made)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def head_object(self, key: str, bucket_name: str) -> None:
        self.calls.append(f"head_object {bucket_name}/{key}")

    def list_keys(self, bucket_name: str, prefix: str) -> list[str]:
        self.calls.append(f"list_keys {bucket_name}/{prefix}")
        return ["p/b", "p/a"]

    def get_conn(self) -> Any:
        raise AssertionError("head/list must not use the raw client")


def test_photo_storage_calls_the_hook_not_raw_boto3() -> None:
    hook = RecordingHook()
    store = S3Store(hook, "bkt")
    assert photo_storage.head(store, "bkt", "k") is None
    assert photo_storage.list_keys(store, "bkt", "p/") == ["p/a", "p/b"]
    assert hook.calls == ["head_object bkt/k", "list_keys bkt/p/"]
