"""What a user waits for: small fits in fresh processes, with the compilation cache warm, cold and off.

    python benchmarks/latency.py              # 5 fresh processes per cell (about 6 minutes on 2 cores)
    python benchmarks/latency.py --repeat 3
    python benchmarks/latency.py --rows digits,cv   # some rows only (cli, logit, digits, cv)

Every cell is the median of ``--repeat`` fresh processes; each row's ratio is scanfit's median over
its peer's median, both measured in this run. The scanfit cells run with

- warm: a temporary ``$SCANFIT_CACHE`` filled by one run before the timed ones (the default after a
  user's first fit);
- cold: a new empty ``$SCANFIT_CACHE`` for every process (a first fit ever, the entries written);
- off: ``SCANFIT_COMPILATION_CACHE=0`` (scanfit before the cache: every process compiles);
- xla only: the warm cache with ``SCANFIT_PROGRAM_CACHE=0``: JAX's compiled programs but not scanfit's
  lowered ones (``engine/programs.py``), so the process traces and lowers the fit as before them.

Rows (breast cancer: scikit-learn's table, the four predictors of ``examples/breast_cancer.py``):
  cli logit      ``scanfit fit bc.csv --target benign --optimizer newton`` (the whole process) against a
                 fresh ``python`` running a statsmodels script that reads the CSV, fits the same Logit and
                 prints its summary (the whole process); target <= 1.0x, warm
  sf.fit logit   ``sf.fit(Linear(), Bernoulli(), optimizer="newton")`` + ``summary()`` in a fresh process,
                 timed after the imports, against statsmodels' ``Logit(...).fit()`` + ``summary()``
                 timed the same way; target <= 0.5 s of scanfit's own time, warm
  digits MLP     ``examples/digits.py``'s setting (ReLU, 100 hidden units, adam, 400 steps): the first fit
                 in a fresh process against scikit-learn's ``MLPClassifier`` at its defaults (fit only,
                 after the imports and the data); target <= 0.5x at equal or better test accuracy, warm
  5-fold CV      ``cross_val_score(scanfit.sklearn.LogisticRegression(), X, y, cv=5)`` on the four
                 standardized predictors against scikit-learn's unpenalized ``LogisticRegression``
                 (``C=inf``, its spelling of ``penalty=None`` since 1.8); target <= 1.0x, warm
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

PREAMBLE = r"""
import json, sys, time, warnings
import numpy as np
import pandas as pd
FEATURES = ["mean radius", "mean texture", "mean smoothness", "mean concave points"]
def breast_cancer():
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler
    d = load_breast_cancer(as_frame=True)
    return StandardScaler().fit_transform(d.data[FEATURES]), d.target.to_numpy()
"""

# Each child prints one JSON line: {"seconds": ..., "import": ..., "accuracy": ...}; timed after its imports.
CHILDREN = {
    "sm_script": """
import pandas as pd
import statsmodels.api as sm
frame = pd.read_csv(sys.argv[1])
y = frame.pop("benign")
print(sm.Logit(y, sm.add_constant(frame)).fit(disp=0).summary())
""",
    "logit_scanfit": """
t0 = time.perf_counter()
import scanfit as sf
fit, Linear, Bernoulli = sf.fit, sf.Linear, sf.Bernoulli  # the lazy names: JAX and the engine load here
import scanfit.results.inference
frame = pd.read_csv(sys.argv[1]); y = frame.pop("benign").to_numpy()
t1 = time.perf_counter()
r = fit(Linear(), Bernoulli(), frame, y, optimizer="newton")
text = str(r.summary())
print(json.dumps({"import": t1 - t0, "seconds": time.perf_counter() - t1, "status": r.status.code}))
""",
    "logit_statsmodels": """
t0 = time.perf_counter()
import statsmodels.api as sm
frame = pd.read_csv(sys.argv[1]); y = frame.pop("benign")
t1 = time.perf_counter()
text = str(sm.Logit(y, sm.add_constant(frame)).fit(disp=0).summary())
print(json.dumps({"import": t1 - t0, "seconds": time.perf_counter() - t1}))
""",
    "digits_scanfit": """
sys.path.insert(0, sys.argv[2])
from digits import SCANFIT, prepare
from scanfit.sklearn import MLPClassifier
xtr, xte, ytr, yte = prepare()
t1 = time.perf_counter()
m = MLPClassifier(seed=0, **SCANFIT).fit(xtr, ytr)
print(json.dumps({"seconds": time.perf_counter() - t1, "accuracy": m.score(xte, yte)}))
""",
    "digits_sklearn": """
sys.path.insert(0, sys.argv[2])
from digits import prepare
from sklearn.neural_network import MLPClassifier
xtr, xte, ytr, yte = prepare()
t1 = time.perf_counter()
m = MLPClassifier(random_state=0).fit(xtr, ytr)
print(json.dumps({"seconds": time.perf_counter() - t1, "accuracy": m.score(xte, yte)}))
""",
    "cv_scanfit": """
from sklearn.model_selection import cross_val_score
from scanfit.sklearn import LogisticRegression
x, y = breast_cancer()
t1 = time.perf_counter()
s = cross_val_score(LogisticRegression(), x, y, cv=5)
print(json.dumps({"seconds": time.perf_counter() - t1, "accuracy": float(s.mean())}))
""",
    "cv_sklearn": """
from sklearn.model_selection import cross_val_score
from sklearn.linear_model import LogisticRegression
x, y = breast_cancer()
t1 = time.perf_counter()
s = cross_val_score(LogisticRegression(C=np.inf, max_iter=1000), x, y, cv=5)
print(json.dumps({"seconds": time.perf_counter() - t1, "accuracy": float(s.mean())}))
""",
}


def run_child(name: str, args: list[str], env: dict) -> dict:
    """One fresh process; its JSON line, plus its whole wall time as ``wall``."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PREAMBLE + CHILDREN[name], *args], env=env, capture_output=True,
                          text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    out = json.loads(last) if last.startswith("{") else {}
    return {**out, "wall": wall}


def run_cli(table: Path, out: Path, env: dict) -> dict:
    exe = shutil.which("scanfit", path=str(Path(sys.executable).parent)) or "scanfit"
    t0 = time.perf_counter()
    done = subprocess.run([exe, "fit", str(table), "--target", "benign", "--optimizer", "newton", "--no-progress",
                           "--force", "--out", str(out)], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"scanfit fit failed:\n{done.stderr[-3000:]}")
    return {"wall": wall, "seconds": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="fresh processes per cell (the median is shown)")
    ap.add_argument("--rows", default="cli,logit,digits,cv", help="which rows, comma-separated: cli,logit,digits,cv")
    args = ap.parse_args()
    import jax
    import sklearn

    import scanfit

    root = Path(__file__).resolve().parents[1]
    # Byte-compiled as a regular install leaves it (pip compiles a wheel's modules; statsmodels' and the other
    # peers' are): where PYTHONDONTWRITEBYTECODE is set, as on this project's machines, an editable install
    # would otherwise compile scanfit's ~60 modules from source in every process (0.12 s of a scanfit fit).
    compileall.compile_dir(str(Path(scanfit.__file__).parent), quiet=1)
    print(f"scanfit {scanfit.__version__}, jax {jax.__version__}, scikit-learn {sklearn.__version__}, "
          f"{platform.machine()}, {os.cpu_count()} cores, {date.today()}; load average at start "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; {args.repeat} processes per cell")
    work = Path(tempfile.mkdtemp(prefix="scanfit-latency-"))
    try:
        table = work / "bc.csv"
        subprocess.run([sys.executable, "-c", PREAMBLE + """
from sklearn.datasets import load_breast_cancer
d = load_breast_cancer(as_frame=True)
f = d.data[FEATURES].copy(); f.columns = [c.replace(" ", "_") for c in FEATURES]; f["benign"] = d.target
f.to_csv(sys.argv[1], index=False)
""", str(table)], check=True)
        examples = str(root / "examples")
        base_env = {k: v for k, v in os.environ.items() if k not in ("SCANFIT_CACHE", "SCANFIT_COMPILATION_CACHE",
                                                                     "SCANFIT_PROGRAM_CACHE")}
        counter = iter(range(10**6))

        def env_for(mode: str, warm_dir: Path) -> dict:
            if mode == "warm":
                return {**base_env, "SCANFIT_CACHE": str(warm_dir)}
            if mode == "cold":
                return {**base_env, "SCANFIT_CACHE": str(work / f"cold-{next(counter)}")}
            if mode == "xla":
                return {**base_env, "SCANFIT_CACHE": str(warm_dir), "SCANFIT_PROGRAM_CACHE": "0"}
            return {**base_env, "SCANFIT_CACHE": str(warm_dir), "SCANFIT_COMPILATION_CACHE": "0"}

        def cells(ours, peer):
            """{mode: [runs]} for scanfit and [runs] for the peer; warm primed by one untimed run."""
            warm_dir = work / f"warm-{next(counter)}"
            ours("warm", env_for("warm", warm_dir))
            ours("xla", env_for("xla", warm_dir))
            runs = {m: [] for m in ("warm", "xla", "cold", "off")}
            peers = []
            for _ in range(args.repeat):  # interleaved, so that the machine's drift hits every cell alike
                for m in runs:
                    runs[m].append(ours(m, env_for(m, warm_dir)))
                peers.append(peer(base_env))
            return runs, peers

        rows = []
        out_dir = work / "fit-out"
        specs = [
            ("cli logit", "scanfit fit (process)", "statsmodels script (process)",
             lambda m, e: run_cli(table, out_dir, e), lambda e: run_child("sm_script", [str(table)], e), "wall",
             "<= 1.0x"),
            ("sf.fit logit", "fit + summary()", "Logit fit + summary()",
             lambda m, e: run_child("logit_scanfit", [str(table)], e),
             lambda e: run_child("logit_statsmodels", [str(table)], e), "seconds", "<= 0.5 s"),
            ("digits MLP", "first fit", "MLPClassifier fit",
             lambda m, e: run_child("digits_scanfit", ["", examples], e),
             lambda e: run_child("digits_sklearn", ["", examples], e), "seconds", "<= 0.5x, accuracy >="),
            ("5-fold CV", "cross_val_score", "LogisticRegression(C=inf)",
             lambda m, e: run_child("cv_scanfit", [], e), lambda e: run_child("cv_sklearn", [], e), "seconds",
             "<= 1.0x"),
        ]
        short = {"cli logit": "cli", "sf.fit logit": "logit", "digits MLP": "digits", "5-fold CV": "cv"}
        wanted = set(args.rows.split(","))
        for name, ours_what, peer_what, ours, peer, key, target in specs:
            if short[name] not in wanted:
                continue
            runs, peers = cells(ours, peer)
            rows.append((name, ours_what, peer_what, runs, peers, key, target))
            print(f"  {name}: done", file=sys.stderr, flush=True)
        print(table_text(rows))
        print(f"load average at end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def table_text(rows) -> str:
    lines = ["| row | scanfit | peer | warm s | xla only s | cold s | off s | peer s | warm ratio | xla only ratio | "
             "cold ratio | off ratio | target (warm) | met |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    notes = []
    for name, ours_what, peer_what, runs, peers, key, target in rows:
        warm, xla, cold, off, ref = (med(runs["warm"], key), med(runs["xla"], key), med(runs["cold"], key),
                                     med(runs["off"], key), med(peers, key))
        if target.startswith("<= 0.5 s"):
            met = warm <= 0.5
        else:
            met = warm / ref <= float(target.split("x")[0].split()[-1])
        if "accuracy" in target:
            ours_acc, peer_acc = med(runs["warm"], "accuracy"), med(peers, "accuracy")
            met = met and ours_acc >= peer_acc
            notes.append(f"{name}: test accuracy scanfit {ours_acc:.4f}, scikit-learn {peer_acc:.4f}")
        if name == "sf.fit logit":
            notes.append(f"{name}: imports (not in the row) scanfit {med(runs['warm'], 'import'):.2f} s, "
                         f"statsmodels {med(peers, 'import'):.2f} s")
        if name == "5-fold CV":
            notes.append(f"{name}: mean accuracy scanfit {med(runs['warm'], 'accuracy'):.4f}, "
                         f"scikit-learn {med(peers, 'accuracy'):.4f}")
        lines.append(f"| {name} | {ours_what} | {peer_what} | {warm:.2f} | {xla:.2f} | {cold:.2f} | {off:.2f} | "
                     f"{ref:.2f} | {warm / ref:.2f} | {xla / ref:.2f} | {cold / ref:.2f} | {off / ref:.2f} | {target} | "
                     f"{'yes' if met else 'no'} |")
    return "\n".join(lines + [""] + notes)


if __name__ == "__main__":
    main()
