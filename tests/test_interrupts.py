"""Ctrl-C keeps the work done so far without a progress bar: a real SIGINT to a real process.

The fits here would run for minutes; each test waits until the fit has started, sends SIGINT,
and checks that the process stops soon after with the fit so far (the CLI: saved, a message, exit
code 130; the API: a result with status 'interrupted')."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import scanfit as sf

SCANFIT = Path(sys.executable).with_name("scanfit")


def _run_until(cmd, marker: str, out_file: Path, settle: float, cwd=None):
    """Start ``cmd``, wait for ``marker`` in its output and ``settle`` seconds more, send SIGINT;
    return (exit code, stdout, stderr, seconds from SIGINT to exit)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    err_file = out_file.with_suffix(".err")
    with open(out_file, "w") as out, open(err_file, "w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        try:
            deadline = time.monotonic() + 120
            while marker not in out_file.read_text():
                assert proc.poll() is None, f"ended before fitting: {out_file.read_text()} {err_file.read_text()}"
                assert time.monotonic() < deadline, "the fit did not start within 120 s"
                time.sleep(0.1)
            time.sleep(settle)
            assert proc.poll() is None, "the fit ended before the interrupt: make it longer"
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=120)
            waited = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
    return code, out_file.read_text(), err_file.read_text(), waited


def test_sigint_to_scanfit_fit_no_progress_saves_the_fit_so_far(tmp_path):
    rng = np.random.default_rng(0)
    n = 4000
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    df["y"] = np.where(df.a * df.b + 0.3 * rng.logistic(size=n) > 0, "yes", "no")
    df.to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "out"
    # about 50 us a step on 2 cores: 2,000,000 steps would take minutes; chunks of 10,000 answer Ctrl-C soon
    cmd = [str(SCANFIT), "fit", str(tmp_path / "t.csv"), "--target", "y", "--model", "mlp", "--hidden", "8",
           "--optimizer", "adam", "--steps", "2000000", "--valid-fraction", "0", "--no-progress", "--out", str(out)]
    for settle in (6.0, 15.0, 30.0):  # a busy machine may still be compiling: then nothing is saved, try longer
        code, stdout, stderr, waited = _run_until(cmd, "Likelihood:", tmp_path / "fit.out", settle=settle)
        if "nothing was saved" not in stderr:
            break
        assert code == 130 and "Interrupted (Ctrl-C) before the fit's first steps ran" in stderr, stderr
    assert code == 130, (stdout, stderr)
    message = " ".join(stderr.split())
    assert "Interrupted (Ctrl-C) after" in message and f"saved in {out}/" in message, stderr
    assert "Status: interrupted" in stdout
    loaded = sf.load(out / "model")
    assert loaded.status.code == "interrupted" and 0 < loaded.status.steps < 2_000_000
    assert len(pd.read_csv(out / "history.csv")) == loaded.status.steps
    assert (out / "report.html").exists()
    assert all(np.isfinite(np.asarray(v)).all() for v in loaded.params.values())


API_SCRIPT = """
import os
os.environ["SCANFIT_MAX_STEPS"] = "50000000"  # past the default limit (10,000,000), as its message says
import numpy as np, scanfit as sf
rng = np.random.default_rng(0)
x = rng.normal(size=(2000, 3))
y = (x @ np.array([1.0, -1.0, 0.5]) + rng.logistic(size=2000) > 0).astype(int)
print("fitting", flush=True)
r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, optimizer="gd", steps=50_000_000, record_every=100)
finite = all(np.isfinite(np.asarray(v)).all() for v in r.params.values())
print("RESULT", r.status.code, r.status.steps, len(r.history), finite, flush=True)
"""


def test_sigint_to_fit_without_a_progress_bar_returns_interrupted(tmp_path):
    script = tmp_path / "fit.py"
    script.write_text(API_SCRIPT)
    # about 6 us a step: 50,000,000 steps would take minutes; Ctrl-C lands between two chunks
    for settle in (4.0, 15.0, 30.0):  # a busy machine may still be compiling (then 0 steps): try later
        code, stdout, stderr, waited = _run_until([sys.executable, str(script)], "fitting", tmp_path / "api.out",
                                                  settle=settle)
        assert code == 0, stderr
        line = next(li for li in stdout.splitlines() if li.startswith("RESULT"))
        _, status, steps, rows, finite = line.split()
        assert status == "interrupted" and finite == "True", line
        if int(steps) > 0:
            break
    assert 0 < int(steps) < 50_000_000 and int(rows) == int(steps) // 100
    assert waited < 30, f"the fit took {waited:.0f} s to stop after SIGINT"


def test_ctrl_c_while_compiling_returns_before_any_step(monkeypatch):
    """The first Ctrl-C only sets a flag (an exception inside JAX's compiler can crash the process at
    exit); the loop reads it before its first chunk, and a second Ctrl-C raises at once."""
    import signal as sig

    from scanfit.engine import loop, progress

    real = loop._programs

    def pressed_while_compiling(*args):
        out = real(*args)
        sig.raise_signal(sig.SIGINT)  # delivered to the fit's handler: no KeyboardInterrupt here
        return out

    monkeypatch.setattr(loop, "_programs", pressed_while_compiling)
    x = np.linspace(-1, 1, 40)
    r = sf.fit(sf.Linear(), sf.Gaussian(), x, 2 * x, optimizer="gd", steps=200)
    assert r.status.code == "interrupted" and r.status.steps == 0 and r.history.empty
    assert sig.getsignal(sig.SIGINT) is sig.default_int_handler  # Python's handler is back after the fit
    with progress.CtrlC():
        sig.raise_signal(sig.SIGINT)
        assert progress.CtrlC.pressed
        try:
            sig.raise_signal(sig.SIGINT)
            raise AssertionError("a second Ctrl-C must raise KeyboardInterrupt")
        except KeyboardInterrupt:
            pass
