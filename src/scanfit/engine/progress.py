"""The progress bar of a fit (rich, on stderr, only on a terminal) and its no-op twin, and how a
fit hears Ctrl-C (:class:`CtrlC`)."""

from __future__ import annotations

import signal
import threading

__all__ = ["progress_bar", "CtrlC"]


class CtrlC:
    """While a fit runs (its checks, compilations, loop and final statistics): the first Ctrl-C sets
    ``CtrlC.pressed``, which the loop reads between chunks to stop and keep the work done; a second
    one raises ``KeyboardInterrupt`` at once.

    A ``KeyboardInterrupt`` raised inside JAX's lowering or compilation can leave it in a state that
    crashes the process at exit, so the first press only sets the flag. Installed only in the main
    thread and only over Python's own handler (a program with its own SIGINT handler keeps it, and
    the loop catches a ``KeyboardInterrupt`` between chunks as before).
    """

    pressed = False

    def __init__(self):
        self._previous = None

    def __enter__(self):
        CtrlC.pressed = False
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._press)
        return self

    def _press(self, signum, frame):
        CtrlC.pressed = True
        signal.signal(signal.SIGINT, self._previous)  # a second Ctrl-C raises KeyboardInterrupt

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def advance(self, done):
        pass


class _RichBar(_NoBar):
    def __init__(self, total):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        console = Console(stderr=True)
        self.progress = Progress(TextColumn("fitting"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                                 TimeRemainingColumn(), transient=True, console=console,
                                 disable=not console.is_terminal)
        self.task = self.progress.add_task("fit", total=total)

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def advance(self, done):
        self.progress.update(self.task, completed=done)


def progress_bar(progress: bool, total: int):
    return _RichBar(total) if progress else _NoBar()
