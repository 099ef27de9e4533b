"""The one progress line of encoding and training, on stderr: done / total, rate and ETA (and what the caller adds:
a step's loss and learning rate). Rewritten in place on a terminal; on a pipe or log file, a new line now and then,
so a log does not fill up with carriage returns."""

from __future__ import annotations

import sys
import time


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """``update(done)`` as work advances, ``close()`` at the end. ``start`` is where a resumed run picked up: the
    rate counts only what this run did. ``every``: on a pipe, show every that many updates too (a training run's log
    gets about 20 lines however fast it goes)."""

    def __init__(
        self,
        total: int,
        what: str = "lines",
        label: str = "encode",
        start: int = 0,
        stream=None,
        interval: float | None = None,
        clock=time.monotonic,
        every: int | None = None,
    ):
        self.total, self.what, self.label, self.start = total, what, label, start
        self.stream = sys.stderr if stream is None else stream
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.interval = (0.5 if self.tty else 30.0) if interval is None else interval
        self.clock = clock
        self.began = clock()
        self.last_shown = None
        self.done = start
        self.every = every
        self.detail = ""

    def line(self) -> str:
        elapsed = self.clock() - self.began
        rate = (self.done - self.start) / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = format_seconds(left / rate) if rate > 0 else "?"
        percent = 100.0 * self.done / self.total if self.total else 100.0
        shown_rate = f"{rate:,.0f}" if rate >= 10 else f"{rate:.2f}"
        detail = f"  {self.detail}" if self.detail else ""
        return (
            f"{self.label} {self.done:,}/{self.total:,} {self.what} ({percent:.1f}%){detail}  {shown_rate} "
            f"{self.what}/s  elapsed {format_seconds(elapsed)}  ETA {eta}"
        )

    def update(self, done: int, detail: str = "") -> None:
        self.done, self.detail = done, detail
        now = self.clock()
        counted = self.every is not None and not self.tty and done % self.every == 0
        if self.last_shown is None or now - self.last_shown >= self.interval or done >= self.total or counted:
            self.last_shown = now
            self._show()

    def _show(self) -> None:
        if self.tty:
            print("\r" + self.line() + "\033[K", end="", file=self.stream, flush=True)
        else:
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty and self.last_shown is not None:
            print(file=self.stream, flush=True)
