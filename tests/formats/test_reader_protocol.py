"""Every format reader implements the one ``Reader`` protocol, and ``TensorInfo`` means the same in each."""

from __future__ import annotations

import re
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import save_file

from lmhead_cli.formats.base import Format, Reader, TensorInfo, column_bytes
from lmhead_cli.formats.gguf import GGUFFile
from lmhead_cli.formats.safetensors import SafetensorsFile

from conftest import ROOT

PACKAGE = ROOT / "lmhead_cli"
VALUES = np.arange(6 * 8, dtype=np.float32).reshape(6, 8) / 7  # (6, 8): rows and columns distinct


def _safetensors(tmp_path: Path) -> SafetensorsFile:
    save_file({"a": np.ones(3, dtype=np.float32), "w": VALUES}, tmp_path / "m.safetensors")
    return SafetensorsFile(tmp_path / "m.safetensors")


def _gguf(tmp_path: Path) -> GGUFFile:
    writer = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "llama")
    writer.add_tensor("a", np.ones(3, dtype=np.float32))
    writer.add_tensor("w", VALUES)
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    return GGUFFile(tmp_path / "m.gguf")


def _torch(tmp_path: Path) -> Reader:
    torch = pytest.importorskip("torch")
    from lmhead_cli.formats.torch import TorchFile

    torch.save({"a": torch.ones(3), "w": torch.from_numpy(VALUES.copy())}, tmp_path / "m.pt")
    return TorchFile(tmp_path / "m.pt")


@pytest.mark.parametrize("make", [_safetensors, _gguf, _torch], ids=["safetensors", "gguf", "pytorch"])
def test_each_reader_implements_the_protocol(make, tmp_path):
    reader = make(tmp_path)
    try:
        assert isinstance(reader, Reader) and isinstance(reader.format, Format)
        assert isinstance(reader.metadata, dict)
        info = next(t for t in reader.tensors if t.name == "w")
        assert info.shape == (6, 8) and info.dtype == "F32" and info.nbytes == VALUES.nbytes and info.file == reader.path
        rows = reader.read_rows(info, 1, 4)
        assert rows.dtype == np.float32 and rows.shape == (3, 8)
        np.testing.assert_array_equal(rows, VALUES[1:4])
        wide = reader.read_rows_f64(info, 2, 5)
        assert wide.dtype == np.float64
        np.testing.assert_array_equal(wide, VALUES[2:5].astype(np.float64))
        cols = reader.read_cols(info, 3, 7)
        assert cols.dtype == np.float32 and cols.shape == (6, 4)
        np.testing.assert_array_equal(cols, VALUES[:, 3:7])
        with reader.stored_rows(info, 1, 3) as raw:
            assert raw.dtype == np.uint8 and raw.shape == (2, 8 * 4)
            assert raw.tobytes() == VALUES[1:3].tobytes()
        with reader.stored_cols(info, 2, 5) as raw:
            assert raw.dtype == np.uint8 and raw.shape == (6, 3 * 4)
            assert raw.tobytes() == np.ascontiguousarray(VALUES[:, 2:5]).tobytes()
        empty = reader.read_rows(info, 2, 2)
        assert empty.shape == (0, 8)
        lent = np.full((3, 8), np.nan, dtype=np.float32)  # a caller's reused chunk buffer
        assert reader.read_rows(info, 2, 5, out=lent) is lent
        np.testing.assert_array_equal(lent, VALUES[2:5])
    finally:
        reader.close()
        reader.close()  # idempotent


@pytest.mark.parametrize("make", [_safetensors, _gguf, _torch], ids=["safetensors", "gguf", "pytorch"])
def test_offset_is_where_the_bytes_are_in_the_file(make, tmp_path):
    """``TensorInfo.offset`` is a byte offset in the file for every format, never a memory address."""
    reader = make(tmp_path)
    try:
        data = reader.path.read_bytes()
        for info in reader.tensors:
            assert info.offset is not None and 0 < info.offset and info.offset + info.nbytes <= len(data)
            expected = VALUES if info.name == "w" else np.ones(3, dtype=np.float32)
            assert data[info.offset : info.offset + info.nbytes] == expected.tobytes()
    finally:
        reader.close()


def test_pytorch_storage_identity_is_explicit(tmp_path):
    torch = pytest.importorskip("torch")
    from lmhead_cli.formats.torch import TorchFile

    base = torch.arange(20, dtype=torch.float32)
    emb = torch.randn(4, 3)
    torch.save({"e": emb, "h": emb, "x": base[:10], "y": base[10:]}, tmp_path / "m.pt")
    reader = TorchFile(tmp_path / "m.pt")
    try:
        t = {i.name: i for i in reader.tensors}
        assert t["e"].storage == t["h"].storage and t["e"].same_bytes_as(t["h"])
        assert t["x"].storage is not None and t["y"].storage is not None
        assert t["x"].storage.index == t["y"].storage.index and t["y"].storage.offset == 40  # one buffer, 10 floats in
        assert not t["x"].same_bytes_as(t["y"]) and not t["e"].same_bytes_as(t["x"])
        assert t["y"].offset == t["x"].offset + 40  # type: ignore[operator]
    finally:
        reader.close()


def test_the_remote_reader_implements_the_protocol(fake_hub, hf_home, tmp_path, monkeypatch):
    """The checks every local reader passes (above), on a file served by the fake hub."""
    from lmhead_cli.formats.remote import HubFiles, HubPath, RemoteSafetensors

    (tmp_path / "repo").mkdir()
    _safetensors(tmp_path / "repo").close()
    fake_hub.add_repo("org/protocol", tmp_path / "repo")
    files = HubFiles("org/protocol", "main", fake_hub.endpoint, HubPath("org/protocol"))
    test_each_reader_implements_the_protocol(lambda _: RemoteSafetensors(HubPath("org/protocol/m.safetensors"), files), tmp_path)
    assert files.bytes_fetched > 0


def test_same_bytes_needs_one_place():
    a = TensorInfo("a", (2, 2), "F32", 16, Path("f"), 100)
    assert a.same_bytes_as(TensorInfo("b", (2, 2), "F32", 16, Path("f"), 100))
    assert not a.same_bytes_as(TensorInfo("b", (2, 2), "F32", 16, Path("f"), 116))
    assert not a.same_bytes_as(TensorInfo("b", (2, 2), "F32", 16, Path("g"), 100))
    assert not TensorInfo("a", (4,), "F32", 16, Path("f"), None).same_bytes_as(TensorInfo("b", (4,), "F32", 16, Path("f"), None))


def test_no_reader_method_is_looked_up_by_name():
    """The protocol is complete: nothing asks a reader whether it has a method."""
    lookup = re.compile(r"""(getattr|hasattr)\([^)]*["'](read_\w*|stored_\w*|raw_\w*|close|metadata|tensors)["']""")
    for module in sorted(PACKAGE.rglob("*.py")):
        assert not lookup.search(module.read_text()), module


@pytest.mark.parametrize("max_gap", [0, 10**9], ids=["each row's span", "whole rows"])
@pytest.mark.parametrize(("lo", "hi"), [(0, 40), (4, 12), (36, 40), (8, 8)])
def test_column_bytes_reads_each_span_or_whole_rows(max_gap, lo, hi):
    """A column range of a row-major tensor: the same bytes whether spans are read one by one or cut from whole rows,
    and with wide gaps nothing but the spans is read."""
    stored = np.arange(7 * 40, dtype=np.uint8).reshape(7, 40)  # 7 rows of 40 bytes
    reads: list[tuple[int, int]] = []

    def fill(buf, offset):
        reads.append((offset, buf.size))
        buf[:] = stored.reshape(-1)[offset : offset + buf.size]

    out = column_bytes(fill, 7, 40, lo, hi, max_gap=max_gap, block_bytes=100)  # 100 bytes: two whole rows per read
    np.testing.assert_array_equal(out, stored[:, lo:hi])
    if hi == lo:
        assert reads == []
    elif max_gap == 0 and hi - lo < 40:
        assert reads == [(row * 40 + lo, hi - lo) for row in range(7)]
    else:
        assert reads == [(0, 80), (80, 80), (160, 80), (240, 40)]


def test_a_buffer_of_the_wrong_shape_is_refused_not_half_filled(tmp_path):
    reader = _safetensors(tmp_path)
    info = next(t for t in reader.tensors if t.name == "w")
    for wrong in (np.empty((2, 8), np.float32), np.empty((3, 8), np.float64), np.empty((8, 3), np.float32).T):
        with pytest.raises(ValueError, match="out must be"):
            reader.read_rows(info, 2, 5, out=wrong)
    reader.close()
