"""What a person watching the run sees (stderr, rank 0): a progress bar per epoch, then one line.

The bar shows loss, accuracy, learning rate and images/s while the epoch runs and is
removed when it ends; the epoch's summary line stays. On a non-terminal (a log file, CI) only
the summary lines appear. stdout is left to the command's result (``--json``).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Reporter:
    """Progress bars and messages of one training run.

    Args:
        enabled: False on every rank but 0, and when the caller wants silence.
        console: Where to write (default: a stderr console).
    """

    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self._progress: Progress | None = None
        self._task: Any = None

    def say(self, message: str) -> None:
        """One line (rank 0 only)."""
        if self.enabled:
            self.console.print(message, highlight=False, markup=False)

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None:
        """Open the bar of 1-based ``epoch`` (``done`` steps already taken, when resuming mid-epoch)."""
        if not self.enabled or not self.console.is_terminal:
            return
        self._progress = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=steps, completed=done, stats="")

    def update(self, done: int, *, loss: float, top1: float, lr: float, images_per_s: float) -> None:
        """Move the bar to ``done`` steps with the running statistics."""
        if self._progress is None:
            return
        stats = f"loss {loss:.4f}  acc {top1:5.1f}%  lr {lr:.3g}  {images_per_s:,.0f} img/s"
        self._progress.update(self._task, completed=done, stats=stats)

    def end_epoch(self) -> None:
        """Remove the bar."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
