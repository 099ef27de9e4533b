"""Shared benchmark helpers: robust timing summaries, the machine's measured fp32 matmul peak, tables and JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
STS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "stsbenchmark"


def median_and_spread(samples: list[float]) -> tuple[float, float]:
    """(median, half the inter-quartile range / median): a spread robust to the odd descheduled run."""
    if not samples:
        raise ValueError("samples is empty")
    med = statistics.median(samples)
    if len(samples) < 4:
        return med, (max(samples) - min(samples)) / 2 / med if med else 0.0
    q1, _, q3 = statistics.quantiles(samples, n=4)
    return med, (q3 - q1) / 2 / med if med else 0.0


def matmul_peak_flops(n: int = 2048, repeats: int = 5) -> float:
    """The fp32 FLOP/s this process reaches on an n x n matmul (best of ``repeats``): the machine's practical peak."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up: thread pool and caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def machine() -> dict:
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "load_average_1m": os.getloadavg()[0],
    }


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain aligned text table of ``rows`` (dicts) over ``columns``; floats get 3 significant digits."""
    cell = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    widths = [max(len(c), *(len(cell(r.get(c, ""))) for r in rows)) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(cell(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)) for r in rows]
    return "\n".join(lines)


def write_results(name: str, data: dict) -> Path:
    """Write ``data`` (plus machine facts) to benchmarks/results/<name>.json and return the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n", encoding="utf-8")
    return path


def read_sts_sentences(split: str = "dev") -> tuple[list[str], list[str], list[float]]:
    """(sentences1, sentences2, gold scores) of STS-B ``split`` from ../shared beside the checkout."""
    from minilm.data.readers import read_sts

    return read_sts(STS_DIR / f"sts-{split}.csv")
