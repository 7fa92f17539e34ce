"""The output directory of ``scanfit fit --out DIR`` (and ``scanfit demo --out DIR``), written as one piece,
never over a file of the user's. Its manifest (:func:`manifest`, :func:`foreign`) also marks the directory of
a saved model (``result.save``) as scanfit's.

The model, ``history.csv``, the plots and ``report.html`` are built in a fresh directory beside
``DIR`` and put in its place in one step (:func:`model_files.replace_dir`) while holding ``DIR``'s
lock, so two runs writing to one ``DIR`` leave one run's complete outputs, never one run's model
beside the other's report, and a reader sees the old set or the new one.

A manifest, :data:`MARKER`, lists every file scanfit wrote there (nested paths such as
``model/model.json`` included). Anything else under ``DIR`` (a user's ``report.html``, a
``model/NOTES.md``, the data) is the user's: such a directory is refused unless ``force``, and
then scanfit's new files are put beside the user's one by one (under the lock), its earlier files
are replaced or removed, and a file of the user's where an output would go is refused, never
replaced. The input table is never an output: a table that is one of scanfit's files in ``DIR``
(compared by real path) is refused. A write that fails (a full disk) leaves the earlier outputs as
they were and says which path could not be written (:class:`OutputError`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from . import model_files as files

__all__ = ["MARKER", "OutputError", "check", "write", "manifest", "foreign", "write_manifest", "listing"]

MARKER = ".scanfit-fit.json"
USUAL = ("history.csv", "report.html", f"model/{files.META_FILE}", f"model/{files.PARAMS_FILE}")  # every fit's


class OutputError(OSError):
    """The outputs could not be written (a full disk, no permission); the earlier ones are unchanged."""


def _plain(name) -> str | None:
    """``name`` when it is a relative path inside the directory (no '..', not absolute), else None."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        return None
    parts = PurePosixPath(name).parts
    return name if parts and not PurePosixPath(name).is_absolute() and not {"..", "."} & set(parts) else None


def _lstat(path: Path):
    try:
        return os.lstat(path)
    except OSError:
        return None


def manifest(out: Path) -> set[str] | None:
    """The files that scanfit's manifest in ``out`` lists; None where there is no readable manifest. A
    manifest of before nested paths lists top-level names only: its ``model`` stands for the saved model's
    two files, not for whatever else is in that folder."""
    st = _lstat(out / MARKER)
    if st is None or not stat.S_ISREG(st.st_mode):
        return None
    try:
        data = json.loads((out / MARKER).read_text())
        names = data["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(names, list):
        return None
    listed = {n for n in map(_plain, names) if n}
    if data.get("version", 1) == 1:
        model = {n for n in listed if "/" not in n and stat.S_ISDIR(getattr(_lstat(out / n), "st_mode", 0))}
        listed = (listed - model) | {f"{n}/{f}" for n in model for f in (files.META_FILE, files.PARAMS_FILE)}
    return listed


def _entries(top: Path) -> list:
    try:
        return sorted(os.scandir(top), key=lambda e: e.name)
    except OSError as err:  # an unreadable folder: what is in it cannot be told apart from scanfit's files
        raise OutputError(f"Cannot read the folder {str(top)!r} ({err.strerror or err}); scanfit looks at every file "
                          f"in a directory it writes to, so that it never replaces one of yours. Make the folder "
                          f"readable (chmod u+rx {str(top)!r}) or choose another directory.") from None


def _tree(top: Path, prefix: str = "", descend: Callable[[str], bool] = lambda rel: True):
    """Every entry under ``top`` (its path relative to it and its lstat), a folder before its contents (entered
    when ``descend(path)``); symbolic links are not followed. An unreadable folder is an :class:`OutputError`."""
    for entry in _entries(top):
        rel = prefix + entry.name
        st = entry.stat(follow_symlinks=False)
        yield rel, st
        if stat.S_ISDIR(st.st_mode) and descend(rel):
            yield from _tree(Path(entry.path), rel + "/", descend)


def _folders(listed: set[str]) -> set[str]:
    return {str(p) for name in listed for p in PurePosixPath(name).parents if str(p) != "."}


def foreign(out: Path, listed: set[str] | None = None) -> list[str]:
    """What under ``out`` scanfit did not write: every entry that is neither a regular file its manifest lists
    nor a folder holding one (a folder of the user's is named once, with a trailing '/')."""
    listed = manifest(out) if listed is None else listed
    known = (listed | {MARKER}) if listed is not None else set()
    folders = _folders(known)
    return [rel + "/" if stat.S_ISDIR(st.st_mode) else rel for rel, st in _tree(out, descend=folders.__contains__)
            if not (stat.S_ISDIR(st.st_mode) and rel in folders or stat.S_ISREG(st.st_mode) and rel in known)]


def _inside(out: Path, name: str) -> bool:
    """Whether every folder on the way from ``out`` to ``name`` is a real folder (none a file or a symbolic link)."""
    parts = PurePosixPath(name).parts[:-1]
    return all(stat.S_ISDIR(getattr(_lstat(out.joinpath(*parts[:k + 1])), "st_mode", stat.S_IFDIR))
               for k in range(len(parts)))


def listing(names: list[str]) -> str:
    """``names`` for a message: the first five, and how many in all."""
    return ", ".join(names[:5]) + (f", ... ({len(names)} in all)" if len(names) > 5 else "")


def _refuse_inputs(out: Path, inputs: Iterable, names: Iterable[str] = ()) -> None:
    """Refuse a table that is ``out`` itself or at one of ``names`` in it (scanfit's earlier files, which a new
    fit replaces or removes, and the new outputs), compared by real path."""
    ours = {os.path.realpath(out / n): n for n in names}
    for table in inputs:
        real = os.path.realpath(table)
        if real == str(out) or real in ours:
            what = "is the '--out' directory" if real == str(out) else \
                f"is where scanfit writes its {ours[real]} in the '--out' directory"
            raise FileExistsError(f"The table {str(table)!r} {what} ({str(out)!r}); scanfit never writes over its "
                                  f"input: choose another --out directory (or copy the table elsewhere).")


def _taken(out: Path, names: Iterable[str], listed: set[str] | None) -> list[str]:
    """The ``names`` (relative paths) where an output would replace something scanfit did not write: a file or
    folder of the user's, a symbolic link, or a path whose folder is a file there."""
    known = (listed | {MARKER}) if listed is not None else set()
    taken = []
    for name in names:
        st = _lstat(out / name) if _inside(out, name) else None
        if not _inside(out, name) or st is not None and not (stat.S_ISREG(st.st_mode) and name in known):
            taken.append(name)
    return taken


def check(out: str | os.PathLike, force: bool = False, inputs: Iterable = (), usual: Iterable[str] = USUAL) -> None:
    """Refuse an ``out`` that cannot take a fit's outputs: a file; a directory with files that scanfit did not
    write (unless ``force``; with it, one whose files of the user's sit where every run writes, ``usual``); one
    that holds the input table. Called before fitting, and again just before the outputs are put in place."""
    out = Path(os.path.realpath(out))
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"The '--out' option names {str(out)!r}, which is a file; give a directory "
                              f"(new, empty, or written by an earlier scanfit run).")
    listed = manifest(out) if out.is_dir() else None
    _refuse_inputs(out, inputs, {*(listed or ()), *usual})
    if not out.is_dir():
        return
    theirs = foreign(out, listed)
    if theirs and not force:
        raise FileExistsError(f"The '--out' directory {str(out)!r} holds files that scanfit did not write "
                              f"({listing(theirs)}); choose a new or empty directory, or pass --force to write "
                              f"scanfit's outputs beside them (files of yours are never replaced or removed).")
    if theirs:  # --force: the outputs go beside the user's files, never over them
        _refuse_taken(out, _taken(out, (*usual, MARKER), listed))


def _refuse_taken(out: Path, taken: list[str]) -> None:
    if taken:
        raise FileExistsError(f"The '--out' directory {str(out)!r} holds files of yours where scanfit writes its "
                              f"outputs ({listing(taken)}); scanfit never replaces a file it did not write: move or "
                              f"rename them, or choose another --out directory.")


def _files(top: Path) -> list[str]:
    return [rel for rel, st in _tree(top) if not stat.S_ISDIR(st.st_mode)]


def write_manifest(directory: Path, names: Iterable[str], by: str = "scanfit fit") -> None:
    """Write the manifest of ``directory``: ``names`` (relative paths) are the files scanfit wrote there."""
    text = json.dumps({"written_by": by, "version": 2, "files": sorted(set(names))}, indent=1)
    tmp = directory / f"{MARKER}.{secrets.token_hex(4)}.tmp"
    with open(tmp, "x") as f:  # a new name: never a file of the user's
        f.write(text)
    os.replace(tmp, directory / MARKER)


def _merge(tmp: Path, out: Path, new: list[str], listed: set[str] | None, by: str) -> None:
    """``--force`` into a directory with the user's files: scanfit's new files put in place one by one, then its
    earlier files that the new run did not write removed (with the folders they leave empty). The manifest lists
    both meanwhile, so an interrupted merge leaves nothing of scanfit's unlisted."""
    old = listed or set()
    write_manifest(out, old | set(new), by)
    for name in new:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / name, out / name)
    for name in sorted(old - set(new)):
        st = _lstat(out / name)
        if st is not None and stat.S_ISREG(st.st_mode) and _inside(out, name):
            os.unlink(out / name)
    for folder in sorted(_folders(old), key=len, reverse=True):
        try:
            os.rmdir(out / folder)  # only when empty: a folder with the user's files stays
        except OSError:
            pass
    write_manifest(out, new, by)


def _failed(out: Path, tmp: Path, err: OSError) -> OutputError:
    where = err.filename or out
    try:
        where = out / Path(where).relative_to(tmp)
    except ValueError:
        pass
    fix = "free some space on that disk" if err.errno in (28, 122) else "check that you may write there"
    return OutputError(f"Cannot write the outputs to the '--out' directory {str(out)!r}: {err.strerror or err} "
                       f"({str(where)!r}). Its earlier contents are unchanged; {fix}, or choose another --out "
                       f"directory.")


def write(out: str | os.PathLike, build: Callable[[Path], list[Path]], *, force: bool = False,
          inputs: Iterable = (), by: str = "scanfit fit", usual: Iterable[str] = USUAL) -> list[Path]:
    """Run ``build(directory)`` (it writes the outputs there and returns their paths) in a fresh
    directory beside ``out``, then put the outputs at ``out`` in one step; return their paths there.
    ``inputs`` are the paths of the input table(s), which are never replaced; ``by`` names the writer in
    the manifest (``scanfit demo``); ``usual`` are the files every such run writes."""
    out = Path(os.path.realpath(out))
    inputs = list(inputs)
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        check(out, force, inputs, usual)
        tmp = files.new_dir(out, kind="fit")  # not "save": no saver's debris clean-up removes it while it fills
        written = build(tmp)
        new = _files(tmp)
        write_manifest(tmp, new, by)
        files.fsync_dir(tmp)
        with files.locked(out):
            check(out, force, inputs, usual)  # another run may have written there meanwhile: theirs is scanfit's too
            listed = manifest(out) if out.is_dir() else None
            _refuse_inputs(out, inputs, new)
            if out.is_dir() and foreign(out, listed):
                _refuse_taken(out, _taken(out, new, listed))
                _merge(tmp, out, new, listed, by)
            else:
                files.replace_dir(tmp, out)  # afterwards tmp holds the previous outputs, if any
    except OSError as err:
        if err.errno is None:  # scanfit's own refusals (FileExistsError, TimeoutError) say what to do already
            raise
        raise _failed(out, tmp or out, err) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return [out / p.relative_to(tmp) for p in written]
