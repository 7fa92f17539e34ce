"""Digits: scanfit's MLPClassifier against scikit-learn's MLPClassifier of the same size.

Both: 100 ReLU units, adam, the same 75/25 stratified split (random_state=0) and StandardScaler
fitted on the training rows; scikit-learn at its defaults (minibatches of 200, lr 1e-3, up to 200
epochs, alpha=1e-4), scanfit full batch (lr 0.005, 400 steps, history every 40). Five seeds each.

scanfit times: "cold" is the first fit in the process (it compiles the loop, about a second of
CPU per program); "warm" are the five fits that follow with the same shapes (what a refit, a
cross-validation fold or a grid-search point costs). "to accuracy" is the warm time scaled by the
first recorded step (history every 10 steps, one extra diagnostic fit) at which held-out accuracy
reaches scikit-learn's mean. Prints the markdown section kept in benchmarks/README.md.

    python benchmarks/digits.py
"""

from __future__ import annotations

import platform
import time
import warnings

import jax
import numpy as np
import sklearn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.preprocessing import StandardScaler

import scanfit as sf
from scanfit.sklearn import MLPClassifier

SEEDS = range(5)
OURS = dict(hidden=100, activation="relu", optimizer="adam", learning_rate=0.005, steps=400, record_every=40)


def main() -> dict:
    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(xtr)
    xtr, xte = scaler.transform(xtr), scaler.transform(xte)

    sk_acc, sk_s = [], []
    for seed in SEEDS:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = SkMLPClassifier(random_state=seed).fit(xtr, ytr)
        sk_s.append(time.perf_counter() - start)
        sk_acc.append(model.score(xte, yte))

    start = time.perf_counter()
    MLPClassifier(seed=0, **OURS).fit(xtr, ytr)
    cold = time.perf_counter() - start
    sf_acc, sf_s = [], []
    for seed in SEEDS:
        start = time.perf_counter()
        model = MLPClassifier(seed=seed, **OURS).fit(xtr, ytr)
        sf_s.append(time.perf_counter() - start)
        sf_acc.append(model.score(xte, yte))

    target = float(np.mean(sk_acc))
    reach = []
    for seed in SEEDS:
        r = sf.fit(sf.MLP(hidden=100, activation="relu"), sf.Categorical(), xtr, ytr, valid=(xte, yte),
                   optimizer="adam", learning_rate=OURS["learning_rate"], steps=OURS["steps"], record_every=10, seed=seed)
        hit = r.history.loc[r.history["valid_accuracy"] >= target - 1e-12, "step"]
        reach.append(float(hit.iloc[0] + 10) / OURS["steps"] if len(hit) else np.nan)
    to_acc = float(np.nanmean(reach)) * float(np.median(sf_s))

    rows = [
        ("scikit-learn MLPClassifier()", np.mean(sk_acc), np.min(sk_acc), np.median(sk_s), "-"),
        ("scanfit MLPClassifier, cold (compile included)", np.mean(sf_acc), np.min(sf_acc), cold, f"{np.median(sk_s) / cold:.1f}x"),
        ("scanfit MLPClassifier, warm", np.mean(sf_acc), np.min(sf_acc), np.median(sf_s), f"{np.median(sk_s) / np.median(sf_s):.1f}x"),
        ("scanfit, warm, to scikit-learn's accuracy", target, np.nan, to_acc, f"{np.median(sk_s) / to_acc:.1f}x"),
    ]
    lines = [
        "## digits",
        "",
        f"`python benchmarks/digits.py`: {platform.processor() or platform.machine()}, {jax.devices()[0].platform} "
        f"(jax {jax.__version__}, scikit-learn {sklearn.__version__}); 1347 training and 450 held-out images, "
        f"seeds {list(SEEDS)}. scanfit: {OURS}.",
        "",
        "| fit | held-out accuracy (mean) | (worst seed) | seconds (median) | speed-up |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {a:.4f} | {'-' if np.isnan(w) else f'{w:.4f}'} | {s:.2f} | {u} |" for n, a, w, s, u in rows]
    hits = int(np.sum(np.isfinite(reach)))
    lines += ["", f"{hits} of {len(reach)} scanfit seeds reach scikit-learn's mean held-out accuracy ({target:.4f}) within "
              f"the 400 steps, after {np.nanmean(reach) * 100:.0f}% of them on average (per seed, nan = never: "
              f"{[round(v, 2) for v in reach]}); the to-accuracy row counts those seeds only. Per-seed accuracy: scikit-learn "
              f"{np.round(sk_acc, 4).tolist()}, scanfit {np.round(sf_acc, 4).tolist()}."]
    text = "\n".join(lines)
    print(text)
    return {"sk_acc": sk_acc, "sf_acc": sf_acc, "sk_s": sk_s, "sf_s": sf_s, "cold": cold, "to_acc": to_acc,
            "text": text}


if __name__ == "__main__":
    main()
