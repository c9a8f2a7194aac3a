"""Untrusted text made safe to show: whitespace and control characters as visible escapes.

Kept apart from ``tokens`` so that rendering a tensor name does not load the tokenizer code.
"""

from __future__ import annotations

import unicodedata

__all__ = ["visible"]

VISIBLE = {" ": "␣", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def visible(text: str) -> str:
    """Spaces as ␣, newlines and tabs escaped, every other control or format character as \\xNN / \\uNNNN."""
    out = []
    for ch in text:
        if ch in VISIBLE:
            out.append(VISIBLE[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)
