"""A local fake of the Roboflow REST API, for tests, the benchmark and the demo.

It serves the endpoints the real ``roboflow`` SDK 1.7.3 calls (point the SDK at it with the
``API_URL`` environment variable / the connection's ``extra.api_url``):

* ``POST /?api_key=K`` → ``{"workspace": ws}`` (401 for a wrong key)
* ``GET /{ws}`` → ``{"workspace": {"name", "url", "projects": [...]}}``
* ``GET /{ws}/{project}`` → ``{"workspace": ..., "project": {..., "images": N, "splits": {...}}}``
  (the project's image count used to verify uploads)
* ``POST /{ws}/projects`` (JSON ``name``, ``type``, ``license``, ``annotation``) → the project
* ``POST /dataset/{project}/upload?api_key=&batch=&tag=...`` multipart ``name``, ``split``, ``file``
  → ``{"success": true, "id"}``; an image whose content (sha256) is already in the project gives
  ``{"duplicate": true, "id"}`` like the real API (nothing is stored twice)
* ``POST /dataset/{project}/annotate/{image_id}?api_key=&name=&jobName=`` JSON
  ``{"annotationFile", "labelmap"}`` → ``{"success": true}``; a second, different annotation without
  ``overwrite=true`` gives 409 ``already annotated`` (the SDK turns that into a warning)

Faults, configurable per server (and over HTTP with ``POST /_fake/config``):

* ``latency_s`` added to every request;
* ``script``: per image file name, a list of faults applied to its successive upload requests:
  ``"503"``, ``"429"`` (with ``Retry-After``), ``"timeout"`` (answer after ``timeout_s``, nothing
  stored), ``"lost"`` (store the image, then answer 503: the client sees a failure, the retry
  gets ``duplicate``), ``"lost_timeout"`` (store, then answer too late), ``"drop"`` (answer
  success — to the upload and to its annotation — but store nothing: the silent loss the image-count
  check must catch), ``"annotate_503"``;
* ``rates``: the same faults drawn at random (seeded) for requests without a script entry;
* ``rate_limit_per_s``: a real sliding-window limiter answering 429 beyond that many uploads/s.

``GET /_fake/{ws}/{project}`` reports what the server holds (names, per-name stored count, upload
requests, duplicates) so tests can prove that nothing was lost and nothing stored twice.

Run stand-alone: ``python -m tests.fakes.roboflow_server --port 9400 --project demo``.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import hashlib
import json
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_API_KEY = "demo-api-key"
DEFAULT_WORKSPACE = "demo-workspace"

_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"RIFF", b"GIF8")


@dataclass
class FakeImage:
    id: str
    name: str
    split: str
    batch: str
    tags: list[str]
    sha256: str
    size: int
    annotation: str | None = None
    annotation_name: str | None = None


@dataclass
class FakeProject:
    slug: str
    name: str
    type: str = "object-detection"
    annotation: str = "objects"
    classes: dict[str, int] = field(default_factory=dict)
    images: dict[str, FakeImage] = field(default_factory=dict)  # id -> image
    by_hash: dict[str, str] = field(default_factory=dict)  # sha256 -> id
    upload_requests: int = 0
    duplicates: int = 0
    stored_per_name: dict[str, int] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)

    def info(self, workspace: str) -> dict[str, Any]:
        splits: dict[str, int] = {}
        for img in self.images.values():
            splits[img.split] = splits.get(img.split, 0) + 1
        return {
            "id": f"{workspace}/{self.slug}",
            "name": self.name,
            "type": self.type,
            "annotation": self.annotation,
            "classes": dict(self.classes),
            "colors": {},
            "created": 1700000000,
            "updated": 1700000000,
            "images": len(self.images),
            "unannotated": sum(1 for i in self.images.values() if i.annotation is None),
            "public": False,
            "splits": splits,
            "versions": 0,
        }


class _Fault(Exception):
    pass


class FakeRoboflowServer:
    """The fake API in a background thread: ``with FakeRoboflowServer() as srv: srv.url``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        workspace: str = DEFAULT_WORKSPACE,
        projects: tuple[str, ...] = (),
        latency_s: float = 0.0,
        timeout_s: float = 3.0,
        seed: int = 0,
    ) -> None:
        self.api_key = api_key
        self.workspace = workspace
        self.latency_s = latency_s
        self.timeout_s = timeout_s
        self.script: dict[str, list[str]] = {}
        self.rates: dict[str, float] = {}
        self.rate_limit_per_s: float | None = None
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._recent: deque[float] = deque()
        self.projects: dict[str, FakeProject] = {}
        for p in projects:
            self.create_project(p)
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeRoboflowServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="fake-roboflow", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeRoboflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def airflow_connection(self, **extra: Any) -> dict[str, Any]:
        """The ``roboflow_default`` connection (JSON form) that points the hook here; ``extra``
        adds hook settings (``upload_timeout``, ``upload_workers``, ``retry_base``...)."""
        return {
            "conn_type": "roboflow",
            "password": self.api_key,
            "extra": {"workspace": self.workspace, "api_url": self.url, **extra},
        }

    def new_project(self, prefix: str = "proj") -> str:
        """Create a project with a name not used before in this server; returns its slug."""
        with self._lock:
            n = len(self.projects)
            while f"{prefix}-{n}" in self.projects:
                n += 1
            return self.create_project(f"{prefix}-{n}").slug

    # ------------------------------------------------------------ state & control
    def configure(
        self,
        *,
        latency_s: float | None = None,
        timeout_s: float | None = None,
        script: dict[str, list[str]] | None = None,
        rates: dict[str, float] | None = None,
        rate_limit_per_s: float | None = -1.0,
        seed: int | None = None,
    ) -> None:
        with self._lock:
            if latency_s is not None:
                self.latency_s = latency_s
            if timeout_s is not None:
                self.timeout_s = timeout_s
            if script is not None:
                self.script = {k: list(v) for k, v in script.items()}
            if rates is not None:
                self.rates = dict(rates)
            if rate_limit_per_s is None or rate_limit_per_s >= 0:
                self.rate_limit_per_s = rate_limit_per_s or None
            if seed is not None:
                self._rng = random.Random(seed)

    def reset(self) -> None:
        """Forget every project's images and every fault (projects stay)."""
        with self._lock:
            for slug in list(self.projects):
                p = self.projects[slug]
                self.projects[slug] = FakeProject(
                    slug=slug, name=p.name, type=p.type, annotation=p.annotation
                )
            self.script, self.rates, self.rate_limit_per_s = {}, {}, None
            self.latency_s = 0.0
            self._recent.clear()

    def create_project(
        self, name: str, type_: str = "object-detection", annotation: str = "objects"
    ) -> FakeProject:
        slug = "-".join(name.lower().split())
        with self._lock:
            if slug not in self.projects:
                self.projects[slug] = FakeProject(
                    slug=slug, name=name, type=type_, annotation=annotation
                )
            return self.projects[slug]

    def report(self, project: str) -> dict[str, Any]:
        with self._lock:
            p = self.projects[project]
            return {
                "images": len(p.images),
                "annotated": sum(1 for i in p.images.values() if i.annotation is not None),
                "names": sorted(i.name for i in p.images.values()),
                "stored_per_name": dict(p.stored_per_name),
                "upload_requests": p.upload_requests,
                "duplicates": p.duplicates,
                "dropped": list(p.dropped),
                "batches": sorted({i.batch for i in p.images.values()}),
                "by_name": {
                    i.name: {
                        "split": i.split,
                        "batch": i.batch,
                        "tags": i.tags,
                        "annotated": i.annotation is not None,
                    }
                    for i in p.images.values()
                },
            }

    def _next_fault(self, name: str, *, kinds: tuple[str, ...]) -> str | None:
        with self._lock:
            queue = self.script.get(name)
            if queue:
                if queue[0] in kinds:
                    return queue.pop(0)
                return None
            if name in self.script:  # scripted and exhausted: no random faults for it
                return None
            for kind in kinds:
                rate = self.rates.get(kind, 0.0)
                if rate and self._rng.random() < rate:
                    return kind
        return None

    def _rate_limited(self) -> bool:
        if not self.rate_limit_per_s:
            return False
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0] > 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.rate_limit_per_s:
                return True
            self._recent.append(now)
        return False

    # ------------------------------------------------------------ HTTP
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = (
                -1
            )  # one write per response (no Nagle/delayed-ACK stall between headers and body)
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _send(
                self, status: int, payload: Any, headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _dispatch(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = {k: v for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                segs = [s for s in parts.path.split("/") if s]
                body = self._body()
                if segs[:1] == ["_fake"]:
                    return self._control(method, segs[1:], body)
                if server.latency_s:
                    time.sleep(server.latency_s)
                key = (query.get("api_key") or [""])[0]
                if key != server.api_key:
                    return self._send(
                        401,
                        {
                            "error": {
                                "message": "This API key does not exist (or has been revoked).",
                                "type": "OAuthException",
                            }
                        },
                    )
                try:
                    if method == "POST" and not segs:
                        return self._send(
                            200,
                            {
                                "welcome": "Welcome to the Roboflow API.",
                                "workspace": server.workspace,
                            },
                        )
                    if segs and segs[0] == server.workspace:
                        return self._workspace(method, segs[1:], body)
                    if (
                        method == "POST"
                        and len(segs) == 3
                        and segs[0] == "dataset"
                        and segs[2] == "upload"
                    ):
                        return self._upload(segs[1], query, body)
                    if (
                        method == "POST"
                        and len(segs) == 4
                        and segs[0] == "dataset"
                        and segs[2] == "annotate"
                    ):
                        return self._annotate(segs[1], segs[3], query, body)
                except _Fault:
                    return
                return self._send(
                    404, {"error": {"message": f"Unsupported request {method} {parts.path}"}}
                )

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

            # -- control
            def _control(self, method: str, segs: list[str], body: bytes) -> None:
                if method == "POST" and segs == ["config"]:
                    server.configure(**json.loads(body or b"{}"))
                    return self._send(200, {"ok": True})
                if method == "POST" and segs == ["reset"]:
                    server.reset()
                    return self._send(200, {"ok": True})
                if (
                    method == "GET"
                    and len(segs) == 2
                    and segs[0] == server.workspace
                    and segs[1] in server.projects
                ):
                    return self._send(200, server.report(segs[1]))
                return self._send(404, {"error": {"message": "unknown control endpoint"}})

            # -- workspace & projects
            def _workspace(self, method: str, segs: list[str], body: bytes) -> None:
                ws = server.workspace
                with server._lock:
                    infos = [p.info(ws) for p in server.projects.values()]
                if method == "GET" and not segs:
                    return self._send(
                        200, {"workspace": {"name": ws, "url": ws, "members": 1, "projects": infos}}
                    )
                if method == "POST" and segs == ["projects"]:
                    data = json.loads(body or b"{}")
                    if not data.get("name"):
                        return self._send(400, {"error": {"message": "name is required"}})
                    p = server.create_project(
                        data["name"],
                        data.get("type", "object-detection"),
                        data.get("annotation", "objects"),
                    )
                    return self._send(200, p.info(ws))
                if method == "GET" and len(segs) == 1:
                    p = server.projects.get(segs[0])
                    if p is None:
                        return self._send(
                            404,
                            {
                                "error": {
                                    "message": f"Project {segs[0]} not found",
                                    "type": "GraphMethodException",
                                }
                            },
                        )
                    with server._lock:
                        info = p.info(ws)
                    return self._send(
                        200,
                        {
                            "workspace": {"name": ws, "url": ws, "members": 1},
                            "project": info,
                            "versions": [],
                        },
                    )
                return self._send(404, {"error": {"message": "not found"}})

            # -- uploads
            def _upload(self, slug: str, query: dict[str, list[str]], body: bytes) -> None:
                p = server.projects.get(slug)
                if p is None:
                    return self._send(404, {"error": {"message": f"Project {slug} not found"}})
                ctype = self.headers.get("Content-Type", "")
                msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
                )
                fields: dict[str, Any] = {}
                if msg.is_multipart():
                    for part in msg.iter_parts():
                        name = part.get_param("name", header="content-disposition")
                        fields[name] = part.get_payload(decode=True)
                name = (fields.get("name") or b"").decode() or (query.get("name") or [""])[0]
                split = (fields.get("split") or b"train").decode()
                data = fields.get("file")
                with server._lock:
                    p.upload_requests += 1
                if server._rate_limited():
                    return self._send(
                        429,
                        {"error": {"message": "Rate limit exceeded. Please slow down."}},
                        {"Retry-After": "1"},
                    )
                fault = server._next_fault(
                    name, kinds=("503", "429", "timeout", "lost", "lost_timeout", "drop")
                )
                if fault == "503":
                    return self._send(503, {"error": {"message": "Service Unavailable"}})
                if fault == "429":
                    return self._send(
                        429,
                        {"error": {"message": "Rate limit exceeded. Please slow down."}},
                        {"Retry-After": "1"},
                    )
                if fault == "timeout":
                    time.sleep(server.timeout_s)
                    return self._send(504, {"error": {"message": "Gateway Timeout"}})
                if not name or not data:
                    return self._send(400, {"error": {"message": "name and file are required"}})
                if split not in ("train", "valid", "test"):
                    return self._send(400, {"error": {"message": f"Invalid split {split!r}"}})
                if not data.startswith(_IMAGE_MAGIC):
                    return self._send(
                        400, {"error": {"message": "Invalid image: unsupported or corrupt file"}}
                    )
                sha = hashlib.sha256(data).hexdigest()
                with server._lock:
                    existing = p.by_hash.get(sha)
                    if existing is not None:
                        p.duplicates += 1
                        result: dict[str, Any] = {"duplicate": True, "id": existing}
                    elif fault == "drop":
                        p.dropped.append(name)
                        result = {"success": True, "id": "dropped" + sha[:14]}
                    else:
                        image_id = sha[:20]
                        p.images[image_id] = FakeImage(
                            id=image_id,
                            name=name,
                            split=split,
                            batch=(query.get("batch") or [""])[0],
                            tags=query.get("tag", []),
                            sha256=sha,
                            size=len(data),
                        )
                        p.by_hash[sha] = image_id
                        p.stored_per_name[name] = p.stored_per_name.get(name, 0) + 1
                        result = {"success": True, "id": image_id}
                if fault == "lost":
                    return self._send(503, {"error": {"message": "Service Unavailable"}})
                if fault == "lost_timeout":
                    time.sleep(server.timeout_s)
                    return self._send(504, {"error": {"message": "Gateway Timeout"}})
                return self._send(200, result)

            def _annotate(
                self, slug: str, image_id: str, query: dict[str, list[str]], body: bytes
            ) -> None:
                p = server.projects.get(slug)
                if p is None:
                    return self._send(404, {"error": {"message": f"Project {slug} not found"}})
                with server._lock:
                    img = p.images.get(image_id)
                if img is None and image_id.startswith("dropped"):
                    # the silent loss: the API acknowledges the annotation of the lost image too
                    return self._send(200, {"success": True})
                if img is None:
                    return self._send(404, {"error": {"message": f"Image {image_id} not found"}})
                if server._next_fault(img.name, kinds=("annotate_503",)):
                    return self._send(503, {"error": {"message": "Service Unavailable"}})
                try:
                    data = json.loads(body)
                    text = data["annotationFile"]
                    labelmap = data.get("labelmap") or {}
                    classes = _parse_yolo(text, labelmap)
                except (ValueError, KeyError, TypeError) as exc:
                    return self._send(400, {"error": {"message": f"Invalid annotation: {exc}"}})
                overwrite = (query.get("overwrite") or ["false"])[0] == "true"
                with server._lock:
                    if img.annotation is not None and img.annotation != text and not overwrite:
                        return self._send(409, {"error": {"message": "Image already annotated"}})
                    img.annotation = text
                    img.annotation_name = (query.get("name") or [""])[0]
                    for c in classes:
                        p.classes[c] = p.classes.get(c, 0) + 1
                return self._send(200, {"success": True})

        return Handler


_SHARED: FakeRoboflowServer | None = None


def shared_server() -> FakeRoboflowServer:
    """One fake server per test process (the SDK keeps its API URL process-wide)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = FakeRoboflowServer(timeout_s=1.5).start()
    return _SHARED


def _parse_yolo(text: str, labelmap: dict[str, str]) -> list[str]:
    """Class names of a YOLO txt annotation; raises ValueError when it is not one."""
    names: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 5:
            raise ValueError(f"line {n}: expected class and 4+ coordinates")
        cls = str(int(parts[0]))
        [float(x) for x in parts[1:]]
        names.append(labelmap.get(cls, cls))
    return names


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9400)
    ap.add_argument("--api-key", default=DEFAULT_API_KEY)
    ap.add_argument("--workspace", default=DEFAULT_WORKSPACE)
    ap.add_argument(
        "--project",
        action="append",
        default=[],
        help="project to create (repeatable; default: the demo's demo-dataset and demo-neither)",
    )
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    ap.add_argument(
        "--rates", default="{}", help='random faults, JSON e.g. {"503": 0.05, "429": 0.02}'
    )
    args = ap.parse_args(argv)
    srv = FakeRoboflowServer(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        workspace=args.workspace,
        projects=tuple(args.project or ("demo-dataset", "demo-neither")),
        latency_s=args.latency,
    )
    srv.configure(rates=json.loads(args.rates))
    print(
        json.dumps({"url": srv.url, "workspace": srv.workspace, "api_key": srv.api_key}), flush=True
    )
    try:
        srv._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv._httpd.server_close()


if __name__ == "__main__":
    main()
