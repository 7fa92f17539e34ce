"""The output directory of ``scanfit fit --out DIR``, written as one piece.

The model, ``history.csv``, the plots and ``report.html`` are built in a fresh directory beside
``DIR`` and put in its place in one step (:func:`model_files.replace_dir`) while holding ``DIR``'s
lock, so two runs writing to one ``DIR`` leave one run's complete outputs, never one run's model
beside the other's report, and a reader sees the old set or the new one. A marker file,
:data:`MARKER`, lists what scanfit wrote; a directory that holds anything else (a user's own
``report.html``, notes, the data) is not replaced: it is refused unless ``force``, and then only
scanfit's files in it are replaced (one by one, under the lock) and the rest is left alone.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

from . import model_files as files

__all__ = ["MARKER", "check", "write"]

MARKER = ".scanfit-fit.json"


def _entries(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def _foreign(path: Path) -> list[str]:
    """The entries of ``path`` that no ``scanfit fit`` wrote (its marker lists what it wrote)."""
    try:
        listed = json.loads((path / MARKER).read_text())["files"]
        listed = set(map(str, listed)) | {MARKER} if isinstance(listed, list) else set()
    except (OSError, ValueError, KeyError, TypeError):
        listed = set()
    return [name for name in _entries(path) if name not in listed]


def check(out: str | os.PathLike, force: bool = False) -> None:
    """Refuse an ``out`` that cannot take a fit's outputs: a file, or a directory with files that
    scanfit did not write (unless ``force``). Called before fitting, and again just before the swap."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"The '--out' option names {str(out)!r}, which is a file; give a directory "
                              f"(new, empty, or written by an earlier scanfit fit).")
    foreign = _foreign(out) if out.is_dir() and not force else []
    if foreign:
        listed = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise FileExistsError(f"The '--out' directory {str(out)!r} holds files that scanfit did not write "
                              f"({listed}); choose a new or empty directory, or pass --force to replace "
                              f"scanfit's outputs in it (its other files are left alone).")


def _merge(tmp: Path, out: Path) -> None:
    """``--force`` into a directory with other files: replace scanfit's entries one by one."""
    for name in _entries(tmp):
        if name.startswith(".old-"):
            continue
        target = out / name
        if target.is_dir() and not target.is_symlink():
            os.rename(target, tmp / f".old-{name}")  # removed with tmp
        os.replace(tmp / name, target)


def write(out: str | os.PathLike, build: Callable[[Path], list[Path]], *, force: bool = False) -> list[Path]:
    """Run ``build(directory)`` (it writes the outputs there and returns their paths) in a fresh
    directory beside ``out``, then put the outputs at ``out`` in one step; return their paths there."""
    out = Path(os.path.realpath(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    check(out, force)
    tmp = files.new_dir(out, kind="fit")  # not "save": no saver's debris clean-up removes it while it fills
    try:
        written = build(tmp)
        names = sorted({p.relative_to(tmp).parts[0] for p in written})
        (tmp / MARKER).write_text(json.dumps({"written_by": "scanfit fit", "files": names}, indent=1))
        files.fsync_dir(tmp)
        with files.locked(out):
            check(out, force)  # another run may have written there meanwhile: theirs is scanfit's too
            if out.is_dir() and _foreign(out):
                _merge(tmp, out)
            else:
                files.replace_dir(tmp, out)  # afterwards tmp holds the previous outputs, if any
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out / p.relative_to(tmp) for p in written]
