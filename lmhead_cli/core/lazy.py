"""Package attributes imported on first use, so that a command loads only the modules it needs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, table: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``name`` comes from its submodule ``table[name]``,
    imported when first asked for and then kept in ``namespace`` (the package's globals)."""

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = vars(import_module(f".{table[name]}", package))[name]
        namespace[name] = value
        return value

    return __getattr__
