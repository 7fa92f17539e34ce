"""Many processes, many machines: JAX's multi-controller runtime under a streamed fit.

``sf.distributed.initialize()`` calls ``jax.distributed.initialize`` (which detects SLURM, Open MPI,
Kubernetes and other clusters, or takes ``coordinator_address``, ``num_processes`` and
``process_id``) and, on CPUs, turns on JAX's gloo collectives. Then every process runs the same
script: ``sf.fit(..., sf.Parquet(...))`` reads this process's share of the files (every
``process_count``-th file from ``process_index``), each pass's sums are added up over the processes
(one small all-gather per pass), and every process takes the same steps to the same estimates. Only
process 0 should write results (``is_writer()``; the CLI does so).

Two processes on one machine (each in its own shell)::

    python fit.py --process-id 0 &  python fit.py --process-id 1

with ``sf.distributed.initialize("localhost:12355", num_processes=2, process_id=ID)`` in ``fit.py``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["initialize", "process_index", "process_count", "is_writer", "allgather", "allreduce", "broadcast",
           "shutdown", "same_everywhere"]

# JAX waits 300 s for the others to join and 100 s for a silent peer; a fit's processes start together,
# so a missing or dead process is reported sooner (each can be given to initialize)
TIMEOUTS = {"initialization_timeout": 120, "heartbeat_timeout_seconds": 30, "shutdown_timeout_seconds": 30}

_STATE = {"initialized": False}


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, **kwargs) -> None:
    """Join (or, as process 0, start) a group of processes; see the module docstring. Arguments are
    ``jax.distributed.initialize``'s; left out, JAX detects the cluster (SLURM, Open MPI, ...).
    Call it before any other JAX call in the process. scanfit waits ``initialization_timeout=120``
    seconds for every process to join and gives up on a silent one after ``heartbeat_timeout_seconds=30``
    (JAX's own: 300 and 100); pass them to change that."""
    import inspect

    import jax

    if _STATE["initialized"]:
        return
    if num_processes is not None and (isinstance(num_processes, bool) or not isinstance(num_processes, int)
                                      or num_processes < 1):
        raise ValueError(f"The 'num_processes' parameter of initialize must be an int >= 1. Got {num_processes!r}.")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"The 'process_id' parameter of initialize must be in 0..{num_processes - 1}. "
                         f"Got {process_id!r}.")
    try:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except Exception:  # pragma: no cover - a JAX without the option
        pass
    accepted = inspect.signature(jax.distributed.initialize).parameters
    options = {**{k: v for k, v in TIMEOUTS.items() if k in accepted}, **kwargs}
    try:
        jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                                   process_id=process_id, **options)
    except Exception as err:
        waited = options.get("initialization_timeout")
        raise RuntimeError(f"sf.distributed.initialize could not join the process group "
                           f"(coordinator_address={coordinator_address!r}, num_processes={num_processes!r}, "
                           f"process_id={process_id!r}"
                           + (f"; waited up to {waited} s for the others" if waited else "") + f"): {err}. Start "
                           f"every process with the same coordinator address and process count, each with its own "
                           f"process_id, or run under SLURM/MPI without arguments.") from None
    _STATE["initialized"] = True


def shutdown() -> None:
    import jax

    if _STATE["initialized"]:
        jax.distributed.shutdown()
        _STATE["initialized"] = False


def process_count() -> int:
    if not _STATE["initialized"]:
        return 1
    import jax

    return jax.process_count()


def process_index() -> int:
    if not _STATE["initialized"]:
        return 0
    import jax

    return jax.process_index()


def is_writer() -> bool:
    """Whether this process writes results (process 0)."""
    return process_index() == 0


def allgather(values: np.ndarray) -> np.ndarray:
    """Every process's ``values`` stacked on a new first axis (``values[None]`` in one process)."""
    values = np.asarray(values, np.float64)
    if process_count() == 1:
        return values[None]
    from jax.experimental import multihost_utils

    import jax

    try:
        with jax.enable_x64(True):
            out = multihost_utils.process_allgather(values, tiled=False)
    except Exception as err:  # gloo's "Connection reset by peer", a size mismatch, ...
        raise RuntimeError(f"Process {process_index()} of {process_count()} could not exchange sums with the others: "
                           f"a process of this distributed fit stopped (it failed, was killed, or runs another "
                           f"command). Its own output says why; start every process again. ({err})") from None
    return np.asarray(out, np.float64).reshape((process_count(),) + values.shape)


def same_everywhere(description: str, what: str) -> None:
    """Check that every process describes its work the same way (a hash of ``description``, gathered);
    processes started with different data or arguments would otherwise add up sums that do not belong
    together (or stop in the collectives with a size mismatch)."""
    if process_count() == 1:
        return
    import hashlib

    digest = np.frombuffer(hashlib.sha256(description.encode()).digest(), np.uint8).astype(np.float64)
    every = allgather(digest)
    differ = [i for i in range(len(every)) if not np.array_equal(every[i], every[0])]
    if differ:
        raise RuntimeError(f"Process {differ[0]} was started with another {what} than process 0 (this is process "
                           f"{process_index()}): every process of a distributed fit must run the same command on the "
                           f"same data (the same path, columns, model and options); only the process id differs.")


def allreduce(tree):
    """The sum over processes of a pytree of arrays (float64 on the host; unchanged in one process)."""
    import jax

    leaves, treedef = jax.tree.flatten(tree)
    if process_count() == 1:
        return jax.tree.unflatten(treedef, [np.asarray(a, np.float64) for a in leaves])
    flat = np.concatenate([np.asarray(a, np.float64).ravel() for a in leaves]) if leaves else np.zeros(0)
    total = allgather(flat).sum(axis=0)
    out, at = [], 0
    for a in leaves:
        size = int(np.size(a))
        out.append(total[at:at + size].reshape(np.shape(a)))
        at += size
    return jax.tree.unflatten(treedef, out)


def broadcast(values: np.ndarray) -> np.ndarray:
    """Process 0's ``values`` on every process (a decision taken once, so that machines whose
    arithmetic differs in the last bit still take the same steps)."""
    values = np.asarray(values, np.float64)
    if process_count() == 1:
        return values
    return allgather(values)[0]
