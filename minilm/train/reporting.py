"""Where the training log goes besides log.jsonl: ``[train] report_to``.

log.jsonl is the run's own record (``--resume`` trims it, the model card and ``minilm plot`` read it), so "jsonl" is
always on; "tensorboard" also writes TensorBoard event files to OUTPUT/tensorboard/ (``pip install
'minilm[tensorboard]'``): training scalars as ``train/<key>``, the statistics a loss reports as ``stats/<name>`` (a
section of their own), evaluation metrics as ``eval/<metric>`` (``eval/<name>/<metric>`` with several evaluations).
"""

from __future__ import annotations

from pathlib import Path

from minilm.util.extras import require

REPORTERS = ("jsonl", "tensorboard")


def check_report_to(report_to: list) -> None:
    """ValueError naming what is wrong with a report_to list, including a missing TensorBoard."""
    if not isinstance(report_to, list) or not all(isinstance(r, str) for r in report_to):
        raise ValueError(f"report_to must be a list of names from {list(REPORTERS)}, got {report_to!r}")
    unknown = [r for r in report_to if r not in REPORTERS]
    if unknown:
        raise ValueError(f"report_to: unknown {unknown}; known: {list(REPORTERS)}")
    if "jsonl" not in report_to:
        raise ValueError(
            'report_to must include "jsonl": log.jsonl is the record that --resume, the model card '
            'and minilm plot read (add "tensorboard" to also write TensorBoard events)'
        )
    if "tensorboard" in report_to:
        try:
            summary_writer()
        except ImportError as e:
            raise ValueError(str(e)) from None


def summary_writer():
    return require("torch.utils.tensorboard", "tensorboard", 'report_to = ["tensorboard"]').SummaryWriter


class TensorBoard:
    """Log records as TensorBoard scalars. Events at or after the first step written are hidden from an earlier
    attempt of the same run (``purge_step``), so a resumed run shows each step once."""

    def __init__(self, log_dir: Path, purge_step: int):
        self.writer = summary_writer()(log_dir=str(log_dir), purge_step=purge_step)

    def write(self, record: dict) -> None:
        step = record["step"]
        if "eval" in record:
            scalars = {f"eval/{k}": v for k, v in record["eval"].items()}
        else:
            scalars = {f"train/{k}": v for k, v in record.items() if k not in ("step", "stats")}
            scalars.update({f"stats/{k}": v for k, v in record.get("stats", {}).items()})
        for tag, value in scalars.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):  # not None (a value not logged)
                self.writer.add_scalar(tag, value, step)
        self.writer.flush()  # a killed run keeps what it logged; the resumed run purges what came after its checkpoint

    def close(self) -> None:
        self.writer.close()
