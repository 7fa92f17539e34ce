"""Beyond one device and one process (issue 16, parts 4 and 5): a streamed fit sharded over 8 CPU
devices, two processes on localhost (gloo) each reading half of the files, the CLI on a Parquet
directory (one process and two), and memory that does not grow with the row count."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import scanfit as sf  # noqa: E402
from test_stream import write  # noqa: E402

TIMEOUT = 120  # a child that waits on a lost peer fails the test instead of hanging it


def logit_frame(n=12_000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32) * np.array([1, 10, 100, 0.1], np.float32) + 5
    eta = -0.5 + (X - 5) @ np.array([0.5, -0.05, 0.01, 2.0])
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(np.float32)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(4)])
    frame["y"] = y
    return frame


@pytest.fixture(scope="module")
def logit_dir(tmp_path_factory):
    return write(tmp_path_factory.mktemp("scale") / "data", logit_frame(), files=6)


@pytest.fixture(scope="module")
def reference(logit_dir):
    """The one-device, one-process streamed fit: estimates and standard errors."""
    r = sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(logit_dir, target="y", batch_rows=1001))
    assert r.status.code == "converged"
    return r, estimates(r)


def estimates(r) -> dict:
    return {"coef": np.r_[np.atleast_1d(r.params["beta0"]), r.params["beta1"]].tolist(),
            "se": r.summary()["std_err"].tolist(), "passes": len(r.history)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


FIT = """
import scanfit as sf

def estimates(r):
    return {"coef": np.r_[np.atleast_1d(r.params["beta0"]), r.params["beta1"]].tolist(),
            "se": r.summary()["std_err"].tolist(), "passes": len(r.history)}
"""


def child(tmp_path: Path, name: str, code: str) -> Path:
    """A script for a child process (``FIT``'s helpers, then ``code``); it prints one JSON line starting
    with ``RESULT``."""
    path = tmp_path / f"{name}.py"
    path.write_text("import json, sys\nimport numpy as np\n" + FIT + textwrap.dedent(code))
    return path


def results(out: str) -> dict:
    lines = [li for li in out.splitlines() if li.startswith("RESULT ")]
    assert lines, out[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def run_all(commands, env=None, cwd=None) -> list[subprocess.CompletedProcess]:
    """Start every command at once (processes of one group) and wait for all of them."""
    env = {**os.environ, **(env or {})}
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
             for c in commands]
    done = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=TIMEOUT)
            done.append(subprocess.CompletedProcess(p.args, p.returncode, out))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return done


def assert_same(got: dict, want: dict, rtol=1e-10):
    np.testing.assert_allclose(got["coef"], want["coef"], rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(got["se"], want["se"], rtol=rtol)




def test_eight_cpu_devices_shard_the_rows_and_give_the_one_device_fit(tmp_path, logit_dir, reference):
    code = f"""
    import jax
    from scanfit.engine import passes

    seen = {{}}
    plain_iter = passes.Feeder.__iter__

    def watched(self):  # the first chunk of each pass, as the compiled program receives it
        for item in plain_iter(self):
            x = item[0]
            seen.update(devices=len(x.sharding.device_set), shard=list(x.addressable_shards[0].data.shape),
                        rows=self.rows, mesh=None if self.mesh is None else self.mesh.size)
            yield item

    passes.Feeder.__iter__ = watched
    src = sf.Parquet({str(logit_dir)!r}, target="y", batch_rows=1001)
    r = sf.fit(sf.Linear(), sf.Bernoulli(), src)
    out = estimates(r)
    out.update(seen, n_devices=len(jax.devices()), status=r.status.code, aligned=src.aligned().batch_rows)
    print("RESULT", json.dumps(out))
    """
    [done] = run_all([[sys.executable, str(child(tmp_path, "devices", code))]], env={"JAX_NUM_CPU_DEVICES": "8"})
    assert done.returncode == 0, done.stdout[-3000:]
    got = results(done.stdout)
    assert got["n_devices"] == 8 and got["mesh"] == 8 and got["devices"] == 8
    # the chunk's rows fit the files' row groups (at most batch_rows=1001), rounded up to a multiple of 8
    rows = -(-got["aligned"] // 8) * 8
    assert got["aligned"] <= 1001 and got["rows"] == rows and got["shard"] == [rows // 8, 4]
    # Newton's first passes run in float32, whose sums depend on how the rows are split over devices:
    # the switch to float64 may come one pass earlier or later; the estimates are the same
    assert got["status"] == "converged" and abs(got["passes"] - reference[1]["passes"]) <= 1
    assert_same(got, reference[1])


def two_process_code(port: int, data: Path, one_file: Path, with_empty: Path, with_nan: Path, out: Path) -> str:
    return f"""
    pid = int(sys.argv[1])
    sf.distributed.initialize("localhost:{port}", num_processes=2, process_id=pid)
    import jax

    errors = {{}}
    for name, path in (("one_file", {str(one_file)!r}), ("empty", {str(with_empty)!r}), ("nan", {str(with_nan)!r})):
        try:
            sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(path, target="y"))
        except Exception as err:
            errors[name] = type(err).__name__ + ": " + str(err)
    try:  # each process started with other columns: refused by both, before any sums are added up
        sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet({str(data)!r}, target="y", features=["x0", "x1" if pid else "x2"]))
    except Exception as err:
        errors["mixed"] = type(err).__name__ + ": " + str(err)
    r = sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet({str(data)!r}, target="y", batch_rows=1001))
    if sf.distributed.is_writer():
        r.save({str(out)!r})
    out = estimates(r)
    out.update(errors=errors, processes=jax.process_count(), index=sf.distributed.process_index(),
               status=r.status.code)
    print("RESULT", json.dumps(out))
    """


def test_two_processes_each_read_half_and_give_the_one_process_fit(tmp_path, logit_dir, reference):
    frame = logit_frame(600, seed=3)
    one_file = write(tmp_path / "one", frame, files=1)
    with_empty = write(tmp_path / "empty", frame, files=1)
    pq.write_table(pa.Table.from_pandas(frame.iloc[:0], preserve_index=False), with_empty / "part-999.parquet")
    with_nan = write(tmp_path / "nan", frame, files=2)
    bad = frame.iloc[300:].copy()
    bad.iloc[5, 0] = np.nan  # in the second file: process 1's
    pq.write_table(pa.Table.from_pandas(bad, preserve_index=False), with_nan / "part-001.parquet")
    out = tmp_path / "model"
    script = child(tmp_path, "two", two_process_code(free_port(), logit_dir, one_file, with_empty, with_nan, out))
    done = run_all([[sys.executable, str(script), str(i)] for i in range(2)])
    for d in done:
        assert d.returncode == 0, d.stdout[-3000:]
    got = [results(d.stdout) for d in done]
    assert [g["index"] for g in got] == [0, 1] and all(g["processes"] == 2 for g in got)
    for g in got:
        assert g["status"] == "converged" and abs(g["passes"] - reference[1]["passes"]) <= 1
        assert_same(g, reference[1])
        assert g["coef"] == got[0]["coef"] and g["se"] == got[0]["se"]  # the same numbers on every process
        errors = g["errors"]
        assert "has 1 file(s) for 2 processes" in errors["one_file"]
        assert "Process 1 read no rows" in errors["empty"]
        assert "Process 1 was started with another data or fit options than process 0" in errors["mixed"]
    assert "missing values" in got[1]["errors"]["nan"]  # process 1's own error, and process 0 is told
    assert "Process 1 could not read its share" in got[0]["errors"]["nan"]
    saved = sf.load(out)  # process 0 wrote the one model
    np.testing.assert_allclose(np.r_[np.atleast_1d(saved.params["beta0"]), saved.params["beta1"]],
                               reference[1]["coef"], rtol=1e-10)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("model")) == ["model"]


def test_cli_fits_a_parquet_directory_as_the_api_does(tmp_path, logit_dir, reference):
    from typer.testing import CliRunner

    from scanfit.cli import app

    res = CliRunner().invoke(app, ["fit", str(logit_dir), "--target", "y", "--batch-rows", "1001", "--out",
                                   str(tmp_path / "o"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "Rows: 12000" in res.output and "streamed" in res.output
    saved = sf.load(tmp_path / "o" / "model")
    want = reference[0]
    np.testing.assert_allclose(np.r_[np.atleast_1d(saved.params["beta0"]), saved.params["beta1"]],
                               reference[1]["coef"], rtol=1e-12)
    # the printed summary holds the API's estimates and standard errors as its summary table prints them
    rows = want.summary_text().split(" term ")[-1].splitlines()
    rows = [r for r in rows if r.startswith(("intercept", "x"))]
    assert len(rows) == 5 and all(r in res.output for r in rows)
    assert (tmp_path / "o" / "history.csv").is_file() and (tmp_path / "o" / "report.html").is_file()
    glob = CliRunner().invoke(app, ["fit", str(logit_dir / "part-00[0-5].parquet"), "--target", "y",
                                    "--features", "x0,x1", "--out", str(tmp_path / "g"), "--no-progress"])
    assert glob.exit_code == 0, glob.output
    api = sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(logit_dir, target="y", features=["x0", "x1"]))
    np.testing.assert_allclose(sf.load(tmp_path / "g" / "model").params["beta1"], api.params["beta1"], rtol=1e-12)
    for args, message in ((["--formula", "y ~ x0"], "The '--formula' option reads the table in memory"),
                          (["--coordinator", "localhost:1"], "go with '--distributed'")):
        bad = CliRunner().invoke(app, ["fit", str(logit_dir), "--target", "y", *args, "--out", str(tmp_path / "b")])
        assert bad.exit_code == 1 and message in bad.output, bad.output


def test_cli_distributed_writes_once(tmp_path, logit_dir, reference):
    exe = Path(sys.executable).with_name("scanfit")
    port = free_port()
    out = tmp_path / "o"
    done = run_all([[str(exe), "fit", str(logit_dir), "--target", "y", "--batch-rows", "1001", "--distributed",
                     "--coordinator", f"localhost:{port}", "--num-processes", "2", "--process-id", str(i),
                     "--out", str(out), "--no-progress"] for i in range(2)])
    for d in done:
        assert d.returncode == 0, d.stdout[-3000:]
    assert "Wrote" in done[0].stdout and "Wrote" not in done[1].stdout
    assert "Rows: 12000" in done[0].stdout
    saved = sf.load(out / "model")
    np.testing.assert_allclose(np.r_[np.atleast_1d(saved.params["beta0"]), saved.params["beta1"]],
                               reference[1]["coef"], rtol=1e-10)


def test_memory_does_not_grow_with_the_rows(tmp_path):
    rng = np.random.default_rng(0)
    beta = np.linspace(-0.5, 0.5, 10)
    for name, files in (("small", 2), ("large", 20)):  # files of one size: 2e5 and 2e6 rows
        d = tmp_path / name
        d.mkdir()
        for i in range(files):
            x = rng.normal(size=(100_000, 10)).astype(np.float32)
            y = (rng.random(100_000) < 1 / (1 + np.exp(-(x @ beta)))).astype(np.float32)
            cols = {f"x{j}": x[:, j] for j in range(10)} | {"y": y}
            pq.write_table(pa.table(cols), d / f"part-{i:02d}.parquet", row_group_size=50_000)
    code = f"""
    import resource

    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB (Linux: kB)

    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 10)).astype(np.float32)
    sf.fit(sf.Linear(), sf.Bernoulli(), x, (x[:, 0] + rng.normal(size=500) > 0).astype(float))
    out = {{"warm": peak()}}
    for name in ("small", "large"):
        r = sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet({str(tmp_path)!r} + "/" + name, target="y",
                                                            batch_rows=50_000, cache=0))
        out[name] = peak()
        out[name + "_rows"] = int(r.inference["n_obs"])
    print("RESULT", json.dumps(out))
    """
    # glibc's per-thread malloc arenas (pyarrow's, XLA's, the prefetch thread's) each keep freed chunks for
    # reuse: a plateau (about 60 MB here) reached after a few dozen chunks, which the small fit never reaches.
    # With two arenas the test measures what the fit holds, against a margin below the 80 MB of the rows
    [done] = run_all([[sys.executable, str(child(tmp_path, "memory", code))]], env={"MALLOC_ARENA_MAX": "2"})
    assert done.returncode == 0, done.stdout[-3000:]
    got = results(done.stdout)
    assert got["small_rows"] == 200_000 and got["large_rows"] == 2_000_000
    assert got["large"] - got["small"] < 60, got  # ten times the rows (80 MB more of x), < 60 MB more peak


def test_initialize_waits_a_bounded_time_for_the_others(monkeypatch):
    """scanfit's shorter limits for a process that never joins or stops answering (JAX's: 300 s, 100 s),
    unless given."""
    import jax

    from scanfit.engine import distributed

    seen = []

    def initialize(coordinator_address=None, num_processes=None, process_id=None, initialization_timeout=300,
                   heartbeat_timeout_seconds=100, shutdown_timeout_seconds=300):  # JAX's signature, its defaults
        seen.append(dict(locals()))

    monkeypatch.setattr(jax.distributed, "initialize", initialize)
    monkeypatch.setattr(jax.config, "update", lambda *a: None)
    monkeypatch.setitem(distributed._STATE, "initialized", False)
    sf.distributed.initialize("localhost:1", num_processes=2, process_id=1)
    monkeypatch.setitem(distributed._STATE, "initialized", False)
    sf.distributed.initialize("localhost:1", num_processes=2, process_id=1, initialization_timeout=600)
    monkeypatch.setitem(distributed._STATE, "initialized", False)
    monkeypatch.setenv("SCANFIT_DISTRIBUTED_TIMEOUT", "5")
    sf.distributed.initialize("localhost:1", num_processes=2, process_id=1)
    # scanfit's watchdog ends the wait (60 s, or as given); JAX's own deadline (a C++ abort) comes 30 s later
    assert seen[0]["initialization_timeout"] == 90 and seen[0]["heartbeat_timeout_seconds"] == 30
    assert seen[1]["initialization_timeout"] == 630 and seen[1]["process_id"] == 1
    assert seen[2]["initialization_timeout"] == 35
    monkeypatch.setitem(distributed._STATE, "initialized", False)
    for value in ("soon", "0", "-1"):
        monkeypatch.setenv("SCANFIT_DISTRIBUTED_TIMEOUT", value)
        with pytest.raises(ValueError, match="SCANFIT_DISTRIBUTED_TIMEOUT=.* is not a number of seconds"):
            sf.distributed.initialize("localhost:1", num_processes=2, process_id=1)
    monkeypatch.delenv("SCANFIT_DISTRIBUTED_TIMEOUT")
    with pytest.raises(ValueError, match="'localhost' .* is not host:port"):
        sf.distributed.initialize("localhost", num_processes=2, process_id=1)


def test_cli_refuses_a_coordinator_port_in_use(tmp_path, logit_dir):
    """Process 0 checks the port before starting the coordinator (JAX waited, then aborted after ~126 s)."""
    from typer.testing import CliRunner

    from scanfit.cli import app

    with socket.socket() as taken:
        taken.bind(("localhost", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = CliRunner().invoke(app, ["fit", str(logit_dir), "--target", "y", "--distributed", "--coordinator",
                                       f"localhost:{port}", "--num-processes", "2", "--process-id", "0",
                                       "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and f"Port {port} of the coordinator address" in res.output, res.output
    assert "in use" in res.output and "Choose a free port" in res.output and "Traceback" not in res.output


def cli_join(logit_dir, port, count, pid, out):
    return [str(Path(sys.executable).with_name("scanfit")), "fit", str(logit_dir), "--target", "y", "--distributed",
            "--coordinator", f"localhost:{port}", "--num-processes", str(count), "--process-id", str(pid),
            "--out", str(out), "--no-progress"]


def test_a_peer_that_never_starts_or_another_count_ends_with_scanfit_message(tmp_path, logit_dir):
    """Within the documented timeout, scanfit's message and status 1, not JAX's C++ abort (134)."""
    import time

    start = time.monotonic()
    [alone] = run_all([cli_join(logit_dir, free_port(), 2, 0, tmp_path / "a")],
                      env={"SCANFIT_DISTRIBUTED_TIMEOUT": "3"})
    assert alone.returncode == 1, alone.stdout[-3000:]
    assert time.monotonic() - start < 30
    assert "Error: Process 0 waited 3 s for the other processes" in alone.stdout
    assert "SCANFIT_DISTRIBUTED_TIMEOUT" in alone.stdout and "Terminating process" not in alone.stdout
    port = free_port()  # both join, then compare their counts
    done = run_all([cli_join(logit_dir, port, count, pid, tmp_path / "b") for pid, count in ((0, 2), (1, 3))],
                   env={"SCANFIT_DISTRIBUTED_TIMEOUT": "20"})
    assert [d.returncode for d in done] == [1, 1], [d.stdout[-2000:] for d in done]
    assert "Process 1 (pid" in done[0].stdout and "--num-processes 3 (num_processes) and this process (0) with 2" \
        in done[0].stdout
    assert "--num-processes 2 (num_processes) and this process (1) with 3" in done[1].stdout


def test_a_killed_peer_ends_the_others_at_once_with_the_message(tmp_path):
    """The message, then status 1 at exit, without waiting for the dead peer in JAX's shutdown (an abort,
    134, about 30 s later)."""
    code = f"""
    import os
    port, pid = {free_port()}, int(sys.argv[1])
    sf.distributed.initialize(f"localhost:{{port}}", num_processes=2, process_id=pid)
    sf.distributed.allgather(np.ones(3))
    if pid == 1:
        os._exit(9)  # killed
    import time
    time.sleep(1)
    try:
        sf.distributed.allgather(np.ones(3))
    except RuntimeError as err:
        print("RESULT", json.dumps(str(err)))
    """
    script = child(tmp_path, "killed", code)
    done = run_all([[sys.executable, str(script), str(i)] for i in range(2)], env={"SCANFIT_DISTRIBUTED_TIMEOUT": "20"})
    assert done[1].returncode == 9 and done[0].returncode == 1, done[0].stdout[-3000:]
    assert "Process 0 of 2 could not exchange sums with the others" in results(done[0].stdout)
    assert "Terminating process" not in done[0].stdout
