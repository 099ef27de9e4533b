"""A run's log: ``log.jsonl`` in the output directory, one JSON record per logged step or evaluation, the same
records in TensorBoard when ``[train] report_to`` asks for it, and the progress line on stderr.

Only rank 0 logs (and writes files only with an output directory). A resumed run first trims what the
interrupted attempt logged after the step it resumes from, so the log reads as one uninterrupted run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from minilm.train.reporting import TensorBoard
from minilm.util.devices import environment_line
from minilm.util.io import append_line, json_line, read_json_lines, write_text
from minilm.util.progress import Progress

LOG_NAME = "log.jsonl"


class RunLog:
    def __init__(self, output_dir: Path | None, is_main: bool, report_to: list[str], environment: dict):
        """``is_main``: this process logs (rank 0); without an output directory no file is written.
        ``environment``: what the run runs on, said by the progress line's first line."""
        self.is_main, self.output_dir = is_main, output_dir if is_main else None
        self.report_to, self.environment = report_to, environment
        self.progress: Progress | None = None  # from start_progress
        self.tensorboard: TensorBoard | None = None  # opened at the first record (report_to = ["tensorboard"])
        self.kept: list[dict] | None = None  # log.jsonl as records: read once (for a card), then kept in step

    def write(self, record: dict) -> None:
        """One JSON Lines record per call, appended in a single write; NaN and infinity become null plus the reason."""
        if self.output_dir is None:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        line = json_line(record)
        append_line(self.output_dir / LOG_NAME, line)
        if self.kept is not None:
            self.kept.append(json.loads(line))  # as read_json_lines would read it back
        if "tensorboard" in self.report_to:
            if self.tensorboard is None:
                self.tensorboard = TensorBoard(self.output_dir / "tensorboard", purge_step=record["step"])
            self.tensorboard.write(record)

    def start_progress(self, total_steps: int, step: int, stream) -> None:
        """The progress line from ``step`` on, on ``stream``: about 20 lines a run in a log file, however fast."""
        if self.is_main:
            every = max(1, total_steps // 20)
            self.progress = Progress(total_steps, "steps", "train", stream=stream, start=step, every=every)

    def show(self, record: dict) -> None:
        """A logged step on the progress line: its loss and learning rate (and an fp16 step skipped)."""
        if self.progress is None:
            return
        detail = f"loss {record['loss']:.4f}  lr {record['lr']:.2e}"
        if record.get("skipped"):
            detail += f"  skipped (fp16 loss scale {record['loss_scale']:g} overflowed)"
        if self.progress.last_shown is None:  # the run's first line says what it runs on
            detail += "  " + environment_line(self.environment)
        self.progress.update(record["step"], detail)

    def records(self) -> list[dict]:
        """Every record logged so far (read from the file the first time: a resumed run's earlier attempts)."""
        if self.kept is None:
            log = self.output_dir / LOG_NAME if self.output_dir is not None else None
            self.kept = read_json_lines(log)[0] if log is not None and log.is_file() else []
        return list(self.kept)

    def trim(self, step: int, say: Callable[[str], None]) -> None:
        """Drop what the interrupted run logged after ``step``, the step resumed from (and a torn last line, if a
        kill cut one short); the log is rewritten beside and renamed, so a kill here leaves the old log."""
        log = self.output_dir / LOG_NAME if self.output_dir is not None else None
        if log is None or not log.is_file():
            return
        records, torn = read_json_lines(log)
        if torn:
            say(f"{log}: dropped a torn last line (the interrupted run's last write)")
        kept = [r for r in records if r.get("step", 0) <= step] if step else []  # step 0: all is redone
        write_text(log, "".join(json_line(r) + "\n" for r in kept))
        self.kept = None  # read again when a card needs it

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
