"""Engine speed against the machine's floor and against peers, all measured in one run.

    python benchmarks/engine.py            # full table (about 3 minutes on 2 cores)
    python benchmarks/engine.py --quick    # fewer repeats

Workloads (the notebook's):
  logit  (b): hyperplane data, N=10,000, dim=100, 5000 "gd" steps at 2.0, statistics every step.
  nn     (e): hill data, MLP(hidden=2) + Bernoulli, rmsprop 0.01, 4000 steps, train+valid statistics every step.
  restarts  : the nn workload with restarts=16 in one compiled program.

Rows: scanfit (after compilation: median of runs; compile = first call minus that), the floor
(a bare jitted loop of exactly the two matrix-vector products one logit step needs), a NumPy loop,
a PyTorch eager loop (if torch is installed: pip install -e ".[bench]"), and the notebook's own
rmsprop loop ported faithfully to today's JAX (rows layout, its cross-entropy, jax.tree.map).
Peer loops that take seconds per run are timed over fewer steps and scaled; the table says so.
The target ratios (scanfit / floor, scanfit / the notebook's loop) come from runs of the two
alternated 7 times: the ratio is the median of the 7 pairs, and the note gives their range.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

import scanfit as sf


def timed(fn, repeats):
    """(median seconds after the first call, first call seconds)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), first


def paired(fn, ref, repeats):
    """Time ``fn`` and ``ref`` alternately (after a first call of each), so that both see the same
    machine: on a shared machine the speed drifts by tens of percent between minutes.
    Returns (median fn seconds, fn's first call, median ref seconds, per-pair ratios fn / ref)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    ref()
    a, b = [], []
    for _ in range(repeats):
        for f, out in ((fn, a), (ref, b)):
            t0 = time.perf_counter()
            f()
            out.append(time.perf_counter() - t0)
    return statistics.median(a), first, statistics.median(b), [x / y for x, y in zip(a, b)]


def spread(ratios):
    return f"pairs {min(ratios):.2f}-{max(ratios):.2f}"


# ---------------------------------------------------------------- logit workload (b)
def logit_floor(xt, y, steps):
    @jax.jit
    def run(xt, y):
        def step(b, _):
            index, vjp = jax.vjp(lambda b: b @ xt, b)
            (g,) = vjp(y - index)
            return b + 1e-5 * g, None

        return lax.scan(step, jnp.zeros(xt.shape[0]), None, length=steps)[0]

    return lambda: jax.block_until_ready(run(xt, y))


def logit_numpy(x, y, steps):
    sgn = np.where(y, 1.0, -1.0).astype(np.float32)
    n = len(y)

    def run():
        b0, b1 = np.float32(0), np.zeros(x.shape[1], np.float32)
        for _ in range(steps):
            index = x @ b1 + b0
            s = sgn * index
            e = np.exp(-np.abs(s))
            objective = np.mean(np.minimum(s, 0) - np.log1p(e))
            pred = index >= 0
            truth = sgn > 0
            _ = (objective, np.mean(pred == truth), np.mean(pred & ~truth), np.mean(~pred & truth), np.mean(pred),
                 b0, b1.mean(), b1.std())
            r = sgn * np.where(s >= 0, e, 1.0) / (1 + e) / n
            b0, b1 = b0 + 2.0 * r.sum(), b1 + 2.0 * (x.T @ r)

    return run


def logit_torch(torch, x, y, steps):
    xt_ = torch.tensor(x)
    yt = torch.tensor(y.astype(np.float32))

    def run():
        b0 = torch.zeros((), requires_grad=True)
        b1 = torch.zeros(x.shape[1], requires_grad=True)
        for _ in range(steps):
            index = xt_ @ b1 + b0
            objective = -torch.nn.functional.binary_cross_entropy_with_logits(index, yt)
            b0.grad = b1.grad = None
            objective.backward()
            with torch.no_grad():
                pred = index >= 0
                truth = yt > 0
                _ = [float(v) for v in (objective, (pred == truth).float().mean(), (pred & ~truth).float().mean(),
                                        (~pred & truth).float().mean(), pred.float().mean(), b1.mean(), b1.std())]
                b0 += 2.0 * b0.grad
                b1 += 2.0 * b1.grad

    return run


# ---------------------------------------------------------------- nn workload (e)
def notebook_nn(train_x, train_y, valid_x, valid_y, steps):
    """The notebook's neural_regression_optax, ported: jax.tree.map, initial values passed in."""

    def binary_crossentropy(logits, y):
        probs = 1 / (1 + jnp.exp(-logits))
        like = jnp.where(y, probs, 1 - probs)
        return jnp.log(like)

    def neural_predict(c, x):
        hidden = jax.nn.sigmoid(x @ c["W0"] + c["b0"])
        return hidden @ c["W1"] + c["b1"]

    def neural_objective(c, x, y):
        return binary_crossentropy(neural_predict(c, x), y).mean()

    d_neural_objective = jax.grad(neural_objective)

    def neural_stats(c, x, y):
        predict = neural_predict(c, x) >= 0.0
        return {"accuracy": jnp.mean(predict == y), "false_pos": jnp.mean(predict & ~y),
                "false_neg": jnp.mean(~predict & y)}

    @partial(jax.jit, static_argnames="K")
    def neural_regression_optax(c0, train_x, train_y, valid_x, valid_y, K=4000, delta=0.01):
        opt = optax.rmsprop(learning_rate=delta)
        state0 = opt.init(c0)

        def update(cs, t):
            c, state = cs
            dc = jax.tree.map(lambda x: -x, d_neural_objective(c, train_x, train_y))
            upd, state1 = opt.update(dc, state, c)
            c1 = optax.apply_updates(c, upd)
            return (c1, state1), (neural_stats(c, train_x, train_y), neural_stats(c, valid_x, valid_y))

        return lax.scan(update, (c0, state0), jnp.arange(K))

    rng = np.random.default_rng(0)
    c0 = {"W0": 2 * rng.standard_normal((2, 2)), "b0": 2 * rng.standard_normal(2),
          "W1": 2 * rng.standard_normal(2), "b1": 2 * rng.standard_normal()}
    c0 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), c0)
    return lambda: jax.block_until_ready(neural_regression_optax(c0, train_x, train_y, valid_x, valid_y, K=steps))


def nn_torch(torch, data, steps):
    x, y = torch.tensor(data.train.x, dtype=torch.float32), torch.tensor(data.train.y)
    vx, vy = torch.tensor(data.valid.x, dtype=torch.float32), torch.tensor(data.valid.y)
    yf = y.float()

    def stats(logits, y):
        p = logits >= 0
        return [(p == y).float().mean(), (p & ~y).float().mean(), (~p & y).float().mean(), p.float().mean()]

    def run():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Sigmoid(), torch.nn.Linear(2, 1))
        opt = torch.optim.RMSprop(net.parameters(), lr=0.01, alpha=0.9)
        for _ in range(steps):
            logits = net(x)[:, 0]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, yf)
            opt.zero_grad()
            loss.backward()
            with torch.no_grad():
                _ = [float(v) for v in stats(logits, y) + stats(net(vx)[:, 0], vy)]
            opt.step()

    return run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    pairs = 3 if args.quick else 7  # alternating runs of scanfit and its reference; ratio = median of the pairs
    peer_steps = 500 if args.quick else 1000
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        torch = None
    rows = []

    # logit (b)
    steps = 5000
    d = sf.datasets.hyperplane(seed=0)
    x32, y = d.train.x.astype(np.float32), d.train.y
    kw = dict(optimizer="gd", learning_rate=2.0, steps=steps, seed=0)
    fit_b = lambda: sf.fit(sf.Linear(), sf.Bernoulli(), x32, y, **kw)  # noqa: E731
    floor = logit_floor(jnp.asarray(x32.T.copy()), jnp.asarray(y, jnp.float32), steps)
    t_sf, first, t_floor, ratios = paired(fit_b, floor, pairs)
    rows.append(("logit (b)", "scanfit, stats every step", t_sf, first - t_sf, statistics.median(ratios),
                 f"target <= 1.2x floor ({spread(ratios)})"))
    rows.append(("logit (b)", "floor: X@b and its vjp, jitted", t_floor, None, 1.0, ""))
    t_np, _ = timed(logit_numpy(x32, y, peer_steps), 1)
    t_np *= steps / peer_steps
    rows.append(("logit (b)", f"NumPy loop ({peer_steps} steps, scaled)", t_np, None, t_np / t_floor,
                 f"scanfit {t_np / t_sf:.1f}x faster"))
    if torch is not None:
        t_pt, _ = timed(logit_torch(torch, x32, y, peer_steps), 1)
        t_pt *= steps / peer_steps
        rows.append(("logit (b)", f"PyTorch eager ({peer_steps} steps, scaled)", t_pt, None, t_pt / t_floor,
                     f"scanfit {t_pt / t_sf:.1f}x faster"))

    # nn (e) and restarts
    steps = 4000
    h = sf.datasets.hill(seed=0)
    kw = dict(valid=(h.valid.x, h.valid.y), optimizer="rmsprop", learning_rate=0.01, steps=steps, seed=0)
    fit_e = lambda: sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), h.train.x, h.train.y, **kw)  # noqa: E731
    nb = notebook_nn(*(jnp.asarray(a) for a in (h.train.x.astype(np.float32), h.train.y,
                                                h.valid.x.astype(np.float32), h.valid.y)), steps)
    t_e, first_e, t_nb, ratios = paired(fit_e, nb, pairs)
    rows.append(("nn (e)", "scanfit MLP(2) rmsprop, train+valid stats", t_e, first_e - t_e, statistics.median(ratios),
                 f"notebook / scanfit = {1 / statistics.median(ratios):.2f} (target >= 1.5)"))
    rows.append(("nn (e)", "notebook's own loop, ported", t_nb, None, 1.0, ""))
    if torch is not None:
        t_pt, _ = timed(nn_torch(torch, h, peer_steps), 1)
        t_pt *= steps / peer_steps
        rows.append(("nn (e)", f"PyTorch eager ({peer_steps} steps, scaled)", t_pt, None, t_pt / t_nb,
                     f"torch / scanfit = {t_pt / t_e:.1f} (target >= 4)"))
    fit_r = lambda: sf.fit(sf.MLP(hidden=2), sf.Bernoulli(), h.train.x, h.train.y, restarts=16, **kw)  # noqa: E731
    t_r, first_r, _, ratios = paired(fit_r, nb, pairs)
    rows.append(("restarts", "scanfit, 16 starts in one program", t_r, first_r - t_r, statistics.median(ratios),
                 f"16 starts cost {statistics.median(ratios):.2f}x one notebook fit (target <= 4; {spread(ratios)})"))

    print(f"scanfit {sf.__version__}, jax {jax.__version__}, {platform.machine()}, {jax.devices()[0].device_kind}, "
          f"{time.strftime('%Y-%m-%d')}")
    from scanfit.likelihoods import native

    print(f"Bernoulli kernel: {native.status()}")
    print(f"| workload | run | seconds | compile s | ratio | note |")
    print("|---|---|---:|---:|---:|---|")
    for w, name, t, c, ratio, note in rows:
        comp = f"{c:.2f}" if c is not None else ""
        print(f"| {w} | {name} | {t:.3f} | {comp} | {ratio:.2f} | {note} |")
    print("ratio: seconds / the floor (logit rows) or / the notebook's loop (nn and restarts rows)")


if __name__ == "__main__":
    main()
