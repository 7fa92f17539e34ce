"""Text for the terminal with its control characters made visible: what the user's data names (columns,
classes, paths, saved texts) is printed as ``\\x1b``, ``\\u202e``, never as escape sequences that retitle or
clear the terminal, NULs, or marks that reverse the text's direction.

>>> printable("a\\x1b]0;OWNED\\x07\\x1b[2J\\u202eb\\nc")
'a\\\\x1b]0;OWNED\\\\x07\\\\x1b[2J\\\\u202eb\\nc'
"""

from __future__ import annotations

import unicodedata

__all__ = ["printable", "console"]

_HIDDEN = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")  # controls, format marks (RTL), surrogates, unassigned


def _escape(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def printable(text: object, keep: str = "\n") -> str:
    """``str(text)`` with every control or invisible formatting character but those in ``keep`` escaped."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(_escape(c) if c not in keep and unicodedata.category(c) in _HIDDEN else c for c in text)


def console(stderr: bool = False):
    """A rich Console whose ``print`` shows strings through :func:`printable` (styled ``Text`` and tables are
    the caller's to build from printable parts)."""
    from rich.console import Console

    class _Console(Console):
        def print(self, *objects, **options):
            super().print(*(printable(o) if isinstance(o, str) else o for o in objects), **options)

    return _Console(stderr=stderr, highlight=False, soft_wrap=True)
