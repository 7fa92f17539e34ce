"""Draw a fit's pictures in a helper process while this one fits (``scanfit fit``).

Importing matplotlib and drawing the learning path and coefficient paths takes about a second, as
long as importing JAX and fitting a small model. :meth:`Painter.start`, called before the fit,
starts ``python -m scanfit.show.painter``, which imports matplotlib and draws one throw-away
figure (fonts loaded) while this process fits; :meth:`Painter.submit`, right after the fit, hands
it the fit's tables (history, restarts) as JSON in a private temporary file (on Linux the helper forks to draw
each picture in its own process), and :meth:`Painter.save_all` moves the PNGs it drew, the files
:func:`plots.save_all` would have written, into the output directory.
Pictures that call the model (decision regions, hidden units: two-feature data only) are drawn
here. The pictures are the same files either way: when the helper would not help (one CPU, a
busy machine, matplotlib already imported here), with ``SCANFIT_PAINTER=0``, or when it fails,
they are drawn here as before; ``SCANFIT_PAINTER=1`` starts it whatever the load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Painter", "TABLE_PICTURES", "ORDER"]

TABLE_PICTURES = ("Learning path", "Coefficient paths", "Restarts")  # drawn from tables, no model call
ORDER = ("Learning path", "Coefficient paths", "Decision regions", "Hidden units", "Restarts")  # save_all's order
TIMEOUT = 120.0  # seconds to wait for the helper's pictures before drawing them here


@dataclass
class _Name:
    name: str


@dataclass
class Tables:
    """What the table pictures read from a FitResult, without the model's functions (sent as JSON)."""

    history: Any
    model: _Name
    likelihood: _Name
    restarts: Any
    start_finals: list = field(default_factory=list)
    train: None = None

    @classmethod
    def of(cls, result) -> Tables:
        many = len(result.start_finals) > 1
        return cls(result.history, _Name(getattr(result.model, "name", "")), _Name(result.likelihood.name),
                   result.restarts if many else None, [{} for _ in result.start_finals])

    def to_json(self) -> dict:
        """The tables as JSON values (no pickle): frames by column, floats written exactly (repr)."""
        return {"history": _frame_json(self.history), "model": self.model.name, "likelihood": self.likelihood.name,
                "restarts": None if self.restarts is None else _frame_json(self.restarts),
                "starts": len(self.start_finals)}

    @classmethod
    def from_json(cls, blob: dict) -> Tables:
        restarts = None if blob["restarts"] is None else _frame_of(blob["restarts"])
        return cls(_frame_of(blob["history"]), _Name(str(blob["model"])), _Name(str(blob["likelihood"])), restarts,
                   [{} for _ in range(int(blob["starts"]))])


def _frame_json(frame) -> dict:
    return {"columns": [str(c) for c in frame.columns], "index": frame.index.tolist(), "name": frame.index.name,
            "dtypes": [str(t) for t in frame.dtypes], "data": frame.to_numpy(object).tolist()}


def _frame_of(blob: dict):
    import pandas as pd

    frame = pd.DataFrame(blob["data"], columns=blob["columns"], index=blob["index"])
    frame.index.name = blob["name"]
    return frame.astype(dict(zip(blob["columns"], blob["dtypes"]))) if len(frame.columns) else frame


def _spare_cpu() -> bool:
    """Whether a CPU is likely idle: this process may use two or more, and the 1-minute load average
    (which counts earlier fits of a loop, with their helpers, too) is below their number. On a busy
    machine the helper would only take turns with the fit: at load 4-5 on 2 CPUs it cost 1.4 s."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return cpus >= 2 and load < cpus


class Painter:
    """A helper process for the pictures drawn from a fit's tables; :meth:`close` ends it."""

    def __init__(self, process: subprocess.Popen | None = None):
        self._process = process
        self._staging: Path | None = None  # the job file and the helper's PNGs, until save_all moves them
        self._dpi = None

    @classmethod
    def start(cls) -> Painter:
        """Start the helper when it can overlap this process's work; else a Painter that draws here."""
        wanted = os.environ.get("SCANFIT_PAINTER", "auto")
        if wanted == "0" or not sys.executable or "matplotlib" in sys.modules or (wanted != "1" and not _spare_cpu()):
            return cls()
        root = str(Path(__file__).resolve().parents[2])  # the directory that holds this scanfit
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
               "MPLBACKEND": "Agg"}
        try:
            process = subprocess.Popen([sys.executable, "-m", "scanfit.show.painter"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        except OSError:
            return cls()
        return cls(process)

    def submit(self, result, *, dpi: int = 110) -> None:
        """Hand the helper the table pictures of ``result`` to draw now; :meth:`save_all` collects them."""
        if self._process is None or self._staging is not None:
            return
        self._staging, self._dpi = Path(tempfile.mkdtemp(prefix="scanfit-painter-")), dpi
        job = self._staging / "job.json"
        try:
            with open(job, "w") as f:
                json.dump({"tables": Tables.of(result).to_json(), "out": str(self._staging), "dpi": dpi}, f)
            self._process.stdin.write(f"{job}\n")
            self._process.stdin.flush()
        except (OSError, ValueError, TypeError):
            self.close()

    def save_all(self, result, out: str | Path, *, x=None, y=None, classes: list | None = None,
                 dpi: int = 110) -> list[tuple[str, Path]]:
        """``plots.save_all(result, out, x=x, y=y, classes=classes, dpi=dpi)``, with the table pictures
        drawn by the helper (or here, when it is not running or failed)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.submit(result, dpi=dpi)
        written = self._collect(out) if self._dpi == dpi else None
        self.close()
        done = {caption for caption, _ in written or []}
        xs = x if x is not None else (result.train[0] if getattr(result, "train", None) is not None else None)
        two = xs is not None and len(getattr(xs, "shape", ())) == 2 and xs.shape[1] == 2
        if written is None or two:  # pictures the helper did not draw, here (matplotlib imported only now)
            from . import plots

            rest = plots.save_all(result, out, x=x, y=y, classes=classes, dpi=dpi,
                                  only=[c for c in ORDER if c not in done])
            written = (written or []) + rest
        return sorted(written, key=lambda item: ORDER.index(item[0]))

    def _collect(self, out: Path) -> list[tuple[str, Path]] | None:
        """The helper's pictures moved into ``out`` as (caption, path) pairs, or None when it failed."""
        if self._process is None:
            return None
        try:
            reply, _ = self._process.communicate(timeout=TIMEOUT)
            answer = json.loads(reply.strip().splitlines()[-1])
            moved = []
            for caption, path in answer["written"]:
                moved.append((caption, Path(shutil.move(path, out / Path(path).name))))
            return moved
        except (OSError, ValueError, IndexError, KeyError, TypeError, subprocess.TimeoutExpired):
            return None  # drawn here instead, over anything that was moved

    def close(self) -> None:
        """End the helper and remove what it left; safe to call twice."""
        process, self._process = self._process, None
        staging, self._staging = self._staging, None
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.communicate()
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)

    def __enter__(self) -> Painter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve() -> None:
    """The helper: import matplotlib, draw once to load fonts, then draw the job named on stdin
    and print the pictures' (caption, path) pairs as one JSON line."""
    import gc
    import io
    import signal
    import traceback

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends this process
    from matplotlib.figure import Figure

    from . import plots  # noqa: F401  (imported now: matplotlib and the plots module are ready when the job comes)

    warm = Figure(figsize=(2, 2), layout="constrained")
    ax = warm.subplots()
    ax.plot([0, 1], [0, 1], label="x")
    ax.set_title("warm")
    ax.legend()
    warm.savefig(io.BytesIO(), format="png", dpi=50)
    gc.freeze()  # what is loaded now is kept: the collector skips it while drawing, and the forks share its pages
    line = sys.stdin.readline().strip()
    if not line:
        return
    try:
        with open(line) as f:
            job = json.load(f)
        written = _draw(Tables.from_json(job["tables"]), job["out"], int(job["dpi"]))
        print(json.dumps({"written": [(caption, str(path)) for caption, path in written]}), flush=True)
    except Exception:
        print(json.dumps({"error": traceback.format_exc()}), flush=True)


def _draw(tables: Tables, out: str, dpi: int) -> list[tuple[str, Path]]:
    """The table pictures; on Linux one process each, forked from this one (matplotlib loaded), so
    that two CPUs draw the learning path and the coefficient paths at once."""
    from . import plots  # noqa: F401  (imported now: matplotlib and the plots module are ready when the job comes)

    captions = [caption for caption, _ in plots.pictures(tables) if caption in TABLE_PICTURES]
    forks = []
    for caption in captions[1:] if sys.platform == "linux" else ():
        pid = os.fork()
        if pid == 0:  # the child draws one picture and leaves at once, without Python's clean-up
            code = 1
            try:
                plots.save_all(tables, out, dpi=dpi, only=[caption])
                code = 0
            finally:
                os._exit(code)
        forks.append(pid)
    plots.save_all(tables, out, dpi=dpi, only=captions[:1] if forks else captions)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in forks]
    if any(codes):
        raise RuntimeError(f"a process that drew a picture failed (exit codes {codes})")
    return [(caption, plots.picture_path(out, caption)) for caption in captions]


if __name__ == "__main__":
    _serve()
    # Leave without Python's clean-up of matplotlib's and pandas' modules (0.2 s): the parent reads the answer
    # when this process ends, and everything it wrote is closed.
    sys.stdout.flush()
    os._exit(0)
