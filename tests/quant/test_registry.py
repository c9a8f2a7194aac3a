"""The quantization-method registry: one row per method, each loading one ``QuantMethod``."""

from __future__ import annotations

import subprocess
import sys

from lmhead_cli.quant import detect, registry
from lmhead_cli.quant.methods.base import QuantMethod

from conftest import ROOT


def test_every_row_names_a_method_module_that_defines_one():
    keys = [row.key for row in registry.TABLE]
    assert len(keys) == len(set(keys))
    for row in registry.TABLE:
        assert isinstance(registry.method(row), QuantMethod), row.key
        for name in row.config_names:
            assert registry.by_config_name(name) is row


def test_detect_knows_every_rows_suffixes_without_loading_a_method():
    code = (
        "import sys; from lmhead_cli.quant import detect\n"
        "print(sorted(m for m in sys.modules if m.startswith('lmhead_cli.quant.') and m not in "
        "('lmhead_cli.quant.detect', 'lmhead_cli.quant.registry')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    for row in registry.TABLE:
        assert set(row.parts) <= set(detect.QUANT_SUFFIXES)
        assert set(row.loose) <= set(detect.LOOSE_METADATA)
        assert set(row.config_names) <= detect.KNOWN_METHODS
