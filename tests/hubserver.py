"""A fake Hugging Face Hub on 127.0.0.1 for tests: real HTTP, the hub's URL layout, no internet.

``FakeHub`` serves fixture folders as model repos. It runs two threaded HTTP
servers on free ports: the hub itself (point ``HF_ENDPOINT`` at ``hub.endpoint``)
and a "CDN" on another port that large files redirect to, as the real hub
redirects LFS files to a storage host (another origin: huggingface_hub does not
follow that redirect for HEAD, and httpx drops the Authorization header on it).

The endpoints implemented, and where huggingface_hub 2.4 calls each one, are listed in
tests/README.md ("The fake hub").

Errors answered as the hub answers them (``utils._http.hf_raise_for_status`` maps
them by ``X-Error-Code``): unknown repo ``404 RepoNotFound``, unknown revision
``404 RevisionNotFound``, unknown file ``404 EntryNotFound``, a gated repo's files
without an accepted token ``401 GatedRepo`` (its ``model_info`` stays public, as on
the hub), a private repo without the token ``401 RepoNotFound``.

Fault injection, per file name (``hub.faults[name] = Fault(...)``): drop the
connection after half the body (``drop``, for the first ``times`` ranged
requests), answer more bytes than the range asked (``extra``), ignore ``Range``
and send the whole file (``ignore_range``), or fail with a status (``status``).

Every body byte written is counted: ``hub.bytes_served(kind)`` where kind is
``"api"``, ``"json"`` (resolved non-LFS files) or ``"lfs"`` (the CDN), and each
request is logged in ``hub.log``.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".npz", ".npy", ".pt", ".pth")
VALID_TOKEN = "hf_fakehub_valid_token"


@dataclass
class Fault:
    drop: bool = False  # close the connection after half the body
    times: int = 10**9  # how many ranged requests the fault applies to
    extra: int = 0  # bytes past the asked range, announced in Content-Range
    ignore_range: bool = False
    status: int | None = None


@dataclass
class Repo:
    repo_id: str
    revisions: dict[str, Path]  # ref name -> folder
    gated: bool = False
    private: bool = False
    commits: dict[str, str] = field(default_factory=dict)  # ref -> commit sha

    def __post_init__(self) -> None:
        for ref, folder in self.revisions.items():
            digest = hashlib.sha1(f"{self.repo_id}@{ref}".encode())
            for file in sorted(folder.iterdir()):
                if file.is_file():
                    digest.update(file.name.encode() + file.read_bytes())
            self.commits[ref] = digest.hexdigest()

    def folder(self, revision: str) -> Path | None:
        if revision in self.revisions:
            return self.revisions[revision]
        for ref, sha in self.commits.items():
            if revision == sha:
                return self.revisions[ref]
        return None

    def commit(self, revision: str) -> str:
        return self.commits.get(revision, revision)


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int
    kind: str
    authorized: bool = False  # the request carried an Authorization header


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _is_lfs(name: str) -> bool:
    return name.endswith(LFS_SUFFIXES)


class FakeHub:
    """Start with ``with FakeHub() as hub:`` (or ``start()``/``stop()``); add repos with ``add_repo``."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, Path] = {}  # sha256 -> file (what the CDN serves)
        self.faults: dict[str, Fault] = {}
        self.log: list[Logged] = []
        self._lock = threading.Lock()
        self._hub = _Server(self, cdn=False)
        self._cdn = _Server(self, cdn=True)
        self._threads: list[threading.Thread] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_port}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_port}"

    def add_repo(
        self, repo_id: str, folder: Path, *, revisions: dict[str, Path] | None = None, gated: bool = False, private: bool = False
    ) -> Repo:
        repo = Repo(repo_id, {"main": Path(folder), **(revisions or {})}, gated=gated, private=private)
        for rev_folder in repo.revisions.values():
            for file in rev_folder.iterdir():
                if file.is_file() and _is_lfs(file.name):
                    self.blobs[hashlib.sha256(file.read_bytes()).hexdigest()] = file
        self.repos[repo_id] = repo
        return repo

    def record(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)

    def reset_counts(self) -> None:
        with self._lock:
            self.log.clear()

    def bytes_served(self, kind: str | None = None) -> int:
        with self._lock:
            return sum(e.body_bytes for e in self.log if kind is None or e.kind == kind)

    def requests(self, kind: str | None = None) -> list[Logged]:
        with self._lock:
            return [e for e in self.log if kind is None or e.kind == kind]

    def start(self) -> FakeHub:
        for server in (self._hub, self._cdn):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, hub: FakeHub, cdn: bool):
        self.hub = hub
        self.cdn = cdn
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return  # a client that closed early (a test that reads less than it was sent)
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    # ------------------------------------------------------------ plumbing

    @property
    def hub(self) -> FakeHub:
        return self.server.hub

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        self.method = method
        path = urlsplit(self.path).path
        try:
            if self.server.cdn:
                match = re.fullmatch(r"/cdn/([0-9a-f]{64})", path)
                if match and match[1] in self.hub.blobs:
                    self._send_file(self.hub.blobs[match[1]], "lfs", {})
                else:
                    self._error(404, "EntryNotFound", "no such blob", "lfs")
                return
            if path.startswith("/api/models/"):
                self._api(unquote(path[len("/api/models/") :]))
                return
            match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if match:
                self._resolve(unquote(match[1]), unquote(match[2]), unquote(match[3]))
                return
            self._error(404, None, "not found", "api")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _authorised(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {VALID_TOKEN}"

    def _send(self, status: int, body: bytes, headers: dict[str, str], kind: str) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        sent = 0 if self.method == "HEAD" else len(body)
        # logged before the body goes out: a client that has its bytes must find them counted
        self.hub.record(Logged(self.method, self.path, self.headers.get("Range"), status, sent, kind, "Authorization" in self.headers))
        if sent:
            self.wfile.write(body)

    def _json(self, data: object, headers: dict[str, str] | None = None) -> None:
        self._send(200, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})}, "api")

    def _error(self, status: int, code: str | None, message: str, kind: str, headers: dict[str, str] | None = None) -> None:
        extra = {"X-Error-Message": message, **(headers or {})}
        if code:
            extra["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), {"Content-Type": "application/json", **extra}, kind)

    def _repo(self, repo_id: str, kind: str, need_files: bool) -> Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and not self._authorised()):
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found", kind)
            else:
                self._error(401, "RepoNotFound", "Repository not found", kind)  # the hub does not say it exists
            return None
        if need_files and repo.gated and not self._authorised():
            self._error(
                401,
                "GatedRepo",
                f"Access to model {repo_id} is restricted. You must have access to it and be authenticated to access it. Please log in.",
                kind,
            )
            return None
        return repo

    # ------------------------------------------------------------ /api

    def _api(self, rest: str) -> None:
        match = re.fullmatch(r"([^/]+/[^/]+)(?:/(revision|tree|paths-info)/([^/]+)(/.*)?)?", rest)
        if not match:
            self._error(404, None, "not found", "api")
            return
        repo = self._repo(match[1], "api", need_files=False)
        if repo is None:
            return
        action, revision, sub = match[2], match[3] or "main", (match[4] or "").strip("/")
        folder = repo.folder(revision)
        if folder is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", "api")
            return
        files = sorted(p for p in folder.iterdir() if p.is_file())
        if action in (None, "revision") and self.method == "GET":
            self._json(
                {
                    "id": repo.repo_id,
                    "modelId": repo.repo_id,
                    "sha": repo.commit(revision),
                    "private": repo.private,
                    "gated": "manual" if repo.gated else False,
                    "disabled": False,
                    "tags": [],
                    "siblings": [{"rfilename": p.name} for p in files],
                }
            )
        elif action == "tree" and self.method == "GET":
            self._json([_entry(p) for p in files if not sub or p.name.startswith(sub + "/")])
        elif action == "paths-info" and self.method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            wanted = set(form.get("paths", []))
            self._json([_entry(p) for p in files if p.name in wanted])
        else:
            self._error(405, None, "method not allowed", "api")

    # ------------------------------------------------------------ /resolve

    def _resolve(self, repo_id: str, revision: str, filename: str) -> None:
        repo = self._repo(repo_id, "json", need_files=True)
        if repo is None:
            return
        folder = repo.folder(revision)
        if folder is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", "json")
            return
        commit = {"X-Repo-Commit": repo.commit(revision)}
        file = folder / filename
        if "/" in filename or not file.is_file():
            self._error(404, "EntryNotFound", f"{filename} does not exist on {revision}", "json", commit)
            return
        data = file.read_bytes()
        if _is_lfs(file.name):
            sha = hashlib.sha256(data).hexdigest()
            self._send(
                302,
                b"",
                {
                    **commit,
                    "Location": f"{self.hub.cdn}/cdn/{sha}",
                    "ETag": f'"{_git_oid(data)}"',
                    "X-Linked-Etag": f'"{sha}"',
                    "X-Linked-Size": str(len(data)),
                },
                "json",
            )
            return
        self._send_file(file, "json", {**commit, "ETag": f'"{_git_oid(data)}"'})

    def _send_file(self, file: Path, kind: str, headers: dict[str, str]) -> None:
        data = file.read_bytes()
        size = len(data)
        fault = self.hub.faults.get(file.name)
        requested = self.headers.get("Range")
        if fault is not None and requested and fault.times > 0 and self.method == "GET":
            fault.times -= 1
        else:
            fault = None
        if fault is not None and fault.status:
            self._error(fault.status, None, "injected failure", kind)
            return
        headers = {**headers, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if not requested or (fault is not None and fault.ignore_range):
            self._send(200, data, headers, kind)
            return
        span = _parse_range(requested, size)
        if span is None:
            self._error(416, None, f"Requested range not satisfiable: {requested}", kind, {"Content-Range": f"bytes */{size}"})
            return
        start, stop = span  # stop exclusive
        if fault is not None and fault.extra:
            stop = min(size, stop + fault.extra)
        body = data[start:stop]
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        if fault is not None and fault.drop:
            self._drop(body, headers, kind)
            return
        self._send(206, body, headers, kind)

    def _drop(self, body: bytes, headers: dict[str, str], kind: str) -> None:
        """Announce the whole body, send half of it, then close the connection."""
        self.send_response(206)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        half = body[: len(body) // 2]
        self.hub.record(Logged(self.method, self.path, self.headers.get("Range"), 206, len(half), kind))
        self.wfile.write(half)
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _entry(file: Path) -> dict[str, object]:
    data = file.read_bytes()
    entry: dict[str, object] = {"type": "file", "oid": _git_oid(data), "size": len(data), "path": file.name}
    if _is_lfs(file.name):
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return entry


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` -> (start, stop) with stop exclusive; None when unsatisfiable."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not match or (not match[1] and not match[2]):
        return None
    if not match[1]:
        n = int(match[2])
        return (max(0, size - n), size) if n else None
    start = int(match[1])
    stop = size if not match[2] else min(size, int(match[2]) + 1)
    if start >= size or stop <= start:
        return None
    return start, stop
