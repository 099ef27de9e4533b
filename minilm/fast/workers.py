"""Encode batches in flight side by side on CPU, each on its share of torch's threads.

An encode batch of 32 short sentences is too small a GEMM to keep two cores busy together, so two batches run at
once, one core each (benchmarks/README.md). The embeddings are the same as one batch at a time; only the matmul
thread count differs. Used by ``SentenceEncoder.encode(workers=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch


def default_workers(device: torch.device, compiled: bool) -> int:
    """2 on a CPU with 2+ torch threads, else 1; torch.compile'd code is not thread-safe, so compiled models get 1."""
    cpu = device.type == "cpu" and torch.get_num_threads() >= 2
    return 2 if cpu and not compiled else 1


@contextmanager
def batch_workers(n: int) -> Iterator[Callable[[Callable, Iterable], Iterable]]:
    """A ``map`` that runs ``n`` calls at a time in threads, each on 1/n of torch's intra-op threads (the builtin
    ``map`` when n == 1). torch's thread count, which other threads of the process also see, is lowered meanwhile
    and restored on exit, also after an error."""
    if n <= 1:
        yield map
        return
    total = torch.get_num_threads()
    share = max(1, total // n)
    torch.set_num_threads(share)  # also the math library's (global) thread count
    try:
        with ThreadPoolExecutor(n, initializer=torch.set_num_threads, initargs=(share,)) as pool:
            yield pool.map
    finally:
        torch.set_num_threads(total)
