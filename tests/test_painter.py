"""The pictures of `scanfit fit` drawn in a helper process (show/painter.py): the same PNG files as
plots.save_all, matplotlib never imported by the fitting process, and a fallback when the helper fails."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd

import _io_fits
from scanfit.show import painter, plots


def _bytes(written):
    return [(caption, path.name, path.read_bytes()) for caption, path in written]


def _forced(monkeypatch) -> painter.Painter:
    monkeypatch.setenv("SCANFIT_PAINTER", "1")
    monkeypatch.delitem(sys.modules, "matplotlib", raising=False)  # start() checks only the name
    started = painter.Painter.start()
    monkeypatch.undo()
    assert started._process is not None
    return started


def test_the_helper_draws_the_same_files_as_save_all(tmp_path, monkeypatch):
    for name, result, x, y in [("mlp", _io_fits.mlp(), None, None),  # two features and restarts: all four kinds
                               ("linear", _io_fits.linear()[1], _io_fits.linear()[0].train.x, None)]:
        here = plots.save_all(result, tmp_path / f"{name}-here", x=x, y=y)
        with _forced(monkeypatch) as helper:
            helper.submit(result)
            staging = helper._staging
            there = helper.save_all(result, tmp_path / f"{name}-helper", x=x, y=y)
        assert _bytes(there) == _bytes(here)
        assert [c for c, _ in there] == [c for c in painter.ORDER if c in dict(here)]
        assert not staging.exists()  # the job file and the helper's folder are gone


def test_a_failed_helper_leaves_the_drawing_to_this_process(tmp_path):
    result = _io_fits.linear()[1]
    dead = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    broken = painter.Painter(dead)
    broken.submit(result)
    written = broken.save_all(result, tmp_path)
    assert [c for c, _ in written] == ["Learning path", "Coefficient paths"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for _, p in written)
    assert broken._process is None and broken._staging is None


def test_save_all_draws_only_the_pictures_asked_for(tmp_path):
    written = plots.save_all(_io_fits.mlp(), tmp_path, only=["Restarts", "Learning path"])
    assert [c for c, _ in written] == ["Learning path", "Restarts"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["learning_path.png", "restarts.png"]


def test_scanfit_fit_never_imports_matplotlib_in_the_fitting_process(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    frame["y"] = (frame.a - frame.b + rng.logistic(size=200) > 0).astype(int)
    frame.to_csv(tmp_path / "t.csv", index=False)
    code = ("import json, sys; from typer.testing import CliRunner; from scanfit.cli import app; "
            "assert sorted(m for m in sys.modules if m.startswith(('matplotlib', 'jax', 'numpy', 'pandas', 'scipy', "
            "'scanfit'))) == ['scanfit', 'scanfit.cli', 'scanfit.cli.choices']; "
            f"r = CliRunner().invoke(app, ['fit', {str(tmp_path / 't.csv')!r}, '--target', 'y', '--no-progress', "
            f"'--out', {str(tmp_path / 'out')!r}]); "
            "print(json.dumps([r.exit_code, 'matplotlib' in sys.modules, 'scanfit.show.plots' in sys.modules]))")
    env = {**os.environ, "SCANFIT_PAINTER": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [0, False, False]
    pictures = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert pictures == ["coefficient_paths.png", "learning_path.png"]
    assert "learning_path.png" in (tmp_path / "out" / "report.html").read_text()


def test_no_helper_when_turned_off_or_matplotlib_is_loaded(monkeypatch):
    monkeypatch.setenv("SCANFIT_PAINTER", "0")
    assert painter.Painter.start()._process is None
    monkeypatch.setenv("SCANFIT_PAINTER", "1")
    import matplotlib  # noqa: F401  (drawing here then costs no import)

    assert painter.Painter.start()._process is None


def test_tables_go_to_the_helper_as_json_exactly():
    """The helper gets the tables as JSON (no pickle); floats, NaN, dtypes and the index come back exactly."""
    import json

    import numpy as np
    import pandas as pd

    from scanfit.show.painter import Tables, _Name

    rng = np.random.default_rng(0)
    history = pd.DataFrame({"step": np.arange(5), "train_objective": rng.normal(size=5) / 3,
                            "valid_accuracy": [0.1, np.nan, 1 / 3, np.inf, -0.0]})
    restarts = pd.DataFrame({"start": [0, 1], "status": ["converged", "max_steps"], "final": [np.pi, np.e]})
    restarts.index.name = "start_index"
    tables = Tables(history, _Name("mlp"), _Name("bernoulli"), restarts, [{}, {}])
    back = Tables.from_json(json.loads(json.dumps(tables.to_json())))
    pd.testing.assert_frame_equal(back.history, history, check_exact=True)
    pd.testing.assert_frame_equal(back.restarts, restarts, check_exact=True)
    assert (back.model.name, back.likelihood.name, len(back.start_finals)) == ("mlp", "bernoulli", 2)
