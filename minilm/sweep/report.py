"""What a sweep writes: ``sweep.csv`` (one row per finished run), ``sweep.md`` (per configuration: the metric's mean,
standard deviation and 95 % interval over seeds, the paired difference against the baseline with its interval, its
paired t-test p-value and that p-value after Holm's correction; then the training: final loss, gradient norms and the
fraction of steps clipped, the loss's statistics) and PNG plots (training loss, one panel per configuration; reported
statistics; the metric per configuration, and with error bars). Every markdown row has its header's cell count.

Plots need matplotlib, an optional extra: ``pip install 'minilm[plot]'``. Without it the tables are still written
and the sweep says how to get the plots. Every file is written beside its target and renamed into place.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
from collections.abc import Callable
from pathlib import Path

from minilm.sweep.spec import RESULT, Sweep
from minilm.sweep.stats import Interval, holm, paired_difference, paired_t_test, t_interval
from minilm.util.io import write_bytes, write_text

PLOT_HINT = "plots need matplotlib, an optional extra: pip install 'minilm[plot]'"
PLOTS = ("loss.png", "stats.png", "metric.png")
TABLES = ("sweep.csv", "sweep.md")


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
    result["grad_norms"] = [r["grad_norm"] for r in steps if isinstance(r.get("grad_norm"), (int, float))]
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
        norms, limit = result["grad_norms"], run.recipe.train["max_grad_norm"]
        row.update(
            {
                "grad_norm_median": statistics.median(norms) if norms else None,
                "grad_norm_max": max(norms) if norms else None,
                "max_grad_norm": limit,
                "clipped_steps": sum(norm > limit for norm in norms),
                "_grad_norms": norms,  # for the table's pooled median; not a column of sweep.csv
            }
        )
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
    columns = list(dict.fromkeys(key for row in rows for key in row if not key.startswith("_")))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    write_text(output / "sweep.csv", buffer.getvalue())
    write_text(output / "sweep.md", markdown(sweep, rows))


def _fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _p(p: float | None) -> str:
    return "—" if p is None else f"{p:.2g}" if p < 0.01 else f"{p:.3f}"


def _cell(text) -> str:
    """Text as one markdown table cell: a ``|`` would end the cell, a line break the row."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table whose every row has the header's number of cells."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        assert len(row) == len(header), (header, row)
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return lines


def _interval(i: Interval | None, signed: bool = False) -> str:
    if i is None:
        return "—"
    if i.low is None:
        return i.why_none
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
        f"{seconds:.0f} s of run time in all, a resumed run's earlier attempts included). Intervals are 95 % "
        f"Student-t intervals over seeds, given only for at least two runs whose values differ (otherwise the cell "
        f"says why). The paired difference Δ is taken seed by seed against the baseline (the first configuration); "
        f"p is the two-sided paired t-test of those differences (H0: mean Δ = 0; scipy's ttest_rel), and p (Holm) "
        f"corrects it for comparing {max(0, len(sweep.configs) - 1)} configuration(s) with one baseline (Holm's "
        f"step-down method). ✱ marks a Holm-adjusted p below 0.05.",
        "",
    ]
    before = {row["config_index"]: row[f"{metric}_before"] for row in rows if row[f"{metric}_before"] is not None}
    diverged = {}
    for row in rows:
        diverged[row["config_index"]] = diverged.get(row["config_index"], 0) + (row["status"] != "done")
    differences = {
        index: paired_difference(values, baseline) for index, values in by_config.items() if index != 0 and values
    }
    tested = {
        index: paired_t_test([values[s] - baseline[s] for s in values if s in baseline])
        for index, values in by_config.items()
        if index in differences and differences[index] is not None
    }
    adjusted = holm({index: p for index, p in tested.items() if p is not None})
    body = []
    for index, config in enumerate(sweep.configs):
        values = by_config.get(index, {})
        runs = f"{len(values)}" + (f" (+{diverged[index]} diverged)" if diverged.get(index) else "")
        if not values:
            body.append([config.label, runs, _fmt(before.get(index)), "—", "—", "—", "—", "—", "—", "—"])
            continue
        spread = t_interval(list(values.values()))
        if index == 0:
            delta, delta_interval, p, p_holm = "baseline", "—", "—", "—"
        else:
            diff = differences.get(index)
            delta = "—" if diff is None else f"{diff.mean:+.4f}"
            delta_interval = "no seed shared with the baseline" if diff is None else _interval(diff, signed=True)
            p = _p(tested.get(index))
            p_holm = _p(adjusted.get(index)) + (" ✱" if adjusted.get(index, 1.0) < 0.05 else "")
        body.append(
            [
                config.label,
                runs,
                _fmt(before.get(index)),
                f"{spread.mean:.4f}",
                _fmt(spread.std),
                _interval(spread),
                delta,
                delta_interval,
                p,
                p_holm,
            ]
        )
    header = [
        "configuration",
        "runs",
        f"{metric} before",
        "mean",
        "std",
        "95 % interval",
        "Δ vs baseline (paired)",
        "95 % interval of Δ",
        "p (paired t)",
        "p (Holm)",
    ]
    lines += _table(header, body)
    stat_names = sorted({key for row in rows for key in row if key.startswith("stat.")})
    limits = sorted({row["max_grad_norm"] for row in rows if row.get("max_grad_norm") is not None})
    lines += [
        "",
        "Training, over the finished runs of each configuration: the loss over the last tenth of the steps (mean "
        "over seeds); the gradient norm before clipping, over every step of every seed (median and largest); the "
        f"fraction of those steps clipped (norm above max_grad_norm, {', '.join(map(str, limits)) or '—'}: the "
        "update was scaled down to it); and each statistic the loss reported, averaged over the steps.",
        "",
    ]
    body = []
    for index, config in enumerate(sweep.configs):
        mine = [row for row in rows if row["config_index"] == index and row["status"] == "done"]
        norms = [norm for row in mine for norm in row.get("_grad_norms", ())]
        logged = sum(len(row.get("_grad_norms", ())) for row in mine)
        clipped = sum(row.get("clipped_steps", 0) for row in mine)
        cells = [config.label, _fmt(_mean(row["final_loss"] for row in mine))]
        cells += [
            _fmt(statistics.median(norms)) if norms else "—",
            _fmt(max(norms)) if norms else "—",
            f"{clipped / logged:.0%} ({clipped} of {logged})" if logged else "—",
        ]
        cells += [_fmt(_mean(row.get(name) for row in mine)) for name in stat_names]
        body.append(cells)
    header = ["configuration", "final loss", "grad norm median", "grad norm max", "steps clipped"]
    lines += _table(header + [n[5:] for n in stat_names], body)
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

    # one panel per configuration, each on its own scale: losses of different families sit at different levels
    # (one near -10, another near 0.5) and on one axis the smaller would be a flat line
    cols = min(3, len(sweep.configs))
    rows = math.ceil(len(sweep.configs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for (index, config), ax in zip(enumerate(sweep.configs), axes.flat):
        curves = [result["losses"] for run, result in runs if run.index == index]
        for curve in curves:  # each seed, faint
            ax.plot(range(1, len(curve) + 1), curve, color=color(index), alpha=0.3, linewidth=0.8)
        if curves:
            mean = mean_curve(curves)
            ax.plot(range(1, len(mean) + 1), mean, color=color(index), label="mean over seeds")
        ax.set(title=config.label, xlabel="step", ylabel="training loss")
        ax.title.set_fontsize("small")
    for ax in list(axes.flat)[len(sweep.configs) :]:
        ax.set_visible(False)
    fig.suptitle(f"{sweep.name}: training loss per configuration (faint: each seed)")
    fig.tight_layout()
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
