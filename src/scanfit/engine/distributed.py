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

import os

import numpy as np

__all__ = ["initialize", "process_index", "process_count", "is_writer", "allgather", "allreduce", "broadcast",
           "shutdown", "same_everywhere"]

# JAX gives up on a silent peer after 100 s; a fit's processes start together, so a dead one is reported sooner.
# The wait for the others to join is scanfit's (joining.timeout: 60 s or $SCANFIT_DISTRIBUTED_TIMEOUT)
TIMEOUTS = {"heartbeat_timeout_seconds": 30, "shutdown_timeout_seconds": 30}

_STATE = {"initialized": False}


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, **kwargs) -> None:
    """Join (or, as process 0, start) a group of processes; see the module docstring. Arguments are
    ``jax.distributed.initialize``'s; left out, JAX detects the cluster (SLURM, Open MPI, ...).
    Call it before any other JAX call in the process. Process 0 first checks that the coordinator's port is
    free. scanfit waits ``initialization_timeout`` seconds (default 60, or ``$SCANFIT_DISTRIBUTED_TIMEOUT``)
    for every process to join: past it, the process prints why and ends with status 1 (JAX's runtime would
    abort it). Then the processes compare their process counts (a mismatch raises ``RuntimeError``). A silent
    peer is given up after ``heartbeat_timeout_seconds=30`` (JAX's: 100)."""
    import inspect

    import jax

    from . import joining

    if _STATE["initialized"]:
        return
    if num_processes is not None and (isinstance(num_processes, bool) or not isinstance(num_processes, int)
                                      or num_processes < 1):
        raise ValueError(f"The 'num_processes' parameter of initialize must be an int >= 1. Got {num_processes!r}.")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"The 'process_id' parameter of initialize must be in 0..{num_processes - 1}. "
                         f"Got {process_id!r}.")
    seconds = joining.timeout(kwargs.pop("initialization_timeout", None))
    address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if address:
        joining.check_address(address, starts=process_id == 0)
    try:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except Exception:  # pragma: no cover - a JAX without the option
        pass
    accepted = inspect.signature(jax.distributed.initialize).parameters
    options = {**{k: v for k, v in TIMEOUTS.items() if k in accepted}, **kwargs}
    if "initialization_timeout" in accepted:
        options["initialization_timeout"] = int(seconds) + joining.JAX_MARGIN
    where = (f"coordinator_address={address!r}, num_processes={num_processes!r}, process_id={process_id!r}"
             if address or num_processes is not None else "detected from the cluster")
    deadline = joining.Deadline(seconds, joining.waited(seconds, process_id, where))
    try:
        jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                                   process_id=process_id, **options)
        state = getattr(jax._src.distributed, "global_state", None)  # the values JAX took (given or detected)
        if getattr(state, "client", None) is not None:
            joining.compare(state.client, state.num_processes, state.process_id, seconds)
    except joining.JoinError:
        raise
    except Exception as err:
        raise RuntimeError(f"sf.distributed.initialize could not join the process group ({where}): {err} "
                           f"To fix it, {joining.FIX}.") from None
    finally:
        deadline.cancel()
    _STATE["initialized"] = True


def shutdown() -> None:
    import jax

    if _STATE["initialized"]:
        jax.distributed.shutdown()
        _STATE["initialized"] = False


def _lost() -> None:
    """A peer stopped: at exit JAX's handler would wait for it in the group's shutdown and then abort the
    process (134) after the message; instead the process ends at exit with status 1, without that wait."""
    import atexit

    if not _STATE.get("lost"):
        _STATE["lost"] = True
        atexit.register(_end_now)  # run before JAX's handler (registered when JAX was imported)


def _end_now() -> None:
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(1)


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
        _lost()
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
