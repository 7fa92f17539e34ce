"""Joining a group of processes without JAX's C++ aborts: the checks ``sf.distributed.initialize`` makes
around ``jax.distributed.initialize``.

- The coordinator address is host:port; process 0 checks that the port is free before starting the
  coordinator on it (a taken port, or a second process 0).
- A deadline (``SCANFIT_DISTRIBUTED_TIMEOUT``, 60 s by default): JAX's runtime aborts the process (C++
  ``DEADLINE_EXCEEDED``, exit 134) when the others do not join in time, so a watchdog thread prints scanfit's
  message first and ends the process with status 1 (JAX is given 30 s more, so the watchdog comes first).
- Once connected, every process publishes its process count in the coordinator's key-value store and
  compares it with process 0's (each process reads process 0's, process 0 reads everyone's): a different
  count is refused, naming both. A second process with a taken id is refused by JAX's coordinator, which
  aborts the processes already joined (a C++ abort scanfit cannot intercept); the others get the timeout message.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import threading

ENV = "SCANFIT_DISTRIBUTED_TIMEOUT"
DEFAULT_TIMEOUT = 60
JAX_MARGIN = 30  # JAX's own deadline comes this much later than scanfit's
FIX = (f"start every process within the timeout (set {ENV}=SECONDS to wait longer), with the same "
       f"--coordinator and --num-processes (coordinator_address, num_processes) and each with its own "
       f"--process-id (process_id) from 0 to the count - 1")


def timeout(given: float | None = None) -> float:
    """The seconds to wait for the others: ``given``, else ``$SCANFIT_DISTRIBUTED_TIMEOUT``, else 60."""
    value = os.environ.get(ENV) if given is None else given
    if value is None or value == "":
        return float(DEFAULT_TIMEOUT)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        where = f"{ENV}={value!r}" if given is None else f"initialization_timeout={value!r}"
        raise ValueError(f"{where} is not a number of seconds > 0: give one, e.g. {ENV}=120.")
    return seconds


def check_address(address: str, starts: bool) -> None:
    """Refuse an address that is not host:port; where this process ``starts`` the coordinator (process 0:
    on the port, on every interface, as JAX does), refuse a port another program holds."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"The coordinator address {address!r} (--coordinator, coordinator_address) is not host:port: "
                         f"give process 0's host and a free port, e.g. localhost:12355.")
    if not starts:
        return
    bind = os.environ.get("JAX_COORDINATOR_BIND_ADDRESS")
    places = [(bind.rpartition(":")[0].strip("[]") or "::", int(bind.rpartition(":")[2]))] if bind else \
        [("::", int(port)), ("0.0.0.0", int(port))]
    for place in places:
        family = socket.AF_INET6 if ":" in place[0] else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC: a closed socket's TIME_WAIT is free
                s.bind(place)
            return
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise RuntimeError(
                    f"Port {place[1]} of the coordinator address {address!r} (--coordinator, coordinator_address) is "
                    f"in use on this machine: another program holds it, or another process was started as process 0 "
                    f"(--process-id 0). Choose a free port, the same in every process's coordinator address, or end "
                    f"the program that holds it (e.g. `ss -ltnp | grep {place[1]}`).") from None
            # no IPv6 here (or that address is not this machine's): try the next, leave the rest to JAX


def waited(seconds: float, process_id: int | None, where: str) -> str:
    """The message when the others did not join within ``seconds``."""
    who = "This process" if process_id is None else f"Process {process_id}"
    return (f"{who} waited {seconds:g} s for the other processes of this distributed run to join ({where}) and "
            f"gave up: a process was not started, was given another coordinator address or process count, two were "
            f"given the same process id, or the coordinator cannot be reached from here. To fix it, {FIX}.")


class JoinError(RuntimeError):
    """The processes disagree about the group's size: the message names both values."""


class Deadline:
    """A watchdog: unless ``cancel()`` is called within ``seconds``, print ``message`` (on stderr, as
    scanfit's errors) and end the process with status 1 - JAX's runtime would abort it soon after."""

    def __init__(self, seconds: float, message: str):
        self.seconds, self.message, self._done = seconds, message, threading.Event()
        threading.Thread(target=self._watch, name="scanfit-join-deadline", daemon=True).start()

    def _watch(self) -> None:
        if self._done.wait(self.seconds):
            return
        text = f"Error: {self.message}\n".encode()
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        os.write(2, text)
        os._exit(1)

    def cancel(self) -> None:
        self._done.set()


def compare(client, num_processes: int, process_id: int, seconds: float) -> None:
    """Publish this process's count and check it against process 0's, and process 0's against every other
    process's: a mismatch raises a ``JoinError`` naming both values. (A second process with a taken id is
    refused by JAX's coordinator, which ends the group; those still waiting get ``waited``'s message.)"""
    me = json.dumps({"count": num_processes, "id": process_id, "host": socket.gethostname(), "pid": os.getpid()})
    client.key_value_set(f"scanfit/join/{process_id}", me)
    for other_id in (range(1, num_processes) if process_id == 0 else [0]):
        other = _read(client, f"scanfit/join/{other_id}", seconds)
        if other["count"] != num_processes:
            raise JoinError(f"Process {other_id} (pid {other['pid']} on {other['host']}) was started with "
                            f"--num-processes {other['count']} (num_processes) and this process ({process_id}) with "
                            f"{num_processes}: give every process the same count, the number of processes you start.")


def _read(client, key: str, seconds: float) -> dict:
    return json.loads(client.blocking_key_value_get(key, int(seconds * 1000)))
