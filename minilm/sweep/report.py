"""What a sweep writes: ``sweep.csv`` (one row per finished run), ``sweep.md`` (per configuration: the metric's mean,
standard deviation and 95 % interval over seeds, and the paired difference against the baseline with its interval)
and PNG plots (training loss, reported statistics and the metric per configuration; the metric with error bars).

Plots need matplotlib, an optional extra: ``pip install 'minilm[plot]'``. Without it the tables are still written
and the sweep says how to get the plots. Every file is written beside its target and renamed into place.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

from minilm.sweep.spec import RESULT, Sweep
from minilm.sweep.stats import Interval, paired_difference, t_interval
from minilm.util.io import write_bytes, write_text

PLOT_HINT = "plots need matplotlib, an optional extra: pip install 'minilm[plot]'"
PLOTS = ("loss.png", "stats.png", "metric.png")


def read_run(run) -> dict | None:
    """A finished run's result, with its per-step losses and statistics read back from its log.jsonl."""
    if not (run.directory / RESULT).is_file():
        return None
    result = json.loads((run.directory / RESULT).read_text(encoding="utf-8"))
    steps = []
    log = run.directory / "log.jsonl"
    if log.is_file():
        steps = [r for r in map(json.loads, log.read_text(encoding="utf-8").splitlines()) if "loss" in r]
    result["losses"] = [r["loss"] for r in steps]
    names = list(dict.fromkeys(name for r in steps for name in r.get("stats", {})))
    result["stats"] = {name: [r.get("stats", {}).get(name) for r in steps] for name in names}
    return result


def _mean(values) -> float | None:
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return sum(kept) / len(kept) if kept else None


def summarise(sweep: Sweep) -> list[dict]:
    """One row per finished run: its configuration, seed, metric before/after, final loss, mean statistics."""
    rows = []
    for run in sweep.runs:
        result = read_run(run)
        if result is None:
            continue
        history = result["history"]
        before, after = (history[0], history[-1]) if result["status"] == "done" and history else ({}, {})
        losses = result["losses"]
        tail = losses[-max(1, len(losses) // 10) :]  # the last tenth of the steps: less noisy than the last step
        row = {
            "config": run.label,
            "config_index": run.index,
            "seed": run.seed,
            "status": result["status"],
            "loss": _shown(run.recipe.loss["name"], sweep),
            "settings": json.dumps(run.recipe.loss_settings(), sort_keys=True),
            "lr": run.recipe.train["lr"],
            "loss_lr": run.recipe.train["loss_lr"] or "",
            "steps": result["steps"],
            "seconds": round(result["seconds"], 2),
            f"{sweep.metric}_before": before.get(sweep.metric),
            sweep.metric: after.get(sweep.metric),
            "final_loss": _mean(tail),
        }
        row.update({f"eval.{k}": v for k, v in after.items() if k not in ("step", sweep.metric)})
        row.update({f"stat.{name}": _mean(values) for name, values in result["stats"].items()})
        rows.append(row)
    return rows


def _shown(name: str, sweep: Sweep) -> str:
    """A loss file as the sweep file names it (relative to it), not the absolute path the runs resolved."""
    where, colon, attribute = name.rpartition(":")
    if colon and where.endswith(".py") and Path(where).is_absolute():
        return f"{os.path.relpath(where, sweep.path.parent.resolve())}:{attribute}"
    return name


def write_tables(sweep: Sweep, output: Path) -> None:
    """sweep.csv and sweep.md from the finished runs (rewritten after every run, so a killed sweep has them too)."""
    output.mkdir(parents=True, exist_ok=True)
    rows = summarise(sweep)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    write_text(output / "sweep.csv", buffer.getvalue())
    write_text(output / "sweep.md", markdown(sweep, rows))


def _fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _interval(i: Interval | None, signed: bool = False) -> str:
    if i is None or i.low is None:
        return "—"
    sign = "+" if signed else ""
    return f"[{i.low:{sign}.4f}, {i.high:{sign}.4f}]"


def markdown(sweep: Sweep, rows: list[dict]) -> str:
    metric = sweep.metric
    by_config: dict[int, dict[int, float]] = {}  # config -> seed -> metric after training
    for row in rows:
        if row["status"] == "done" and row[metric] is not None:
            by_config.setdefault(row["config_index"], {})[row["seed"]] = row[metric]
    baseline = by_config.get(0, {})
    recipe = sweep.runs[0].recipe
    steps = recipe.train["max_steps"] or f"{recipe.train['epochs']} epoch(s)"
    seconds = sum(row["seconds"] for row in rows)
    lines = [f"# Sweep {sweep.name}", ""]
    if sweep.description:
        lines += [sweep.description, ""]
    lines += [
        f"Base recipe `{sweep.base.name}`, {steps} steps of batch {recipe.train['batch_size']}, seeds "
        f"{sweep.seeds}; metric `{metric}` after training ({len(rows)} of {len(sweep.runs)} runs finished, "
        f"{seconds:.0f} s of training in all). Intervals are 95 % Student-t intervals over seeds; the paired "
        f"difference is taken seed by seed against the baseline (the first configuration), and ✱ marks an "
        f"interval that excludes 0.",
        "",
    ]
    lines += [
        f"| configuration | runs | {metric} before | mean | std | 95 % interval | Δ vs baseline (paired) | "
        f"95 % interval of Δ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    before = {row["config_index"]: row[f"{metric}_before"] for row in rows if row[f"{metric}_before"] is not None}
    diverged = {}
    for row in rows:
        diverged[row["config_index"]] = diverged.get(row["config_index"], 0) + (row["status"] != "done")
    for index, config in enumerate(sweep.configs):
        values = by_config.get(index, {})
        runs = f"{len(values)}" + (f" (+{diverged[index]} diverged)" if diverged.get(index) else "")
        if not values:
            lines.append(f"| {config.label} | {runs} | {_fmt(before.get(index))} | — | — | — | — | — |")
            continue
        spread = t_interval(list(values.values()))
        if index == 0:
            delta, delta_interval = "baseline", "—"
        else:
            diff = paired_difference(values, baseline)
            delta = "—" if diff is None else f"{diff.mean:+.4f}"
            delta_interval = _interval(diff, signed=True) + (" ✱" if diff is not None and diff.excludes_zero else "")
        lines.append(
            f"| {config.label} | {runs} | {_fmt(before.get(index))} | {spread.mean:.4f} | "
            f"{_fmt(spread.std)} | {_interval(spread)} | {delta} | {delta_interval} |"
        )
    stat_names = sorted({key for row in rows for key in row if key.startswith("stat.")})
    lines += [
        "",
        "Training, mean over seeds: the loss over the last tenth of the steps, and each statistic the loss "
        "reported, averaged over all steps.",
        "",
        "| configuration | final loss | " + " | ".join(n[5:] for n in stat_names) + " |",
        "|---|---|" + "---|" * len(stat_names),
    ]
    for index, config in enumerate(sweep.configs):
        mine = [row for row in rows if row["config_index"] == index and row["status"] == "done"]
        cells = [_fmt(_mean(row["final_loss"] for row in mine))]
        cells += [_fmt(_mean(row.get(name) for row in mine)) for name in stat_names]
        lines.append(f"| {config.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- plots


def write_plots(sweep: Sweep, output: Path, log: Callable[[str], None] = print) -> bool:
    """loss.png, stats.png (when the losses report statistics) and metric.png; False (and a hint) without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        log(f"{PLOT_HINT} (sweep.csv and sweep.md were written)")
        return False
    runs = [(run, read_run(run)) for run in sweep.runs]
    runs = [(run, result) for run, result in runs if result is not None]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def color(index: int) -> str:
        return colors[index % len(colors)]

    def mean_curve(series: list[list]) -> list:
        """Step-wise mean over seeds (runs may differ in length if one diverged)."""
        length = max(map(len, series), default=0)
        return [_mean(s[i] for s in series if i < len(s)) for i in range(length)]

    fig, ax = plt.subplots(figsize=(7, 4))
    for index, config in enumerate(sweep.configs):
        curves = [result["losses"] for run, result in runs if run.index == index]
        if curves:
            ax.plot(range(1, len(mean_curve(curves)) + 1), mean_curve(curves), color=color(index), label=config.label)
    ax.set(xlabel="step", ylabel="training loss (mean over seeds)", title=f"{sweep.name}: training loss")
    ax.legend(fontsize="small")
    _save(fig, output / "loss.png")

    names = list(dict.fromkeys(name for _, result in runs for name in result["stats"]))
    if names:
        cols = min(3, len(names))
        rows = math.ceil(len(names) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
        for ax, name in zip(axes.flat, names):
            for index, config in enumerate(sweep.configs):
                curves = [
                    result["stats"][name] for run, result in runs if run.index == index and name in result["stats"]
                ]
                if curves:
                    curve = mean_curve(curves)
                    ax.plot(
                        range(1, len(curve) + 1),
                        [math.nan if v is None else v for v in curve],
                        color=color(index),
                        label=config.label,
                    )
            ax.set(title=name, xlabel="step")
        for ax in list(axes.flat)[len(names) :]:
            ax.set_visible(False)
        labelled = {}  # every configuration once, whichever panels it reports in
        for ax in axes.flat:
            labelled.update({label: handle for handle, label in zip(*ax.get_legend_handles_labels())})
        fig.suptitle(f"{sweep.name}: statistics the losses reported (mean over seeds)")
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        fig.legend(labelled.values(), labelled.keys(), loc="lower center", ncol=min(4, len(labelled)), fontsize="small")
        _save(fig, output / "stats.png")

    fig, (curve_ax, bar_ax) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1, 1.2]})
    for index, config in enumerate(sweep.configs):
        histories = [result["history"] for run, result in runs if run.index == index and result["status"] == "done"]
        if histories:
            steps = [h["step"] for h in histories[0]]
            values = [_mean(h[i].get(sweep.metric) for h in histories if i < len(h)) for i in range(len(steps))]
            curve_ax.plot(steps, values, marker="o", color=color(index), label=config.label)
        finals = [
            result["history"][-1][sweep.metric]
            for run, result in runs
            if run.index == index and result["status"] == "done" and result["history"]
        ]
        if finals:
            spread = t_interval(finals)
            error = [[spread.mean - spread.low], [spread.high - spread.mean]] if spread.low is not None else None
            bar_ax.errorbar([index], [spread.mean], yerr=error, fmt="o", capsize=6, color=color(index))
            bar_ax.scatter([index + 0.12] * len(finals), finals, s=12, color=color(index), alpha=0.5)
    curve_ax.set(xlabel="step", ylabel=sweep.metric, title=f"{sweep.metric} during training (mean over seeds)")
    curve_ax.legend(fontsize="small")
    bar_ax.set_xticks(
        range(len(sweep.configs)), [c.label for c in sweep.configs], rotation=20, ha="right", fontsize="small"
    )
    bar_ax.set(ylabel=sweep.metric, title="after training: mean and 95 % interval over seeds (dots: seeds)")
    fig.tight_layout()
    _save(fig, output / "metric.png")
    log(f"plots: {', '.join(str(output / name) for name in PLOTS if (output / name).is_file())}")
    return True


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    if not fig.legends:  # a figure legend has placed itself already
        fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes(path, buffer.getvalue())
