"""The one place the version lives: pyproject reads it, the package re-exports it, hub requests send it."""

__version__ = "0.1.0"
