"""safetensors and GGUF files on the Hugging Face Hub, read with HTTP range requests.

The same reader interface as a local file: ``tensors`` from the header (two ranged
requests: the 8-byte length, then the JSON), rows by one ranged request per chunk.
A GGUF file is read by ``gguf.GGUFFile`` itself over ``RemoteBytes``: its header walk
fetches the first 24 bytes, then the header in doubling blocks from 16 KiB, and rows
by one ranged request per chunk, as on disk.
Requests go through huggingface_hub's HTTP session (its headers, its token, its
proxy settings) to the file's ``resolve`` URL, pinned to one commit; a dropped
connection or a 5xx/429 answer is retried a few times, then reported in one line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.dtypes import STORAGE, to_float32
from ..core.errors import CheckpointError
from .base import F32Array, F64Array, Format, TensorInfo, U8Array, column_bytes, columns_from_rows, into
from .safetensors import bytes_per_row, float_dtype, header_length, numpy_dtype, parse_header

if TYPE_CHECKING:
    from .gguf import GGUFFile

RETRIES = 4  # after the first try
BACKOFF_S = 0.5  # doubled after each retry, at most MAX_BACKOFF_S
MAX_BACKOFF_S = 4.0
TIMEOUT_S = 60.0  # per request, without data
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
RECENT_READS = 2  # a value comparison reads the same rows of two tensors twice: as bytes, then as numbers
COLUMN_GAP_BYTES = 64 * 2**10  # a column range: rows whose spans lie closer than this are fetched whole (fewer requests)
COLUMN_BLOCK_BYTES = 16 * 2**20  # at most this much per ranged request when whole rows are fetched for a column range
COLUMN_WINDOW_BYTES = 32 * 2**20  # a column range is fetched as a window of up to this many bytes, kept for the next ranges
GGUF_PREFIX = 24  # magic, version, tensor count, key/value count: what every GGUF header starts with
GGUF_HEADER_BLOCK = 16 * 2**10  # the first block of a GGUF header after its prefix; doubled as the walk needs more
COLUMN_WINDOWS = 3  # windows kept: one per tensor a chunk of GPTQ / AWQ rows reads by columns (qweight, qzeros, scales)


class HubPath(PosixPath):
    """A file (or the repo root) on the hub: ``hf://org/name[@rev]/file``; never opened as a local path."""

    def __str__(self) -> str:
        return "hf://" + super().__str__()

    def __repr__(self) -> str:
        return f"HubPath({str(self)!r})"


class HubFiles:
    """Ranged reads of one repo's files at one commit, counting the bytes fetched."""

    def __init__(self, repo_id: str, commit: str, endpoint: str, root: HubPath, library_version: str | None = None):
        from huggingface_hub.utils import build_hf_headers

        self.repo_id = repo_id
        self.commit = commit
        self.endpoint = endpoint
        self.root = root
        self.headers = build_hf_headers(library_name="lmhead", library_version=library_version)
        self.headers["Accept-Encoding"] = "identity"  # byte ranges of the stored file, never of a compressed one
        self.bytes_fetched = 0
        self.requests = 0

    def fetched(self) -> int:
        return self.bytes_fetched

    def url(self, filename: str) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(self.repo_id, filename, revision=self.commit, endpoint=self.endpoint)

    def name(self, path: Path) -> str:
        """The file's path in the repo (``Q4_K_M/model.gguf``), from its ``hf://`` path under the root."""
        return "/".join(path.parts[len(self.root.parts) :])

    def fetch(self, path: Path, offset: int, nbytes: int) -> tuple[np.ndarray, int]:
        """``nbytes`` at ``offset`` of the file, as uint8, and the file's size; retried, then one clear error."""
        delay = BACKOFF_S
        failure = ""
        for attempt in range(RETRIES + 1):
            if attempt:
                time.sleep(delay)
                delay = min(2 * delay, MAX_BACKOFF_S)
            try:
                return self._fetch_once(path, offset, nbytes)
            except _Retry as exc:
                failure = str(exc)
        raise CheckpointError(
            path,
            f"reading bytes {offset:,}–{offset + nbytes - 1:,} failed after {RETRIES + 1} tries: {failure}",
            hint="check the network (and HF_ENDPOINT), then run the command again",
        )

    def _fetch_once(self, path: Path, offset: int, nbytes: int) -> tuple[np.ndarray, int]:
        import httpx2
        from huggingface_hub.utils import get_session

        headers = {**self.headers, "Range": f"bytes={offset}-{offset + nbytes - 1}"}
        buf = np.empty(nbytes, dtype=np.uint8)
        view = buf.data
        got = 0
        self.requests += 1
        try:
            with get_session().stream(
                "GET", self.url(self.name(path)), headers=headers, timeout=TIMEOUT_S, follow_redirects=True
            ) as response:
                if response.status_code in RETRY_STATUSES:
                    raise _Retry(f"the server answered {response.status_code}")
                if response.status_code != 206:
                    response.read()
                    raise_for_hub_status(response, path, self.endpoint, self.repo_id)
                    raise CheckpointError(
                        path,
                        f"the server answered {response.status_code} instead of the {nbytes:,} bytes asked for (it ignores range requests)",
                    )
                size = _check_content_range(response.headers.get("Content-Range"), offset, nbytes, path)
                for piece in response.iter_raw():
                    take = min(len(piece), nbytes - got)
                    view[got : got + take] = piece[:take]
                    got += take
                    self.bytes_fetched += take
                    if got == nbytes:
                        break  # a server answering more than asked: the rest is not read
        except httpx2.TransportError as exc:
            raise _Retry(f"{type(exc).__name__}: {exc or 'connection lost'} after {got:,} of {nbytes:,} bytes") from exc
        if got < nbytes:
            raise _Retry(f"the connection ended after {got:,} of {nbytes:,} bytes")
        return buf, size


class _Retry(Exception):
    """A failure worth another try: a dropped connection, a short body, a 5xx or 429."""


def _check_content_range(header: str | None, offset: int, nbytes: int, path: Path) -> int:
    """The file size from ``bytes a-b/size``; refused unless the answer starts where asked and covers the range."""
    try:
        unit, _, rest = (header or "").partition(" ")
        span, _, size = rest.partition("/")
        first, _, last = span.partition("-")
        start, end, total = int(first), int(last), int(size)
    except ValueError:
        raise CheckpointError(path, f"the server answered a range without a valid Content-Range ({header!r})") from None
    if unit == "bytes" and start == offset and total < offset + nbytes:
        raise CheckpointError(path, f"the file has {total:,} bytes, but bytes up to {offset + nbytes:,} were needed (truncated?)")
    if unit != "bytes" or start != offset or end < offset + nbytes - 1:
        raise CheckpointError(path, f"asked for bytes {offset}–{offset + nbytes - 1}, the server sent {header!r}")
    return total


def raise_for_hub_status(response: Any, path: Path | str, endpoint: str, repo_id: str) -> None:
    """huggingface_hub's reading of an error answer, turned into lmhead's one line (never the token)."""
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import hf_raise_for_status

    try:
        hf_raise_for_status(response)
    except HfHubHTTPError as exc:
        raise hub_error(exc, path, endpoint, repo_id) from None


def hub_errors() -> tuple[type[Exception], ...]:
    """What a request through huggingface_hub raises when the hub, the network or the cache says no."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled

    return (HfHubHTTPError, OfflineModeIsEnabled, HFValidationError, httpx2.HTTPError, OSError)


def hub_error(exc: Exception, path: Path | str, endpoint: str, repo_id: str) -> CheckpointError:
    """One line for each way the hub says no: gated, private or missing, no such revision or file, down."""
    import httpx2
    from huggingface_hub import get_token
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    authenticated = get_token() is not None
    login = "run `hf auth login`, or set HF_TOKEN to an access token"
    if isinstance(exc, GatedRepoError):
        reason = f"{repo_id} is a gated repo: " + (
            "the token in use has not been granted access" if authenticated else "reading its files needs an authenticated account"
        )
        return CheckpointError(path, reason, hint=f"accept its conditions at {endpoint}/{repo_id}, then {login}")
    if isinstance(exc, RevisionNotFoundError):
        return CheckpointError(path, f"the repo has no such revision (branch, tag or commit) on {endpoint}")
    if isinstance(exc, RemoteEntryNotFoundError):
        return CheckpointError(path, f"the repo has no such file on {endpoint}")
    if isinstance(exc, RepositoryNotFoundError):
        reason = f"no repo {repo_id} on {endpoint}, or it is private" + (" and the token in use cannot read it" if authenticated else "")
        return CheckpointError(path, reason, hint=f"check the name; for a private repo, {login}")
    if isinstance(exc, OfflineModeIsEnabled):
        return CheckpointError(path, "HF_HUB_OFFLINE is set, and reading a repo from the hub needs the network")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "an error"
        if status in (401, 403):
            return CheckpointError(path, f"the hub refused access ({status}): the repo may be private or gated", hint=login)
        if status == 404:
            return CheckpointError(path, "the hub answered 404: no such file at this revision")
        return CheckpointError(path, f"the hub answered {status}", hint="the hub may be down; try again later")
    if isinstance(exc, httpx2.HTTPError):
        return CheckpointError(path, f"cannot reach {endpoint}: {type(exc).__name__}: {exc}", hint="check the network and HF_ENDPOINT")
    if isinstance(exc, OSError):
        reason = f"cannot store it in the Hugging Face cache: {exc.strerror or exc}"
        return CheckpointError(path, reason, hint="check HF_HOME / HF_HUB_CACHE")
    return CheckpointError(path, f"{type(exc).__name__}: {exc}")


class RemoteBytes:
    """One file on the hub as the byte source of a ``GGUFFile`` (``gguf.Bytes``): ranged requests, counted."""

    block = GGUF_HEADER_BLOCK

    def __init__(self, path: Path, files: HubFiles):
        self.path = path
        self.files = files
        prefix, self.size = files.fetch(path, 0, GGUF_PREFIX)  # the answer's Content-Range gives the size
        self.head = prefix.tobytes()

    def read(self, offset: int, nbytes: int) -> U8Array:
        if nbytes <= 0:
            return np.empty(0, dtype=np.uint8)
        return self.files.fetch(self.path, offset, nbytes)[0]

    def close(self) -> None:
        pass


def open_remote_gguf(path: Path, files: HubFiles) -> GGUFFile:
    """A ``GGUFFile`` over the hub's copy of ``path``: the same header walk and rows as on disk."""
    from .gguf import GGUFFile

    return GGUFFile(path, RemoteBytes(path, files))


class RemoteSafetensors:
    """One ``.safetensors`` file on the hub: the header read at open, rows on demand (``base.Reader``)."""

    def __init__(self, path: HubPath, files: HubFiles):
        self._path = path
        self._files = files
        self._recent: dict[tuple[int, int, int], U8Array] = {}  # the last reads: bytes compared first, then widened
        self._windows: dict[int, tuple[int, int, U8Array]] = {}  # tensor offset -> (first, last column, bytes) fetched
        self._metadata, self._tensors = self._read_header()

    @property
    def path(self) -> Path:
        return self._path

    @property
    def format(self) -> Format:
        return Format.SAFETENSORS

    @property
    def tensors(self) -> list[TensorInfo]:
        return self._tensors

    @property
    def metadata(self) -> dict[str, Any]:
        return self._metadata

    def _read_header(self) -> tuple[dict[str, str], list[TensorInfo]]:
        prefix, size = self._files.fetch(self.path, 0, 8)
        length = header_length(prefix.tobytes(), size, self.path)
        raw, _ = self._files.fetch(self.path, 8, length)
        return parse_header(raw.tobytes(), size, self.path)

    def _stored(self, info: TensorInfo, start: int, stop: int) -> U8Array:
        """Rows ``start:stop`` as stored bytes, (stop - start, row_bytes): one ranged request."""
        row_bytes = bytes_per_row(info, self.path)
        assert info.offset is not None  # safetensors data always has a place
        key = (info.offset, start, stop)
        buf = self._recent.get(key)
        if buf is None:
            nbytes = (stop - start) * row_bytes
            buf = self._files.fetch(self.path, info.offset + start * row_bytes, nbytes)[0] if nbytes else np.empty(0, np.uint8)
            self._recent = {**dict(list(self._recent.items())[-(RECENT_READS - 1) :]), key: buf}
        return buf.reshape(stop - start, row_bytes)

    def _typed(self, info: TensorInfo, start: int, stop: int) -> np.ndarray:
        return self._stored(info, start, stop).view(float_dtype(info, self.path)).reshape((stop - start, *info.shape[1:]))

    @contextmanager
    def stored_rows(self, info: TensorInfo, start: int, stop: int) -> Iterator[U8Array]:
        yield self._stored(info, start, stop)

    @contextmanager
    def stored_cols(self, info: TensorInfo, start: int, stop: int) -> Iterator[U8Array]:
        """Columns of a 2-D tensor as stored, uint8 (rows, (stop - start) * itemsize).

        Chunks of head rows ask for consecutive column ranges (GPTQ's and AWQ's words run along the input
        dimension), and a request per stored row per chunk would be thousands of requests: a window of columns
        up to ``COLUMN_WINDOW_BYTES`` (the whole tensor when it fits; whole rows when what is left of each row
        is under ``COLUMN_GAP_BYTES``) is fetched instead, one ranged request per row's span (or per block of
        whole rows), and the next ranges are cut from it. Every byte is fetched about once when the ranges
        come in order.
        """
        itemsize = numpy_dtype(info, self.path).itemsize
        if len(info.shape) != 2:
            raise CheckpointError(self.path, f"{info.name} has shape {list(info.shape)}; columns need a 2-D tensor")
        rows, cols = info.shape
        if not 0 <= start <= stop <= cols:
            raise CheckpointError(self.path, f"{info.name}: columns {start}:{stop} are outside its {cols}")
        assert info.offset is not None  # safetensors data always has a place
        base = info.offset
        window = self._windows.get(base)
        if window is None or not window[0] <= start <= stop <= window[1]:
            span = max(stop - start, COLUMN_WINDOW_BYTES // max(rows * itemsize, 1))  # columns a window spans
            first, last = start, min(cols, max(stop, start + span))
            if (cols - (last - first)) * itemsize <= COLUMN_GAP_BYTES:  # whole rows would be fetched anyway: keep them all
                first, last = 0, cols

            def fill(buf: U8Array, offset: int) -> None:
                buf[:] = self._files.fetch(self.path, base + offset, buf.size)[0]

            data = column_bytes(fill, rows, cols * itemsize, first * itemsize, last * itemsize, COLUMN_GAP_BYTES, COLUMN_BLOCK_BYTES)
            window = (first, last, data)
            others = [(key, kept) for key, kept in self._windows.items() if key != base]  # oldest first
            self._windows = {**dict(others[len(others) - (COLUMN_WINDOWS - 1) :]), base: window}
        first, _, data = window
        yield data[:, (start - first) * itemsize : (stop - first) * itemsize]

    def read_rows(self, info: TensorInfo, start: int, stop: int, out: F32Array | None = None) -> F32Array:
        rows = self._typed(info, start, stop)
        return into(out, to_float32(rows, info.dtype) if info.dtype in STORAGE else rows.astype(np.float32))  # bf16/fp8: raw bits

    def read_rows_f64(self, info: TensorInfo, start: int, stop: int) -> F64Array:
        rows = self._typed(info, start, stop)
        return (to_float32(rows, info.dtype) if info.dtype in STORAGE else rows).astype(np.float64)

    def read_cols(self, info: TensorInfo, start: int, stop: int) -> F32Array:
        """Columns of a 2-D tensor: over HTTP every row is read (in chunks), as for a format that stores rows."""
        if len(info.shape) != 2:
            raise CheckpointError(self.path, f"{info.name} has shape {list(info.shape)}; columns need a 2-D tensor")
        return columns_from_rows(self.read_rows, info, start, stop)

    def close(self) -> None:
        self._recent = {}
        self._windows = {}
