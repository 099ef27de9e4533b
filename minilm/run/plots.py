"""``minilm plot RUN_DIR``: PNG charts of a training run from its log.jsonl.

One chart per series: the training loss, the learning rate, the gradient norm (and any other number the steps log),
and every evaluation metric. matplotlib is an optional extra: ``pip install 'minilm[plot]'``.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from minilm.util.extras import require
from minilm.util.io import read_text, split_lines, write_bytes

TITLES = {"loss": "training loss", "lr": "learning rate", "grad_norm": "gradient norm"}
NOT_PLOTTED = ("step", "epoch")


def read_log(path: Path) -> list[dict]:
    """The records of a log.jsonl; a line that is not a JSON object is an error naming file and line, except a torn
    last line (a killed run's write cut short), which is dropped as the trainer drops it on resume."""
    lines = split_lines(read_text(path))
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if number == len(lines):
                break  # torn: a kill cut the last write short (read_json_lines drops it the same way)
            raise ValueError(f"{path}:{number}: not a JSON line ({e.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise ValueError(f"{path}:{number}: expected a JSON object with an integer 'step'")
        records.append(record)
    return records


def log_series(records: list[dict]) -> tuple[dict[str, dict[int, float]], dict[str, dict[int, float]]]:
    """(training series, evaluation series): name -> {step: value}, numbers only; a step logged twice keeps its last
    value (a run restarted into the same folder)."""
    train: dict[str, dict[int, float]] = {}
    evals: dict[str, dict[int, float]] = {}
    for record in records:
        values, into = (record["eval"], evals) if "eval" in record else (record, train)
        for key, value in values.items():
            if key not in NOT_PLOTTED and isinstance(value, (int, float)) and not isinstance(value, bool):
                into.setdefault(key, {})[record["step"]] = float(value)
    return train, evals


def plot_run(run_dir: str | Path, output_dir: str | Path | None = None) -> list[Path]:
    """Write one PNG per series of ``run_dir``/log.jsonl into ``output_dir`` (default ``run_dir``/plots); their
    paths."""
    run_dir = Path(run_dir)
    log = run_dir / "log.jsonl"
    if not log.is_file():
        raise FileNotFoundError(f"{log} not found: RUN_DIR must be the output directory of minilm train")
    train, evals = log_series(read_log(log))
    if not train and not evals:
        raise ValueError(f"{log} has no step or evaluation records to plot")
    matplotlib = require("matplotlib", "plot", "minilm plot")
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out = Path(output_dir) if output_dir is not None else run_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    charts = [(key, TITLES.get(key, key), points, False) for key, points in train.items()]
    charts += [(f"eval_{key}", key, points, True) for key, points in evals.items()]
    written = []
    for name, label, points, markers in charts:
        steps = sorted(points)
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(steps, [points[s] for s in steps], marker="o" if markers or len(steps) < 30 else None, linewidth=1)
        if name == "loss" and len(steps) >= 50:  # a noisy per-step loss: show the trend over it
            ax.plot(steps, smoothed([points[s] for s in steps]), linewidth=2, label="moving average")
            ax.legend()
        ax.set(title=f"{run_dir.name}: {'evaluation, ' if markers else ''}{label}", xlabel="step", ylabel=label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out / f"{file_name(name)}.png"
        image = io.BytesIO()
        fig.savefig(image, format="png", dpi=100)
        plt.close(fig)
        write_bytes(path, image.getvalue())  # a kill while plotting leaves the old chart or the new one
        written.append(path)
    return written


def smoothed(values: list[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average, as TensorBoard's smoothing slider computes it (debiased at the start)."""
    out, average = [], 0.0
    for i, value in enumerate(values, 1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight**i))
    return out


def file_name(series: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", series.replace("@", "_at_"))
