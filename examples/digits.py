"""Digits (scikit-learn's bundled 8x8 images): a 100-unit ReLU network with a 10-class Categorical
likelihood, against scikit-learn's MLPClassifier of the same size at its defaults.

Same split (75/25, stratified, random_state=0) and the same preprocessing (StandardScaler fitted
on the training rows) for both. scanfit trains full batch with adam; the timing comparison over
several seeds is ``benchmarks/digits.py``.

    python examples/digits.py
"""

from __future__ import annotations

import time
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.preprocessing import StandardScaler

from scanfit.sklearn import MLPClassifier

SCANFIT = dict(hidden=100, activation="relu", optimizer="adam", learning_rate=0.005, steps=400, record_every=40)


def prepare():
    """``(x_train, x_test, y_train, y_test)``, standardized with the training rows' scaler."""
    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(xtr)
    return scaler.transform(xtr), scaler.transform(xte), ytr, yte


def main(*, quick: bool = False, verbose: bool = True, seed: int = 0) -> dict:
    xtr, xte, ytr, yte = prepare()
    options = dict(SCANFIT, steps=200, record_every=20) if quick else SCANFIT
    start = time.perf_counter()
    ours = MLPClassifier(seed=seed, **options).fit(xtr, ytr)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # only raised with quick's max_iter
        peer = SkMLPClassifier(random_state=seed, **({"max_iter": 40} if quick else {})).fit(xtr, ytr)
    peer_s = time.perf_counter() - start
    out = {"scanfit_accuracy": ours.score(xte, yte), "sklearn_accuracy": peer.score(xte, yte),
           "scanfit_seconds": ours_s, "sklearn_seconds": peer_s, "history": ours.history_}
    if verbose:
        print(f"held-out accuracy: scanfit {out['scanfit_accuracy']:.4f} ({ours_s:.2f} s, first fit: compile included), "
              f"scikit-learn {out['sklearn_accuracy']:.4f} ({peer_s:.2f} s)")
        print(ours.history_[["step", "train_objective", "train_accuracy"]].to_string(index=False))
    return out


if __name__ == "__main__":
    main()
