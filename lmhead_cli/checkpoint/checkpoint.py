"""The ``Checkpoint`` type: a checkpoint's tensors (from headers), config and tokenizer, and its rows on demand.

It spans one ``Reader`` per file (shards) and reads by tensor name through
them; it never asks which format a reader is. ``open.open_checkpoint`` makes one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import CheckpointError, NotDequantizable
from ..formats.base import F32Array, F64Array, Format, Reader, TensorInfo, U8Array, columns_from_rows, into

if TYPE_CHECKING:
    from ..formats.base import TokenizerMetadata
    from ..formats.remote import HubFiles
    from ..quant import QuantizedWeight, Scheme, Stored

__all__ = ["Checkpoint", "Format", "Reader", "TensorInfo"]


@dataclass
class Checkpoint:
    """Everything lmhead knows about a checkpoint before reading any tensor data.

    It spans one ``Reader`` per file (shards) and reads by tensor name through
    them; it never asks which format a reader is.
    """

    path: Path  # what the user named
    format: Format
    tensors: dict[str, TensorInfo]
    readers: dict[Path, Reader] = field(repr=False)
    config: dict[str, Any] | None = None
    config_path: Path | None = None
    tokenizer_path: Path | None = None
    index_path: Path | None = None
    index_metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    index_problems: list[str] = field(default_factory=list)  # index entries no shard backs
    unindexed: list[str] = field(default_factory=list)  # tensors in the shards the index does not name
    metadata: dict[str, Any] = field(default_factory=dict)  # GGUF key/values (its config), big arrays left out
    tokens: list[str] | None = None  # GGUF tokenizer.ggml.tokens, as stored
    embedded_tokenizer: TokenizerMetadata | None = field(default=None, repr=False)  # a file carrying its tokenizer (GGUF)
    quantization: Scheme | None = None  # the method's settings, as the config (or metadata) states them
    quantized: dict[str, QuantizedWeight] = field(default_factory=dict)  # logical name -> its stored parts
    quant_metadata: list[TensorInfo] = field(default_factory=list)  # scales, zero points, states: bytes, no parameters
    stored: dict[str, TensorInfo] = field(default_factory=dict)  # every tensor on disk by stored name, when ``tensors`` differs
    remote: HubFiles | None = field(default=None, repr=False)  # hf://: where rows come from, and the bytes fetched
    name: str | None = None  # what to call it when ``path`` is not what the user named (a cached repo id and its revision)
    _parts: Stored | None = field(default=None, init=False, repr=False)  # quantized weights' parts, read through the readers

    @property
    def shown(self) -> str:
        """The checkpoint as the user named it: headers and JSON ``checkpoint``."""
        return self.name if self.name is not None else str(self.path)

    @property
    def files(self) -> list[Path]:
        return list(self.readers)

    @property
    def on_disk(self) -> dict[str, TensorInfo]:
        """Every stored tensor (quantized parts included); ``tensors`` holds the logical ones."""
        return self.stored or self.tensors

    def info(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise CheckpointError(self.path, f"no tensor named {name!r}") from None

    def _reader(self, info: TensorInfo) -> Reader:
        return self.readers[info.file]

    def stored_parts(self) -> Stored:
        """Reads of the stored tensors quantized weights are made of (through each file's Reader)."""
        from ..quant import Stored

        if self._parts is None:
            self._parts = Stored(self._reader)
        return self._parts

    def read_rows(self, name: str, start: int, stop: int, out: F32Array | None = None) -> F32Array:
        """Rows ``start:stop`` of tensor ``name`` as float32 (dequantized when stored quantized), into
        ``out`` when given; only those bytes are read."""
        info = self.info(name)
        quantized = self.quantized.get(name)
        if quantized is not None:
            return into(out, self._read_quantized(quantized, start, stop))
        return self._reader(info).read_rows(info, start, stop, out)

    def read_rows_f64(self, name: str, start: int, stop: int) -> F64Array:
        """The same rows as float64: exact for every floating type, F64 included."""
        info = self.info(name)
        if name in self.quantized:  # the dequantized values are float32 (or narrower) exactly
            return self.read_rows(name, start, stop).astype(np.float64)
        return self._reader(info).read_rows_f64(info, start, stop)

    def read_cols(self, name: str, start: int, stop: int) -> F32Array:
        """Columns ``start:stop`` of a 2-D tensor as float32 (rows, C)."""
        info = self.info(name)
        if name in self.quantized:  # packed along rows: dequantize every row, chunk by chunk
            return columns_from_rows(lambda i, a, b: self.read_rows(i.name, a, b), info, start, stop)
        return self._reader(info).read_cols(info, start, stop)

    def stored_rows(self, name: str, start: int, stop: int) -> AbstractContextManager[U8Array]:
        """Rows as stored, uint8 (rows, row_bytes), for a byte comparison; valid inside the ``with`` block.

        A quantized weight's rows are spread over several stored tensors: its
        dequantized float32 rows stand in, so equal bytes still mean equal values.
        """
        info = self.info(name)
        if name in self.quantized:
            return nullcontext(self.read_rows(name, start, stop).reshape(stop - start, -1).view(np.uint8))
        return self._reader(info).stored_rows(info, start, stop)

    def _read_quantized(self, weight: QuantizedWeight, start: int, stop: int) -> F32Array:
        from ..quant import read_rows

        try:
            return read_rows(weight, start, stop, self.stored_parts())
        except NotDequantizable as exc:  # the method is the checkpoint's, not one file's
            raise NotDequantizable(self.path, exc.reason, exc.hint) from None
        except CheckpointError as exc:
            raise CheckpointError(exc.path, exc.reason, exc.hint) from None

    def read_tensor(self, name: str) -> F32Array:
        """A whole (small) tensor as float32: norm weights, biases."""
        info = self.info(name)
        return self.read_rows(name, 0, info.rows).reshape(info.shape)

    def row_chunks(self, name: str, chunk_rows: int) -> Iterator[tuple[int, F32Array]]:
        """Yield ``(start, rows)`` float32 chunks covering the tensor's first axis.

        Every chunk is written into one buffer: a chunk is valid until the next is asked for (a fresh
        16 MiB array per chunk costs its page faults, about a tenth of topk's time at T = 32)."""
        info = self.info(name)
        buffer = np.empty((min(chunk_rows, info.rows), *info.shape[1:]), dtype=np.float32)
        for start in range(0, info.rows, chunk_rows):
            stop = min(start + chunk_rows, info.rows)
            yield start, self.read_rows(name, start, stop, out=buffer[: stop - start])

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
