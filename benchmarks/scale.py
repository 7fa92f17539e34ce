"""Issue 16: an exact logit with standard errors, streamed from Parquet, against the floors and the peers.

    pip install -e ".[scale]"                          # pyspark, dask-ml, glum, statsmodels, ...; Java 17 for Spark
    python benchmarks/scale.py                         # 1e6, 1e7, 3e7 rows (about an hour on 2 cores)
    python benchmarks/scale.py --sizes 1e5,1e6         # a quick trial (a few minutes)
    python benchmarks/scale.py --sizes 1e8             # the 1e8 size (9 GB of Parquet in the temp dir)
    python benchmarks/scale.py --only scanfit,floor    # some systems only (names below)
    python benchmarks/scale.py --json out.json         # the results as JSON too

Data, written by this script into a temporary directory (``--data-dir`` to keep and reuse it): a
logit with 20 float32 standard-normal features ``x0..x19`` and a float32 0/1 target ``y``, one
Parquet file per 1e6 rows (fewer rows: one file), row groups of ``--row-group`` rows (250,000).
The files are read back from the OS page cache as written (the machine's memory holds them).

Every system runs in its own fresh process (``--timeout`` each). "wall s" is what that system's
user waits for a fit with standard errors, timed inside the process after its imports and (Spark)
its JVM start, which is reported apart; in-memory systems load the Parquet into NumPy float64
first (the "load" note, not in the wall). "peak GB" is the process tree's peak resident memory:
the larger of the child's own ``ru_maxrss`` and psutil's sampled sum over the child and its
children (the JVM), so imports and the JVM's heap are in it. "x scanfit" is wall / scanfit's wall
in the same run (above 1: scanfit is faster).

Systems (``--only`` names):
  io           the I/O floor: one streaming pass with pyarrow.dataset over the files, every column
               read and summed (pyarrow's default batches and read-ahead)
  floor        the arithmetic floor: the I/O floor plus, for each of scanfit's passes, one pass of
               X~'WX~ (21 x 21, float64 NumPy/BLAS, over the same chunks held one at a time; only
               the products are timed, each chunk's the best of three with BLAS's threads and of
               three with one thread, the decoding is not)
  scanfit      sf.fit(sf.Linear(), sf.Bernoulli(), sf.Parquet(dir, target="y"), optimizer="newton")
               then result.summary() (fit + standard errors), streamed; compilation included (the
               persistent compilation cache as the user has it)
  scanfit-mem  the same fit on NumPy arrays read from the Parquet (float32 x), not in the defaults
  spark        Spark MLlib GeneralizedLinearRegression(family="binomial", link="logit"), IRLS, local[2],
               spark.read.parquet (not cached) + VectorAssembler, fit + summary.coefficientStandardErrors
  dask         dask-ml LogisticRegression(solver="newton") on dask.dataframe.read_parquet (threads;
               no standard errors)
  glum         glum GeneralizedLinearRegressor(family="binomial", alpha=0), in memory (float64), fit +
               std_errors(dispersion=1, robust=False)
  sklearn      scikit-learn LogisticRegression without penalty (C=inf), lbfgs, tol 1e-4, in memory
               (float64; no standard errors)
  statsmodels  statsmodels Logit(...).fit(method="newton") + .bse, in memory (float64)
In-memory systems are skipped ("skipped: memory") where their expected peak (scaled from issue 16's
measurements at 1e7 rows) exceeds ``--mem-budget`` (default 40% of the machine's memory: on a
24 GB machine they run at 1e7 and are skipped at 3e7 and beyond).

At the end: issue 16's targets at 1e7 rows as pass/fail lines (scanfit fit + SEs >= 10x faster than
Spark's GLR, >= 2x faster than glum's fit + SEs, no slower than scikit-learn's lbfgs; scanfit's peak
memory under 1.5 GB at every size run; scanfit's ratio to the floor), and the agreement of scanfit's
coefficients and standard errors with every peer that gives them (max abs difference).
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
import threading
import time
from datetime import date
from pathlib import Path

FEATURES = [f"x{j}" for j in range(20)]
TARGET = "y"
ROWS_PER_FILE = 1_000_000
INTERCEPT = -0.5
SYSTEMS = ["io", "floor", "scanfit", "scanfit-mem", "spark", "dask", "glum", "sklearn", "statsmodels"]  # table order
RUN_ORDER = ["io", "scanfit", "floor", "scanfit-mem", "spark", "dask", "glum", "sklearn", "statsmodels"]  # floor: scanfit's passes
DEFAULT_SYSTEMS = [s for s in SYSTEMS if s != "scanfit-mem"]
# Expected peak GB per 1e6 rows of the in-memory systems (issue 16, at 1e7 rows: sklearn 3.8 GB,
# glum 4.7, statsmodels 6.6, scanfit in memory 14.2), for the "skipped: memory" rule.
GB_PER_MILLION = {"sklearn": 0.38, "glum": 0.47, "statsmodels": 0.66, "scanfit-mem": 1.42}
LABELS = {
    "io": "pyarrow stream (I/O floor)",
    "floor": "floor: I/O + passes x X'WX",
    "scanfit": "scanfit newton, streamed",
    "scanfit-mem": "scanfit newton, in memory",
    "spark": "Spark GLR irls, local[2]",
    "dask": "dask-ml newton, streamed",
    "glum": "glum irls, in memory",
    "sklearn": "sklearn lbfgs, in memory",
    "statsmodels": "statsmodels newton, in mem",
}


def true_coefficients():
    import numpy as np

    return INTERCEPT, (0.5 * np.sin(np.arange(1, 21))).astype(np.float64)


# ---------------------------------------------------------------------------------------------
# data


def write_data(directory: Path, rows: int, row_group: int, seed: int = 0) -> dict:
    """Write ``rows`` rows as Parquet files of up to ROWS_PER_FILE rows; reuse them when complete."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    marker = directory / "_complete.json"
    spec = {"rows": rows, "row_group": row_group, "seed": seed, "features": len(FEATURES), "intercept": INTERCEPT}
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return spec
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    b0, b = true_coefficients()
    n_files = max(1, math.ceil(rows / ROWS_PER_FILE))
    left = rows
    for i in range(n_files):
        n = min(ROWS_PER_FILE, left)
        left -= n
        rng = np.random.default_rng([seed, i])
        x = rng.standard_normal((n, len(FEATURES)), dtype=np.float32)
        eta = b0 + x @ b
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float32)
        columns = {name: x[:, j].copy() for j, name in enumerate(FEATURES)}
        columns[TARGET] = y
        pq.write_table(pa.table(columns), directory / f"part-{i:05d}.parquet", row_group_size=row_group)
    marker.write_text(json.dumps(spec))
    return spec


def disk_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.glob("*.parquet"))


# ---------------------------------------------------------------------------------------------
# children: each runs one system in a fresh process and prints one line "RESULT {json}"


def load_float64(directory: str, dtype: str = "float64"):
    """The whole dataset as NumPy: x (n, 20) float64 (or ``dtype``), y (n,) float64; the time it took."""
    import numpy as np
    import pyarrow.dataset as ds

    t0 = time.perf_counter()
    dataset = ds.dataset(directory, format="parquet")
    n = dataset.count_rows()
    x = np.empty((n, len(FEATURES)), dtype=dtype)
    y = np.empty(n, dtype=np.float64)
    at = 0
    for batch in dataset.to_batches(columns=FEATURES + [TARGET]):
        k = batch.num_rows
        for j in range(len(FEATURES)):
            x[at:at + k, j] = batch.column(j).to_numpy()
        y[at:at + k] = batch.column(len(FEATURES)).to_numpy()
        at += k
    return x, y, time.perf_counter() - t0


def child_io(a: dict) -> dict:
    import pyarrow
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    t0 = time.perf_counter()
    dataset = ds.dataset(a["dir"], format="parquet")
    sums = [0.0] * (len(FEATURES) + 1)
    rows = batches = 0
    for batch in dataset.to_batches(columns=FEATURES + [TARGET]):
        for j in range(batch.num_columns):
            sums[j] += pc.sum(batch.column(j)).as_py()
        rows += batch.num_rows
        batches += 1
    wall = time.perf_counter() - t0
    return {"wall": wall, "rows": rows, "batches": batches, "version": f"pyarrow {pyarrow.__version__}",
            "notes": f"{len(sums)} columns read and summed, {batches} batches"}


def child_floor(a: dict) -> dict:
    """One pass reading every column (timed), then one pass of X~'WX~ products over the same chunks
    (only the products timed); the floor is io + passes x products."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it BLAS keeps its own threads
        threadpool_limits = None

    def limits(threads):
        import contextlib

        if threads is None or threadpool_limits is None:
            return contextlib.nullcontext()
        return threadpool_limits(threads)

    dataset = ds.dataset(a["dir"], format="parquet")
    t0 = time.perf_counter()
    for batch in dataset.to_batches(columns=FEATURES + [TARGET]):
        for j in range(batch.num_columns):
            pc.sum(batch.column(j))
    io = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    beta = rng.normal(scale=0.1, size=len(FEATURES) + 1)
    products = 0.0
    h = np.zeros((len(FEATURES) + 1,) * 2)
    warm = np.ones((4096, len(FEATURES) + 1))
    for _ in range(3):  # BLAS's threads start on the first product: not part of a pass
        h += (warm * 0.5).T @ warm
    for batch in dataset.to_batches(columns=FEATURES + [TARGET]):
        k = batch.num_rows
        x = np.empty((k, len(FEATURES) + 1))
        x[:, 0] = 1.0
        for j in range(len(FEATURES)):
            x[:, j + 1] = batch.column(j).to_numpy()
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        w = p * (1.0 - p)
        best = math.inf
        for threads in (None, 1):  # a floor: BLAS's own threads or one (a busy machine can favour one)
            with limits(threads):
                for _ in range(3):  # and the best of three, so that a busy moment does not count
                    t1 = time.perf_counter()
                    h += (x * w[:, None]).T @ x
                    best = min(best, time.perf_counter() - t1)
        products += best
    passes = a["passes"]
    return {"wall": io + passes * products, "io": io, "products": products, "passes": passes,
            "version": f"numpy {np.__version__}",
            "notes": f"io {io:.2f} + {passes} x X'WX {products:.3f}"}


def child_scanfit(a: dict) -> dict:
    import numpy as np

    import scanfit as sf

    version = f"scanfit {sf.__version__}"
    if a.get("in_memory"):
        x, y, load = load_float64(a["dir"], "float32")  # as stored; scanfit's newton computes in float64
        data, kwargs, extra = x, {"y": y}, f"load {load:.1f} s; "
    else:
        try:
            source_type = sf.Parquet
        except AttributeError:
            return {"unavailable": "sf.Parquet is not in this scanfit yet", "version": version}
        options = {} if a.get("batch_rows") is None else {"batch_rows": a["batch_rows"]}
        data, kwargs, extra = source_type(a["dir"], target=TARGET, **options), {}, ""
    # startup, as the peers' imports are: `import scanfit` imports no JAX, so its fit, models and the
    # streamed engine are imported here, before the clock starts (they were in the wall before session 8)
    t_imports = time.perf_counter()
    fit, linear, bernoulli = sf.fit, sf.Linear, sf.Bernoulli
    import scanfit.engine.stream  # noqa: F401  (what a fit on a source imports)
    startup = time.perf_counter() - t_imports
    t0 = time.perf_counter()
    r = fit(linear(), bernoulli(), data, optimizer="newton", **kwargs)
    t1 = time.perf_counter()
    table = r.summary()
    t2 = time.perf_counter()
    names = ["intercept"] + FEATURES
    if all(n in table.index for n in names):
        table = table.loc[names]
    out = {"wall": t2 - t0, "fit": t1 - t0, "summary": t2 - t1, "passes": int(len(r.history)),
           "status": r.status.code, "coef": table["estimate"].tolist(), "se": table["std_err"].tolist(),
           "version": version,
           "notes": f"{extra}fit {t1 - t0:.2f} + summary {t2 - t1:.2f}; {len(r.history)} passes; {r.status.code}; "
                    f"imports {startup:.2f} s before"}
    if a.get("warm"):  # a second call in the same process: compilation done
        t3 = time.perf_counter()
        r2 = sf.fit(sf.Linear(), sf.Bernoulli(), data, optimizer="newton", **kwargs)
        r2.summary()
        out["second_call"] = time.perf_counter() - t3
        out["notes"] += f"; second call {out['second_call']:.2f}"
    return out


def child_spark(a: dict) -> dict:
    import pyspark
    from pyspark.sql import SparkSession

    t0 = time.perf_counter()
    spark = (SparkSession.builder.master("local[2]").appName("scanfit-scale")
             .config("spark.driver.memory", a["spark_memory"]).config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "2").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    spark.range(1).count()  # the JVM and the session are up
    jvm = time.perf_counter() - t0
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.regression import GeneralizedLinearRegression

    t1 = time.perf_counter()
    frame = VectorAssembler(inputCols=FEATURES, outputCol="features").transform(spark.read.parquet(a["dir"]))
    glr = GeneralizedLinearRegression(family="binomial", link="logit", labelCol=TARGET, featuresCol="features",
                                      maxIter=25, regParam=0.0)
    model = glr.fit(frame)
    se = list(model.summary.coefficientStandardErrors)  # the coefficients', then the intercept's
    wall = time.perf_counter() - t1
    iterations = model.summary.numIterations
    coef = [model.intercept] + list(model.coefficients)
    spark.stop()
    return {"wall": wall, "jvm": jvm, "coef": coef, "se": [se[-1]] + se[:-1], "version": f"pyspark {pyspark.__version__}",
            "notes": f"JVM start {jvm:.1f} s excluded; {iterations} iterations"}


def child_dask(a: dict) -> dict:
    import dask
    import dask.dataframe as dd
    import dask_ml
    from dask_ml.linear_model import LogisticRegression

    t0 = time.perf_counter()
    frame = dd.read_parquet(a["dir"], columns=FEATURES + [TARGET])
    # one array for x and y: two column selections can be partitioned differently (dask-expr), and
    # to_dask_array(lengths=True) then fails with "lengths does not match the number of partitions"
    both = frame.to_dask_array(lengths=[int(n) for n in frame.map_partitions(len).compute()])
    x, y = both[:, :len(FEATURES)], both[:, len(FEATURES)]
    model = LogisticRegression(solver="newton", fit_intercept=True).fit(x, y)
    wall = time.perf_counter() - t0
    coef = [float(model.intercept_)] + [float(c) for c in model.coef_]
    return {"wall": wall, "coef": coef, "version": f"dask {dask.__version__}, dask-ml {dask_ml.__version__}",
            "notes": f"{frame.npartitions} partitions; no SEs"}


def child_glum(a: dict) -> dict:
    import glum
    import numpy as np
    from glum import GeneralizedLinearRegressor

    x, y, load = load_float64(a["dir"])
    t0 = time.perf_counter()
    model = GeneralizedLinearRegressor(family="binomial", alpha=0, fit_intercept=True).fit(x, y)
    t1 = time.perf_counter()
    se = model.std_errors(x, y, dispersion=1, robust=False)
    t2 = time.perf_counter()
    coef = [float(model.intercept_)] + [float(c) for c in model.coef_]
    return {"wall": t2 - t0, "fit": t1 - t0, "load": load, "coef": coef, "se": np.asarray(se).tolist(),
            "version": f"glum {glum.__version__}",
            "notes": f"load {load:.1f} s; fit {t1 - t0:.2f} + SEs {t2 - t1:.2f}; {model.n_iter_} iterations"}


def child_sklearn(a: dict) -> dict:
    import warnings

    import numpy as np
    import sklearn
    from sklearn.linear_model import LogisticRegression

    x, y, load = load_float64(a["dir"])
    unpenalized = {"C": np.inf} if tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 8) \
        else {"penalty": None}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(solver="lbfgs", tol=1e-4, max_iter=1000, **unpenalized).fit(x, y)
    wall = time.perf_counter() - t0
    coef = [float(model.intercept_[0])] + model.coef_[0].tolist()
    return {"wall": wall, "load": load, "coef": coef, "version": f"scikit-learn {sklearn.__version__}",
            "notes": f"load {load:.1f} s; {int(model.n_iter_[0])} iterations; no SEs"}


def child_statsmodels(a: dict) -> dict:
    import warnings

    import numpy as np
    import statsmodels
    import statsmodels.api as sm

    x, y, load = load_float64(a["dir"])
    t = time.perf_counter()
    xc = sm.add_constant(x)
    del x
    load += time.perf_counter() - t
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.Logit(y, xc).fit(method="newton", disp=0)
        t1 = time.perf_counter()
        se = np.asarray(res.bse)
    t2 = time.perf_counter()
    return {"wall": t2 - t0, "load": load, "coef": np.asarray(res.params).tolist(), "se": se.tolist(),
            "version": f"statsmodels {statsmodels.__version__}",
            "notes": f"load {load:.1f} s; fit {t1 - t0:.2f} + SEs {t2 - t1:.2f}; "
                     f"{res.mle_retvals['iterations']} iterations"}


CHILDREN = {"io": child_io, "floor": child_floor, "scanfit": child_scanfit, "scanfit-mem": child_scanfit,
            "spark": child_spark, "dask": child_dask, "glum": child_glum, "sklearn": child_sklearn,
            "statsmodels": child_statsmodels}


def child_main(name: str, payload: str) -> None:
    out = CHILDREN[name](json.loads(payload))
    out["self_peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # KiB on Linux
    sys.stdout.flush()
    print("RESULT " + json.dumps(out), flush=True)


# ---------------------------------------------------------------------------------------------
# parent


def tree_rss(proc) -> int:
    import psutil

    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_system(name: str, payload: dict, timeout: float) -> dict:
    """One fresh process for one system; its RESULT, the sampled peak of its process tree, errors."""
    try:
        import psutil
    except ImportError:
        psutil = None
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, json.dumps(payload)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    peak = [0]
    done = threading.Event()

    def sample():
        handle = psutil.Process(proc.pid)
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(handle))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True) if psutil else None
    if sampler:
        sampler.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)  # the child and its JVM, nothing else
        stdout, stderr = proc.communicate()
        timed_out = True
    done.set()
    if sampler:
        sampler.join()
    process_s = time.perf_counter() - t0
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    if timed_out:
        return {"error": f"timeout after {timeout:.0f} s", "process_s": process_s, "peak_gb": peak[0] / 1e9}
    if proc.returncode != 0 or not lines:
        tail = (stderr or stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return {"error": f"failed: {tail[0][:200]}", "stderr_tail": (stderr or "")[-3000:], "process_s": process_s,
                "peak_gb": peak[0] / 1e9}
    out = json.loads(lines[-1][len("RESULT "):])
    out["peak_gb"] = max(peak[0] / 1e9, out.get("self_peak_gb", 0.0))
    out["process_s"] = process_s
    return out


def parse_size(text: str) -> int:
    return int(float(text))


def fmt(v, spec):
    return "" if v is None else format(v, spec)


def max_abs(a, b):
    if a is None or b is None or len(a) != len(b):
        return None
    return max(abs(float(p) - float(q)) for p, q in zip(a, b))


def print_table(rows: int, spec: dict, results: dict) -> None:
    base = results.get("scanfit", {}).get("wall")
    print(f"\nrows = {rows:,}: {spec['files']} file(s), row groups of {spec['row_group']:,}, "
          f"{spec['disk_bytes'] / 1e9:.2f} GB on disk; load average at start {spec['load']}")
    print(f"{'system':<30}{'wall s':>9}{'peak GB':>9}{'x scanfit':>11}  notes")
    for name in [s for s in SYSTEMS if s in results]:
        r = results[name]
        label = LABELS[name]
        if "wall" not in r:
            why = r.get("skipped") or r.get("unavailable") or r.get("error") or "?"
            if r.get("unavailable"):
                why = "unavailable: " + why
            elif r.get("skipped"):
                why = "skipped: " + why
            peak = r.get("peak_gb")
            print(f"{label:<30}{'':>9}{fmt(peak, '9.2f') if peak else '':>9}{'':>11}  {why}")
            continue
        ratio = r["wall"] / base if base else None
        peak = fmt(r.get("peak_gb"), "9.2f") if name != "floor" else ""
        print(f"{label:<30}{r['wall']:>9.2f}{peak:>9}{fmt(ratio, '11.2f'):>11}  {r.get('notes', '')}")
    if base and "wall" in results.get("floor", {}):
        print(f"scanfit / floor = {base / results['floor']['wall']:.2f}")
    ours = results.get("scanfit", {})
    for peer in ("scanfit-mem", "glum", "statsmodels", "spark", "dask", "sklearn"):
        r = results.get(peer, {})
        dc, ds = max_abs(ours.get("coef"), r.get("coef")), max_abs(ours.get("se"), r.get("se"))
        if dc is not None:
            print(f"agreement with {peer}: max |coef diff| {dc:.1e}"
                  + (f", max |SE diff| {ds:.1e}" if ds is not None else " (no SEs)"))


def targets(all_results: dict, sizes: list[int]) -> list[str]:
    at = 10_000_000 if 10_000_000 in sizes else max(sizes)
    note = "" if at == 10_000_000 else f" (at {at:.0e} rows: this run has no 1e7 size; the targets are for 1e7)"
    res = all_results[at]
    ours = res.get("scanfit", {}).get("wall")
    lines = [f"targets at {at:,} rows{note}:"]

    def ratio_line(peer, want, what):
        theirs = res.get(peer, {}).get("wall")
        if ours is None or theirs is None:
            why = "scanfit" if ours is None else peer
            lines.append(f"  n/a   {what}: {why} has no time in this run")
            return
        got = theirs / ours
        lines.append(f"  {'PASS' if got >= want else 'FAIL'}  {what}: {got:.2f}x (target >= {want:g}x)")

    ratio_line("spark", 10, "scanfit fit + SEs faster than Spark GLR")
    ratio_line("glum", 2, "scanfit fit + SEs faster than glum fit + SEs")
    ratio_line("sklearn", 1, "scanfit fit + SEs no slower than sklearn lbfgs (no SEs)")
    peaks = {n: r.get("scanfit", {}).get("peak_gb") for n, r in all_results.items()}
    peaks = {n: p for n, p in peaks.items() if p is not None and "wall" in all_results[n].get("scanfit", {})}
    if peaks:
        worst = max(peaks.values())
        lines.append(f"  {'PASS' if worst < 1.5 else 'FAIL'}  scanfit peak memory under 1.5 GB at every size: "
                     + ", ".join(f"{n:.0e}: {p:.2f} GB" for n, p in peaks.items()))
    else:
        lines.append("  n/a   scanfit peak memory: scanfit did not run")
    for n, r in all_results.items():
        if "wall" in r.get("scanfit", {}) and "wall" in r.get("floor", {}):
            lines.append(f"  info  scanfit / floor at {n:.0e}: {r['scanfit']['wall'] / r['floor']['wall']:.2f}")
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1e6,1e7,3e7", help="comma-separated row counts (add 1e8 when wanted)")
    ap.add_argument("--only", default=None, help=f"comma-separated systems of {','.join(SYSTEMS)}")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per system and size")
    ap.add_argument("--row-group", type=int, default=250_000, help="Parquet row group size")
    ap.add_argument("--batch-rows", type=int, default=None, help="sf.Parquet's batch_rows (default: its own)")
    ap.add_argument("--mem-budget", type=float, default=None,
                    help="GB an in-memory system may need (default 40%% of the machine's memory)")
    ap.add_argument("--spark-memory", default="4g", help="spark.driver.memory")
    ap.add_argument("--warm", action="store_true", help="also time a second scanfit call in the same process")
    ap.add_argument("--data-dir", default=None, help="write (and reuse) the data here instead of a temp dir")
    ap.add_argument("--json", default=None, help="write all results to this JSON file")
    args = ap.parse_args(argv)

    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    systems = DEFAULT_SYSTEMS if args.only is None else [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        ap.error(f"unknown systems {unknown}; choose from {SYSTEMS}")
    systems = [s for s in RUN_ORDER if s in systems]  # scanfit before floor: the floor takes scanfit's passes
    try:
        import psutil
        total_gb = psutil.virtual_memory().total / 1e9
    except ImportError:
        total_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    budget = args.mem_budget if args.mem_budget is not None else 0.4 * total_gb
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"issue 16 scale benchmark, {date.today()}: {platform.machine()}, {os.cpu_count()} cores, "
          f"{total_gb:.1f} GB memory (in-memory budget {budget:.1f} GB), python {platform.python_version()}; "
          f"load average at start {load}")
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        print("warning: the machine is busy (load average above half its cores): times will be noisy")

    own_dir = args.data_dir is None
    root = Path(tempfile.mkdtemp(prefix="scanfit-scale-")) if own_dir else Path(args.data_dir)
    all_results: dict[int, dict] = {}
    versions: dict[str, str] = {}
    specs: dict[int, dict] = {}
    try:
        for rows in sizes:
            directory = root / f"rows-{rows}"
            t0 = time.perf_counter()
            spec = write_data(directory, rows, args.row_group)
            spec.update(files=len(list(directory.glob("*.parquet"))), disk_bytes=disk_bytes(directory),
                        write_s=time.perf_counter() - t0, load=" ".join(f"{v:.2f}" for v in os.getloadavg()))
            results: dict[str, dict] = {}
            for name in systems:
                payload = {"dir": str(directory), "rows": rows}
                if name in GB_PER_MILLION and GB_PER_MILLION[name] * rows / 1e6 > budget:
                    results[name] = {"skipped": f"memory (needs about {GB_PER_MILLION[name] * rows / 1e6:.0f} GB, "
                                                f"budget {budget:.1f} GB)"}
                    continue
                if name == "floor":
                    passes = results.get("scanfit", {}).get("passes")
                    payload["passes"] = passes or 6
                elif name in ("scanfit", "scanfit-mem"):
                    payload.update(batch_rows=args.batch_rows, warm=args.warm, in_memory=name == "scanfit-mem")
                elif name == "spark":
                    payload["spark_memory"] = args.spark_memory
                r = run_system(name, payload, args.timeout)
                if name == "floor" and not results.get("scanfit", {}).get("passes"):
                    r["notes"] = r.get("notes", "") + " (6 passes assumed: scanfit gave none)"
                if r.get("version"):
                    versions[name] = r["version"]
                results[name] = r
                print(f"  [{rows:.0e}] {name}: " + (f"{r['wall']:.2f} s, {r['peak_gb']:.2f} GB" if "wall" in r
                      else (r.get("unavailable") or r.get("error") or "?")), flush=True)
            all_results[rows] = results
            specs[rows] = spec
            print_table(rows, spec, results)
            if own_dir:
                shutil.rmtree(directory, ignore_errors=True)
        print()
        print("\n".join(targets(all_results, sizes)))
        print("versions: " + "; ".join(dict.fromkeys(versions.values())))
        if args.json:
            Path(args.json).write_text(json.dumps({"sizes": sizes, "versions": versions, "load_at_start": load,
                                                   "data": {str(k): v for k, v in specs.items()},
                                                   "results": {str(k): v for k, v in all_results.items()}},
                                                  indent=1, default=str))
    finally:
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child_main(sys.argv[2], sys.argv[3])
    else:
        main()
