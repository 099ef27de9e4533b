"""``minilm plot RUN_DIR``: PNG charts of a training run from its log.jsonl.

One chart per series: the training loss, the learning rate, the gradient norm (and any other number the steps log),
and every evaluation metric; the statistics a loss reports (``"stats"`` in a step's record) share ``stats.png``, one
panel each on its own scale. matplotlib is an optional extra: ``pip install 'minilm[plot]'``.
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


def stats_series(records: list[dict]) -> dict[str, dict[int, float]]:
    """The statistics the loss reported with each step: name -> {step: value}, numbers only (a value the run could
    not log is null); a step logged twice keeps its last value."""
    series: dict[str, dict[int, float]] = {}
    for record in records:
        stats = record.get("stats") if "eval" not in record else None
        for key, value in (stats if isinstance(stats, dict) else {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                series.setdefault(key, {})[record["step"]] = float(value)
    return series


def stats_figure(title: str, series: dict[str, dict[int, float]]):
    """One panel per statistic, each on its own scale (a temperature near 0.05 beside an accuracy near 1 would
    otherwise be a flat line), two panels a row; the panel's title is the statistic's name."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    names = list(series)
    columns = min(2, len(names))
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        steps = sorted(series[name])
        ax.plot(steps, [series[name][s] for s in steps], marker="o" if len(steps) < 30 else None, linewidth=1)
        ax.set(title=name, xlabel="step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.remove()
    fig.suptitle(f"{title}: statistics the loss reported")
    fig.tight_layout()
    return fig


def plot_run(run_dir: str | Path, output_dir: str | Path | None = None) -> list[Path]:
    """Write one PNG per series of ``run_dir``/log.jsonl into ``output_dir`` (default ``run_dir``/plots), and
    ``stats.png`` when the loss reported statistics; their paths."""
    run_dir = Path(run_dir)
    log = run_dir / "log.jsonl"
    if not log.is_file():
        raise FileNotFoundError(f"{log} not found: RUN_DIR must be the output directory of minilm train")
    records = read_log(log)
    train, evals = log_series(records)
    stats = stats_series(records)
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
    if stats:
        fig = stats_figure(run_dir.name, stats)
        path = out / "stats.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
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
