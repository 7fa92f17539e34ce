"""The progress bar of a fit (rich, on stderr, only on a terminal) and its no-op twin."""

from __future__ import annotations

__all__ = ["progress_bar"]


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
