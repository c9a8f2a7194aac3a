"""GGUF files (llama.cpp, Ollama, LM Studio): one header walk, rows by ``pread``, blocks by ``gguf``.

The ``gguf`` package (llama.cpp's own gguf-py) supplies the format's tables:
value types, quantization types and their block layouts (``GGML_QUANT_SIZES``),
and the dequantizers (``gguf.quants.dequantize``). Its ``GGUFReader`` is not
used for the header: it builds a numpy view per array element, which takes
18 s for the 150k tokens and 280k merges of a Llama-3-sized vocabulary
(measured), while ``count`` promises header-only speed. This module walks the
same header once with ``struct`` and checks every length against the file size
before believing it, so a hostile count can neither loop nor allocate past the
file. Tensor data is then read by row ranges with positional reads and
dequantized chunk by chunk, never as a whole matrix.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from gguf import quants as gguf_quants
from gguf.constants import GGML_QUANT_SIZES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, GGMLQuantizationType, GGUFValueType

from ..core.dtypes import STORAGE, to_float32
from ..core.errors import CheckpointError
from .base import F32Array, F64Array, Format, TensorInfo, U8Array, column_bytes, columns_from_rows, into, pread_exact

__all__ = ["GGUFFile"]

SUPPORTED_VERSIONS = (2, GGUF_VERSION)  # v1 (2023) used 32-bit lengths; v2 and v3 share the little-endian layout
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_KEPT_ARRAY = 256  # longer metadata arrays (scores, merges, token types) are skipped, not stored
MAX_ARRAY_DEPTH = 4  # arrays of arrays are legal; deeper nesting is not a real file
TOKENS_KEY = "tokenizer.ggml.tokens"

SCALARS: dict[GGUFValueType, str] = {  # struct format of each fixed-size value type
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}

# Element types stored as plain numbers: read with numpy, no blocks.
PLAIN: dict[str, np.dtype] = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": STORAGE["BF16"],  # raw bits; values come from gguf.quants
    "F64": np.dtype("<f8"),
    "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
}
INTEGER = {"I8", "I16", "I32", "I64"}
COLUMN_GAP_BYTES = 4096  # a column range: whole rows are read when the bytes between rows' spans are at most this
COLUMN_BLOCK_BYTES = 4 * 2**20  # bytes of whole rows read per block for a column range
U64 = struct.Struct("<Q")
HEADER_BLOCK = 2**20  # the header is read in blocks of at least this many bytes


class Bytes(Protocol):
    """Where a GGUF file's bytes come from: this machine (``pread``) or the hub (ranged requests)."""

    size: int  # the file's length in bytes
    head: bytes  # its first bytes, already read (the header walk starts from them)
    block: int  # the header is read in blocks of at least this many bytes, doubling

    def read(self, offset: int, nbytes: int) -> U8Array: ...  # exactly ``nbytes`` at ``offset``, or CheckpointError

    def close(self) -> None: ...


class LocalBytes:
    """A file on this machine, read with positional reads."""

    block = HEADER_BLOCK
    head = b""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise CheckpointError(path, f"cannot read: {exc.strerror or exc}") from exc
        self.size = os.fstat(self.fd).st_size

    def read(self, offset: int, nbytes: int) -> U8Array:
        if self.fd < 0:
            raise CheckpointError(self.path, "the file is closed")
        return pread_exact(self.fd, nbytes, offset, self.path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _Header:
    """A cursor over the start of the file that refuses to read past its end.

    The bytes are read as the cursor needs them (in growing blocks), never mapped: the header walk
    touches the header and nothing else, whatever the file's size or the address space allowed, and
    over hf:// the same walk fetches the same bytes with ranged requests.
    """

    def __init__(self, source: Bytes, path: Path, keep_all: bool = False, data: bytes | None = None):
        self.source = source
        self.size = source.size
        self.data = source.head if data is None else data  # the file's first len(data) bytes
        self.path = path
        self.pos = 0
        self.keep_all = keep_all  # every array element, exact and strict: a tokenizer's arrays, read on demand
        self.strict_tokens = False  # tokenizer.ggml.tokens was read and every token is UTF-8

    def take(self, n: int) -> int:
        """Claim ``n`` bytes at the cursor; returns where they start."""
        start = self.pos
        self._need(n)
        self.pos = start + n
        return start

    def _need(self, n: int) -> None:
        """The ``n`` bytes at the cursor are in the file and in ``data``."""
        end = self.pos + n
        if end > self.size:
            raise CheckpointError(
                self.path, f"file ends early: the GGUF header needs bytes up to {end:,}, but the file has {self.size:,} (truncated?)"
            )
        if end > len(self.data):
            self._extend(end)

    def _extend(self, end: int) -> None:
        """Read on to at least byte ``end`` (doubling, so a long header costs few reads)."""
        have = len(self.data)
        want = min(self.size, max(end, 2 * have, self.source.block))
        self.data = self.data + self.source.read(have, want - have).tobytes()

    def unpack(self, fmt: str) -> Any:
        start = self.take(struct.calcsize(fmt))  # first: it may read more of the file into self.data
        return struct.unpack_from(fmt, self.data, start)[0]

    def raw_string(self) -> bytes:
        at = self.take(8)
        (n,) = U64.unpack_from(self.data, at)
        start = self.take(n)
        return self.data[start : start + n]

    def skip_string(self) -> None:
        at = self.take(8)
        (n,) = U64.unpack_from(self.data, at)
        self.take(n)

    def raw_strings(self, count: int) -> list[bytes]:
        """``count`` strings one after another (a vocabulary): ``raw_string``'s loop, its checks inlined."""
        out = []
        data, pos = self.data, self.pos
        for _ in range(count):
            if pos + 8 > len(data):
                self.pos = pos
                self._need(8)
                data = self.data
            (n,) = U64.unpack_from(data, pos)
            pos += 8
            if pos + n > len(data):
                self.pos = pos
                self._need(n)
                data = self.data
            out.append(data[pos : pos + n])
            pos += n
        self.pos = pos
        return out

    def name(self, what: str) -> str:
        raw = self.raw_string()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError(self.path, f"a {what} is not UTF-8 text ({raw[:40]!r})") from None

    def value(self, vtype: int, key: str, depth: int = 0) -> Any:
        """One metadata value; big arrays are walked over and returned as None."""
        kind = self._type(vtype, key)
        if kind in SCALARS:
            value = self.unpack(SCALARS[kind])
            return _shortest(value) if kind == GGUFValueType.FLOAT32 else value
        if kind == GGUFValueType.STRING:
            return self.raw_string().decode("utf-8", errors="replace")
        if depth >= MAX_ARRAY_DEPTH:
            raise CheckpointError(self.path, f"metadata {key!r} nests arrays more than {MAX_ARRAY_DEPTH} deep")
        return self._array(key, depth)

    def _array(self, key: str, depth: int) -> list[Any] | None:
        item = self._type(self.unpack("<I"), key)
        count = self.unpack("<Q")
        smallest = 8 if item == GGUFValueType.STRING else 12 if item == GGUFValueType.ARRAY else struct.calcsize(SCALARS[item])
        if count * smallest > self.size - self.pos:  # checked before walking: a hostile count cannot make us loop
            raise CheckpointError(
                self.path, f"metadata {key!r} claims {count:,} elements, more than the rest of the file can hold (truncated?)"
            )
        if self.keep_all:
            return self._whole_array(key, item, count, depth)
        keep = count <= MAX_KEPT_ARRAY
        if item == GGUFValueType.STRING and key == TOKENS_KEY:  # kept whole: token strings for display
            raws = self.raw_strings(count)
            try:
                tokens = [raw.decode("utf-8") for raw in raws]
                self.strict_tokens = True  # as metadata_array would read them: no need to read them again
            except UnicodeDecodeError:
                tokens = [raw.decode("utf-8", errors="backslashreplace") for raw in raws]
            return tokens
        if item == GGUFValueType.STRING and not keep:  # merges: walked, not decoded
            self.raw_strings(count)
            return None
        if item in SCALARS and item != GGUFValueType.BOOL:
            fmt = SCALARS[item]
            start = self.take(count * struct.calcsize(fmt))
            if not keep:
                return None
            values = list(struct.unpack_from(f"<{count}{fmt[1]}", self.data, start))
            return [_shortest(v) for v in values] if item == GGUFValueType.FLOAT32 else values
        values = [self.value(item, key, depth + 1) for _ in range(count)]
        return values if keep else None

    def _whole_array(self, key: str, item: GGUFValueType, count: int, depth: int) -> list[Any]:
        """Every element: strings as strict UTF-8, numbers exactly as stored (count already checked)."""
        if item == GGUFValueType.STRING:
            raws = self.raw_strings(count)
            try:
                return [raw.decode("utf-8") for raw in raws]
            except UnicodeDecodeError:
                i, raw = next((i, raw) for i, raw in enumerate(raws) if not _is_utf8(raw))
                raise CheckpointError(self.path, f"metadata {key!r} element {i:,} is not UTF-8 text ({raw[:40]!r})") from None
        if item in SCALARS:
            dtype = np.dtype(SCALARS[item])
            start = self.take(count * dtype.itemsize)
            return np.frombuffer(self.data, dtype=dtype, count=count, offset=start).tolist()
        return [self.value(item, key, depth + 1) for _ in range(count)]

    def _type(self, vtype: int, key: str) -> GGUFValueType:
        try:
            return GGUFValueType(vtype)
        except ValueError:
            raise CheckpointError(self.path, f"metadata {key!r} has unknown value type {vtype}") from None


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _shortest(value: float) -> float:
    """A float32 as the shortest decimal that rounds back to it (eps 0.07, not 0.07000000029802322)."""
    return float(str(np.float32(value)))


def _read_header(path: Path, source: Bytes) -> tuple[_Header, int, dict[str, Any], list[str] | None, list[TensorInfo], int, dict[str, int]]:
    """(the cursor, version, metadata, tokens, tensors, alignment, where each top-level array starts) from the header."""
    h = _Header(source, path)
    if h.unpack("<I") != GGUF_MAGIC:
        raise CheckpointError(path, "not a GGUF file (no GGUF magic)")
    version = h.unpack("<I")
    if version not in SUPPORTED_VERSIONS:
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        if swapped in SUPPORTED_VERSIONS:
            raise CheckpointError(path, f"big-endian GGUF (version {swapped}, byte-swapped) is not supported")
        old = " (its 32-bit lengths predate GGUF 2; convert the model again with a current llama.cpp)" if version == 1 else ""
        raise CheckpointError(path, f"GGUF version {version} is not supported; lmhead reads versions 2 and 3{old}")
    n_tensors = h.unpack("<Q")
    n_kv = h.unpack("<Q")
    if n_kv * 13 + n_tensors * 24 > h.size - h.pos:  # the smallest key/value and tensor entries
        claim = f"{n_kv:,} metadata entries and {n_tensors:,} tensors"
        raise CheckpointError(path, f"header claims {claim}, more than the file can hold (truncated?)")
    metadata: dict[str, Any] = {}
    tokens = None
    keys: set[str] = set()
    arrays: dict[str, int] = {}
    for _ in range(n_kv):
        key = h.name("metadata key")
        if key in keys:
            raise CheckpointError(path, f"metadata key {key!r} appears twice")
        keys.add(key)
        vtype = h.unpack("<I")
        if vtype == GGUFValueType.ARRAY:
            arrays[key] = h.pos  # read again, whole, only if asked (metadata_array)
        value = h.value(vtype, key)
        if key == TOKENS_KEY:  # kept apart from the metadata: it is the vocabulary, often 100k+ strings
            tokens = value if isinstance(value, list) and all(isinstance(t, str) for t in value) else None
        elif value is not None:
            metadata[key] = value
    entries = [_tensor_entry(h) for _ in range(n_tensors)]
    alignment = metadata.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or alignment & (alignment - 1):
        raise CheckpointError(path, f"general.alignment {alignment!r} is not a power of two")
    data_start = -(-h.pos // alignment) * alignment
    tensors = [_tensor_info(path, entry, data_start, alignment, h.size) for entry in entries]
    seen: set[str] = set()
    for info in tensors:
        if info.name in seen:
            raise CheckpointError(path, f"tensor {info.name!r} is listed twice")
        seen.add(info.name)
    return h, version, metadata, tokens, tensors, alignment, arrays


def _tensor_entry(h: _Header) -> tuple[str, tuple[int, ...], int, int]:
    name = h.name("tensor name")
    n_dims = h.unpack("<I")
    if n_dims > MAX_DIMS:
        raise CheckpointError(h.path, f"tensor {name!r} has {n_dims} dimensions; GGUF allows at most {MAX_DIMS}")
    at = h.take(8 * n_dims)
    dims = struct.unpack_from(f"<{n_dims}Q", h.data, at)
    raw_type = h.unpack("<I")
    offset = h.unpack("<Q")
    return name, dims, raw_type, offset


def _tensor_info(path: Path, entry: tuple[str, tuple[int, ...], int, int], data_start: int, alignment: int, size: int) -> TensorInfo:
    name, dims, raw_type, offset = entry
    try:
        qtype = GGMLQuantizationType(raw_type)
        block, type_size = GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise CheckpointError(path, f"tensor {name!r} has unknown type {raw_type} (newer than gguf's table?)") from None
    if dims and dims[0] % block:
        raise CheckpointError(path, f"tensor {name!r}: rows of {dims[0]} values do not divide into {qtype.name} blocks of {block}")
    numel = math.prod(dims)
    nbytes = numel // block * type_size
    if offset % alignment:
        raise CheckpointError(path, f"tensor {name!r} starts at data offset {offset:,}, not a multiple of the {alignment}-byte alignment")
    end = data_start + offset + nbytes
    if end > size:
        raise CheckpointError(path, f"tensor {name!r} runs to byte {end:,}, but the file has {size:,} bytes (truncated?)")
    # GGUF lists dimensions innermost first (ne[0] is contiguous); numpy and PyTorch list them outermost first.
    return TensorInfo(name=name, shape=tuple(reversed(dims)), dtype=qtype.name, nbytes=nbytes, file=path, offset=data_start + offset)


class GGUFFile:
    """One ``.gguf`` file opened read-only, a ``Reader``: header parsed, data read on demand by row ranges.

    Beyond the protocol it keeps ``tokens`` (``tokenizer.ggml.tokens``, the vocabulary a GGUF carries)."""

    format = Format.GGUF

    def __init__(self, path: Path, source: Bytes | None = None):
        self.path = path
        self._source = LocalBytes(path) if source is None else source
        try:
            h, self.version, self.metadata, self.tokens, self.tensors, self.alignment, self._arrays = _read_header(path, self._source)
        except CheckpointError:
            self._source.close()
            raise
        except (OSError, ValueError, struct.error, OverflowError) as exc:  # a failed read, a value out of range
            self._source.close()
            raise CheckpointError(path, f"not a valid GGUF file: {exc}") from exc
        self._header = h.data[: h.pos]  # kept: a tokenizer's arrays are walked again from these bytes, never read twice
        self._strict_tokens = h.strict_tokens  # the header walk's tokens are metadata_array's
        self.header_bytes = h.pos  # where the last tensor entry ends
        self.tensors.sort(key=lambda t: _offset(t))

    def array_keys(self) -> set[str]:
        """Metadata keys whose values are arrays (long ones are not kept in ``metadata``)."""
        return set(self._arrays)

    def metadata_array(self, key: str) -> list[Any]:
        """One metadata array in full (e.g. ``tokenizer.ggml.merges``), read from the file now.

        The header walk already checked its length against the file; it is walked again with the
        same bounds checks, strings decoded strictly as UTF-8 and numbers kept exactly.
        """
        if key not in self._arrays:
            raise CheckpointError(self.path, f"metadata {key!r} is not an array in this file")
        if key == TOKENS_KEY and self._strict_tokens and self.tokens is not None:
            return list(self.tokens)  # decoded strictly already, by the header walk
        try:
            h = _Header(self._source, self.path, keep_all=True, data=self._header)
            h.take(self._arrays[key])  # up to where the array starts
            values = h.value(GGUFValueType.ARRAY, key)
        except (OSError, ValueError, struct.error, OverflowError) as exc:
            raise CheckpointError(self.path, f"cannot read metadata {key!r}: {exc}") from exc
        return values

    def _qtype(self, info: TensorInfo) -> tuple[GGMLQuantizationType, int, int]:
        qtype = GGMLQuantizationType[info.dtype]
        block, type_size = GGML_QUANT_SIZES[qtype]
        return qtype, block, type_size

    def _row_bytes(self, info: TensorInfo) -> int:
        """Bytes per row of the first axis; rows of plain types are numbers, of quantized types whole blocks."""
        _, block, type_size = self._qtype(info)
        inner = math.prod(info.shape[1:])
        if inner % block:
            raise CheckpointError(self.path, f"{info.name}: rows of {inner} values cut through {info.dtype} blocks of {block}")
        return inner // block * type_size

    @contextmanager
    def stored_rows(self, info: TensorInfo, start: int, stop: int) -> Iterator[U8Array]:
        """Rows ``start:stop`` as stored, uint8 (rows, row_bytes): numbers for plain types, blocks for quantized ones."""
        row_bytes = self._row_bytes(info)
        yield self._source.read(_offset(info) + start * row_bytes, (stop - start) * row_bytes).reshape(stop - start, row_bytes)

    @contextmanager
    def stored_cols(self, info: TensorInfo, start: int, stop: int) -> Iterator[U8Array]:
        """Columns ``start:stop`` of a 2-D tensor as stored, uint8 (rows, span bytes): numbers for plain types,
        whole blocks for quantized ones (the range must not cut through a block)."""
        _, block, type_size = self._qtype(info)
        if len(info.shape) != 2:
            raise CheckpointError(self.path, f"{info.name}: columns of a {len(info.shape)}-D tensor")
        if not 0 <= start <= stop <= info.shape[1] or start % block or stop % block and stop != info.shape[1]:
            raise CheckpointError(self.path, f"{info.name}: columns {start}:{stop} cut through {info.dtype} blocks of {block}")
        row_bytes = self._row_bytes(info)
        base = _offset(info)

        def fill(buf: U8Array, offset: int) -> None:
            buf[:] = self._source.read(base + offset, buf.size)

        lo, hi = start // block * type_size, -(-stop // block) * type_size
        yield column_bytes(fill, info.shape[0], row_bytes, lo, hi, COLUMN_GAP_BYTES, COLUMN_BLOCK_BYTES)

    def read_rows_f64(self, info: TensorInfo, start: int, stop: int) -> F64Array:
        """Rows as float64: plain floats straight from their bytes (F64 stays exact), quantized ones dequantized."""
        if info.dtype in PLAIN and info.dtype not in INTEGER:
            with self.stored_rows(info, start, stop) as raw:
                rows = raw.view(PLAIN[info.dtype]).reshape((stop - start, *info.shape[1:]))
                return (to_float32(rows, info.dtype) if info.dtype in STORAGE else rows).astype(np.float64)  # BF16: raw bits
        return self.read_rows(info, start, stop).astype(np.float64)

    def read_cols(self, info: TensorInfo, start: int, stop: int) -> F32Array:
        """Columns of a 2-D tensor: GGUF stores whole rows (blocks run along them), so every row is read."""
        if len(info.shape) != 2:
            raise CheckpointError(self.path, f"{info.name}: columns of a {len(info.shape)}-D tensor")
        return columns_from_rows(self.read_rows, info, start, stop)

    def read_rows(self, info: TensorInfo, start: int, stop: int, out: F32Array | None = None) -> F32Array:
        """Rows ``start:stop`` as float32, into ``out`` when given; quantized blocks are dequantized for these rows only."""
        return into(out, self._rows(info, start, stop))

    def _rows(self, info: TensorInfo, start: int, stop: int) -> F32Array:
        if info.dtype in INTEGER:
            raise CheckpointError(self.path, f"{info.name}: type {info.dtype} is not a floating-point type")
        rows = stop - start
        if rows <= 0:
            return np.zeros((0, *info.shape[1:]), dtype=np.float32)
        if info.dtype == "F64":  # not in gguf.quants' table
            with self.stored_rows(info, start, stop) as raw:
                return raw.view(PLAIN["F64"]).reshape((rows, *info.shape[1:])).astype(np.float32)
        qtype, block, type_size = self._qtype(info)
        inner = math.prod(info.shape[1:])
        if inner % block == 0:  # the usual case: every row is whole blocks (plain types are blocks of one)
            row_bytes = inner // block * type_size
            raw = self._source.read(_offset(info) + start * row_bytes, rows * row_bytes).reshape(rows, row_bytes)
            values = self._dequantize(info, qtype, raw)  # (rows, row_bytes) uint8 -> (rows, inner) float32
        else:  # rows that cut through blocks (1-D tensors): read the covering blocks, then slice
            first, last = start * inner // block, -(-stop * inner // block)
            raw = self._source.read(_offset(info) + first * type_size, (last - first) * type_size)
            skip = start * inner - first * block
            values = self._dequantize(info, qtype, raw.reshape(1, -1)).reshape(-1)[skip : skip + rows * inner]
        return values.reshape((rows, *info.shape[1:])).astype(np.float32, copy=False)

    def _dequantize(self, info: TensorInfo, qtype: GGMLQuantizationType, raw: np.ndarray) -> np.ndarray:
        try:
            return gguf_quants.dequantize(raw, qtype)  # looked up on the module at call time (tests watch it)
        except NotImplementedError:
            raise CheckpointError(
                self.path, f"{info.name}: the gguf package cannot dequantize {qtype.name}, so its values cannot be read (only counted)"
            ) from None

    def close(self) -> None:
        self._source.close()


def _offset(info: TensorInfo) -> int:
    assert info.offset is not None  # every GGUF tensor has one (set in _tensor_info)
    return info.offset
