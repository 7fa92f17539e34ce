"""Issue 16 on one GPU: the streamed logit, Newton at 1,000 features and 1,024 restarts, each
against the device's floor measured in the same process. One prepared run, under 10 minutes.

    PYTHONPATH=src python3 benchmarks/gpu.py --out gpu.json           # on the lent GPU machine
    python benchmarks/gpu.py --quick --out /tmp/gpu-quick.json        # a smoke test, CPU included
    python benchmarks/gpu.py --only newton,restarts                   # some workloads only

Workloads (``--only`` names; ``--quick`` sizes in brackets), each in its own fresh process (its
own memory peaks, JAX's device memory its own, a failure or ``--timeout`` costs that row only):
  stream    the logit of benchmarks/scale.py (20 float32 standard-normal features, a 0/1 target)
            at 1e7 and 1e8 rows [1e5, 1e6], written here as Parquet (one file per 1e6 rows, the
            1e7 fit reads the first ten files), fitted with
            sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(files, target="y"), optimizer="newton")
            + summary(). Without sf.Parquet the fit takes NumPy arrays instead, up to 2e7 rows.
            Floor: one pyarrow pass over the files (read and sum every column) + one host-to-device
            copy of the data + for each of scanfit's passes one read of the data (rows x 21 float32)
            at the device's bandwidth.
  newton    an in-memory logit, 2e5 rows x 1,000 float32 features [2e4 x 100], newton + summary().
            Floors: each pass reading x once at the device's bandwidth, and each pass's X'WX
            alone ((x * w).T @ x in float32, jitted, the best of three) - the ratio uses the larger.
  restarts  the notebook's network: sf.MLP(hidden=2, activation="sigmoid"), sf.Bernoulli(),
            sf.datasets.hill(n_train=10_000, n_valid=1_000, seed=0), rmsprop 0.01, 4,000 steps,
            1,024 restarts [16 restarts, 400 steps]. Floors: the bandwidth floor of writing and
            reading every start's hidden and output activations once per step
            (restarts x n x (hidden + 1) x 4 bytes x 2 per step), and a plain JAX loop (the notebook's
            rmsprop step under vmap in lax.fori_loop, no statistics) - the ratio uses the bandwidth
            floor, the plain loop is in the notes.
The bandwidth (GB/s) is jnp.sum over a float32 device array of --bw-gb GB (4; 0.25 with --quick),
the best of five after a warm-up, measured in every workload's process.

Each scanfit fit runs twice in its process: "first s" (compilation included; the persistent
compilation cache as it is) and "warm s" (the second call); ratios use warm s. The 1e8-row fit runs
once (its ratio then uses the first call). The workloads run in the order newton, restarts, stream
(the largest last); one whose process could not finish inside --budget (570 s in all) is skipped. The table goes to
stdout and every number to the JSON file of --out (written after each workload).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FEATURES = [f"x{j}" for j in range(20)]
ROWS_PER_FILE = 1_000_000


# ----------------------------------------------------------------------------------- measurements


def bandwidth(gb: float) -> float:
    """Device read bandwidth in GB/s: one jnp.sum over a float32 array of ``gb`` GB, best of five."""
    import jax
    import jax.numpy as jnp

    n = int(gb * 1e9 / 4)
    a = jax.block_until_ready(jnp.ones(n, jnp.float32))
    total = jax.jit(jnp.sum)
    total(a).block_until_ready()
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        total(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    del a
    return n * 4 / best / 1e9


def host_to_device(gb: float) -> float:
    """Host-to-device copy in GB/s (a fresh NumPy array each time; best of three)."""
    import jax
    import numpy as np

    best = math.inf
    for i in range(3):
        host = np.full(int(gb * 1e9 / 4), float(i), dtype=np.float32)
        t0 = time.perf_counter()
        jax.block_until_ready(jax.device_put(host))
        best = min(best, time.perf_counter() - t0)
    return gb / best


def device_info() -> dict:
    import jax

    d = jax.devices()[0]
    return {"platform": d.platform, "device_kind": d.device_kind, "jax": jax.__version__,
            "devices": len(jax.devices())}


def device_peak_gb():
    import jax

    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # noqa: BLE001 - not every backend has memory stats
        stats = {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 1e9


def host_peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def timed_twice(fn, twice: bool = True):
    """(first call seconds, second call seconds or None, the last result)."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    if not twice:
        return first, None, out
    t0 = time.perf_counter()
    out = fn()
    return first, time.perf_counter() - t0, out


# ----------------------------------------------------------------------------------- data


def _write_file(args):
    directory, i, n, seed = args
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng([seed, i])
    x = rng.standard_normal((n, len(FEATURES)), dtype=np.float32)
    b = 0.5 * np.sin(np.arange(1, 21))
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(x @ b - 0.5)))).astype(np.float32)
    columns = {name: x[:, j].copy() for j, name in enumerate(FEATURES)}
    columns["y"] = y
    pq.write_table(pa.table(columns), Path(directory) / f"part-{i:05d}.parquet", row_group_size=250_000)


def write_data(directory: Path, rows: int, workers: int) -> float:
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    n_files = max(1, math.ceil(rows / ROWS_PER_FILE))
    jobs = [(str(directory), i, min(ROWS_PER_FILE, rows - i * ROWS_PER_FILE), 0) for i in range(n_files)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_write_file, jobs))
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------------- workloads


def work_stream(a: dict) -> dict:
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    import scanfit as sf

    rows, files = a["rows"], a["files"]
    bw = bandwidth(a["bw_gb"])
    h2d = host_to_device(min(1.0, rows * 21 * 4 / 1e9))
    dataset = ds.dataset(files, format="parquet")
    t0 = time.perf_counter()
    for batch in dataset.to_batches(columns=FEATURES + ["y"]):
        for j in range(batch.num_columns):
            pc.sum(batch.column(j))
    io = time.perf_counter() - t0
    source = getattr(sf, "Parquet", None)  # None until the streaming engine is in this scanfit
    how = "sf.Parquet (streamed)"
    if source is not None:
        data, kwargs = source(files, target="y"), {}
    elif rows <= 20_000_000:
        table = dataset.to_table(columns=FEATURES + ["y"])
        data = np.column_stack([table.column(c).to_numpy() for c in FEATURES])
        kwargs = {"y": table.column("y").to_numpy()}
        del table
        how = "NumPy arrays (sf.Parquet unavailable)"
    else:
        return {"skipped": "sf.Parquet unavailable and the arrays would not fit", "bandwidth": bw}

    def run():
        r = sf.fit(sf.Linear(), sf.Bernoulli(), data, optimizer="newton", **kwargs)
        return r, r.summary()

    first, warm, (r, table) = timed_twice(run, a["twice"])
    passes = len(r.history)
    data_gb = rows * 21 * 4 / 1e9
    floor = io + data_gb / h2d + passes * data_gb / bw
    once = "" if warm is not None else "one call only (ratio from it, compilation included); "
    return {"first": first, "warm": warm, "floor": floor, "ratio": (warm or first) / floor, "passes": passes,
            "status": r.status.code, "bandwidth": bw, "h2d": h2d, "io": io, "how": how,
            "coef": table["estimate"].tolist(), "se": table["std_err"].tolist(),
            "notes": f"{once}{how}; {passes} passes, {r.status.code}; floor = io {io:.2f} + h2d {data_gb / h2d:.2f} "
                     f"+ {passes} x {data_gb:.2f} GB at {bw:.0f} GB/s"}


def work_newton(a: dict) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import scanfit as sf

    n, d = a["rows"], a["features"]
    bw = bandwidth(a["bw_gb"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d), dtype=np.float32)
    b = rng.standard_normal(d) / math.sqrt(d)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(x @ b)))).astype(np.float32)

    xd = jax.device_put(x)
    wd = jax.device_put(rng.random(n, dtype=np.float32) * 0.25)
    product = jax.jit(lambda x, w: (x * w[:, None]).T @ x)
    product(xd, wd).block_until_ready()
    xwx = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        product(xd, wd).block_until_ready()
        xwx = min(xwx, time.perf_counter() - t0)
    del xd, wd

    def run():
        r = sf.fit(sf.Linear(), sf.Bernoulli(), x, y, optimizer="newton")
        return r, r.summary()

    first, warm, (r, _) = timed_twice(run)
    passes = len(r.history)
    read = passes * x.nbytes / 1e9 / bw
    floor = max(read, passes * xwx)
    return {"first": first, "warm": warm, "floor": floor, "ratio": warm / floor, "passes": passes,
            "status": r.status.code, "bandwidth": bw, "xwx": xwx, "read_floor": read,
            "notes": f"{n:.0e} x {d}; {passes} passes, {r.status.code}; floor = max({passes} x X'WX f32 "
                     f"{xwx * 1e3:.1f} ms, {passes} reads of x {read:.3f} s)"}


def work_restarts(a: dict) -> dict:
    from functools import partial

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax import lax

    import scanfit as sf

    restarts, steps, hidden = a["restarts"], a["steps"], 2
    bw = bandwidth(a["bw_gb"])
    h = sf.datasets.hill(n_train=10_000, n_valid=1_000, seed=0)

    def run():
        return sf.fit(sf.MLP(hidden=hidden, activation="sigmoid"), sf.Bernoulli(), h.train.x, h.train.y,
                      valid=(h.valid.x, h.valid.y), optimizer="rmsprop", learning_rate=0.01, steps=steps,
                      restarts=restarts, seed=0)

    first, warm, r = timed_twice(run)

    # the plain loop: the notebook's rmsprop step, vmapped over the starts, no statistics
    x, y = jnp.asarray(h.train.x, jnp.float32), jnp.asarray(h.train.y)

    def objective(c):
        logits = jax.nn.sigmoid(x @ c["W0"] + c["b0"]) @ c["W1"] + c["b1"]
        return jnp.mean(jnp.where(y, jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)))

    opt = optax.rmsprop(0.01)

    @partial(jax.jit, static_argnums=1)
    def plain(c0, k):
        def one(c):
            def step(_, cs):
                c, s = cs
                g = jax.tree.map(lambda v: -v, jax.grad(objective)(c))
                u, s = opt.update(g, s, c)
                return optax.apply_updates(c, u), s
            return lax.fori_loop(0, k, step, (c, opt.init(c)))[0]
        return jax.vmap(one)(c0)

    key = np.random.default_rng(0)
    c0 = {"W0": key.standard_normal((restarts, 2, hidden)), "b0": key.standard_normal((restarts, hidden)),
          "W1": key.standard_normal((restarts, hidden)), "b1": key.standard_normal(restarts)}
    c0 = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), c0)
    jax.block_until_ready(plain(c0, steps))
    t0 = time.perf_counter()
    jax.block_until_ready(plain(c0, steps))
    loop = time.perf_counter() - t0
    traffic = restarts * len(h.train.y) * (hidden + 1) * 4 * 2 * steps / 1e9
    read = traffic / bw
    best = r.restarts
    valid_acc = float(r.final.get("valid_accuracy", float("nan")))
    return {"first": first, "warm": warm, "floor": read, "ratio": warm / read, "bandwidth": bw,
            "bandwidth_floor": read, "plain_loop": loop, "status": r.status.code, "valid_accuracy": valid_acc,
            "starts": len(best),
            "notes": f"{restarts} starts x {steps} steps; floor: {traffic:.0f} GB of activations at {bw:.0f} GB/s; "
                     f"plain JAX loop {loop:.2f} s (scanfit / it = {warm / loop:.2f}); "
                     f"chosen start's valid accuracy {valid_acc:.3f}"}


WORK = {"stream": work_stream, "newton": work_newton, "restarts": work_restarts}


def child_main(name: str, payload: str) -> None:
    a = json.loads(payload)
    info = device_info()
    try:
        out = WORK[name](a)
    except Exception as err:  # noqa: BLE001 - one row's failure is reported, not raised
        out = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
    out.update(device=info, host_peak_gb=host_peak_gb(), device_peak_gb=device_peak_gb())
    print("RESULT " + json.dumps(out, default=float), flush=True)


# ----------------------------------------------------------------------------------- parent


def fmt(v, spec):
    return "" if v is None else format(v, spec)


def run_child(name: str, payload: dict, timeout: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, json.dumps(payload)]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return {"error": f"failed: {tail[0][:300]}", "stderr_tail": done.stderr[-3000:]}
    out = json.loads(lines[-1][len("RESULT "):])
    out["process_s"] = time.perf_counter() - t0
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke test (runs on the CPU too)")
    ap.add_argument("--only", default=None, help="comma-separated workloads of stream,newton,restarts")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per workload process")
    ap.add_argument("--budget", type=float, default=570, help="seconds for the whole run (under the lease's 10 min)")
    ap.add_argument("--bw-gb", type=float, default=None, help="GB of the bandwidth array (4; 0.25 with --quick)")
    ap.add_argument("--data-dir", default=None, help="write the Parquet here (default: a temp dir, removed)")
    args = ap.parse_args(argv)
    only = ["stream", "newton", "restarts"] if args.only is None else [s.strip() for s in args.only.split(",")]
    bw_gb = args.bw_gb or (0.25 if args.quick else 4.0)
    if args.quick:
        sizes, newton, restarts = [100_000, 1_000_000], (20_000, 100), (16, 400)
    else:
        sizes, newton, restarts = [10_000_000, 100_000_000], (200_000, 1_000), (1_024, 4_000)

    started = time.perf_counter()
    results: dict = {"argv": sys.argv[1:], "host": platform.node(), "machine": platform.machine(),
                     "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"), "rows": {}}

    def save():
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1, default=float))

    def child(name, payload):
        left = args.budget - (time.perf_counter() - started)
        if left < 30:
            return {"skipped": f"out of the run's budget ({args.budget:.0f} s)"}
        return run_child(name, payload, min(args.timeout, left - 5))

    def report(key, r):
        results["rows"][key] = r
        results.setdefault("device", r.get("device"))
        save()
        what = (f"first {r['first']:.2f} s, warm {fmt(r['warm'], '.2f')} s, floor {r['floor']:.3f} s, "
                f"ratio {r['ratio']:.1f}" if "first" in r else (r.get("skipped") or r.get("error")))
        print(f"  [{time.perf_counter() - started:5.0f} s] {key}: {what}", flush=True)

    own = args.data_dir is None
    root = Path(tempfile.mkdtemp(prefix="scanfit-gpu-")) if own else Path(args.data_dir)
    try:
        if "newton" in only:
            report(f"newton {newton[1]} features", child("newton", {"rows": newton[0], "features": newton[1],
                                                                    "bw_gb": bw_gb}))
        if "restarts" in only:
            report(f"restarts {restarts[0]}", child("restarts", {"restarts": restarts[0], "steps": restarts[1],
                                                                 "bw_gb": bw_gb}))
        if "stream" in only:
            directory = root / "logit"
            write_s = write_data(directory, max(sizes), workers=min(16, os.cpu_count() or 1))
            results["write_s"] = write_s
            print(f"  [{time.perf_counter() - started:5.0f} s] wrote {max(sizes):,} rows of Parquet in {write_s:.1f} s",
                  flush=True)
            for rows in sizes:
                n_files = max(1, math.ceil(rows / ROWS_PER_FILE))
                files = sorted(str(p) for p in directory.glob("part-*.parquet"))[:n_files]
                if rows < ROWS_PER_FILE:  # the quick size: a file of its own
                    small = root / f"logit-{rows}"
                    write_data(small, rows, workers=1)
                    files = sorted(str(p) for p in small.glob("part-*.parquet"))
                payload = {"rows": rows, "files": files if len(files) > 1 else files[0], "bw_gb": bw_gb,
                           "twice": rows < 100_000_000}
                report(f"stream {rows:.0e}", child("stream", payload))
    finally:
        if own:
            shutil.rmtree(root, ignore_errors=True)

    results["total_s"] = time.perf_counter() - started
    save()
    dev = results.get("device") or {}
    print(f"\nscanfit on {dev.get('device_kind', '?')} ({dev.get('platform', '?')}), jax {dev.get('jax', '?')}, "
          f"{results['date']}; total {results['total_s']:.0f} s")
    print(f"{'workload':<22}{'first s':>9}{'warm s':>9}{'floor s':>9}{'ratio':>7}{'GB/s':>7}{'host GB':>9}"
          f"{'dev GB':>8}  notes")
    for key, r in results["rows"].items():
        if "first" not in r:
            print(f"{key:<22}{'':>58}  {r.get('skipped') or r.get('error')}")
            continue
        dev_gb = r.get("device_peak_gb")
        print(f"{key:<22}{r['first']:>9.2f}{fmt(r['warm'], '9.2f'):>9}{r['floor']:>9.3f}{r['ratio']:>7.1f}"
              f"{r['bandwidth']:>7.0f}{r['host_peak_gb']:>9.2f}{'' if dev_gb is None else format(dev_gb, '8.2f'):>8}"
              f"  {r['notes']}")
    print("ratio: warm s (else first s) / floor s (floor per workload: see the module docstring); GB/s: the device's read "
          "bandwidth measured in that workload's process")
    if args.out:
        print(f"results: {args.out}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child_main(sys.argv[2], sys.argv[3])
    else:
        main()
