"""Encode batches in flight side by side on CPU, each on its share of torch's threads.

An encode batch of 32 short sentences is too small a GEMM to keep two cores busy together, so two batches run at
once, one core each (benchmarks/README.md). The embeddings are the same as one batch at a time; only the matmul
thread count differs. Used by ``SentenceEncoder.encode(workers=...)``.

The worker threads live as long as the process (one idle pool per thread layout, rebuilt after a fork): memory that
exited threads leave behind (per-thread allocator arenas and math-library buffers) made the resident size of a long
run of encode calls, such as ``minilm encode`` on a large corpus, grow with every call.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager

import torch

_POOLS: dict[tuple[int, int], tuple[int, ThreadPoolExecutor]] = {}  # (workers, threads each) -> (pid, pool)
_POOLS_LOCK = threading.Lock()


def default_workers(device: torch.device, compiled: bool) -> int:
    """2 on a CPU with 2+ torch threads, else 1; torch.compile'd code is not thread-safe, so compiled models get 1."""
    cpu = device.type == "cpu" and torch.get_num_threads() >= 2
    return 2 if cpu and not compiled else 1


def _pool(n: int, share: int) -> ThreadPoolExecutor:
    """The process's pool of ``n`` threads, each set to ``share`` torch threads."""
    with _POOLS_LOCK:
        pid, pool = _POOLS.get((n, share), (None, None))
        if pool is None or pid != os.getpid():  # a forked child has the pool object but not its threads
            pool = ThreadPoolExecutor(
                n, initializer=torch.set_num_threads, initargs=(share,), thread_name_prefix="minilm-encode"
            )
            _POOLS[(n, share)] = (os.getpid(), pool)
        return pool


@contextmanager
def batch_workers(n: int) -> Iterator[Callable[[Callable, Iterable], Iterable]]:
    """A ``map`` that runs ``n`` calls at a time in threads, each on 1/n of torch's intra-op threads (the builtin
    ``map`` when n == 1). torch's thread count, which other threads of the process also see, is lowered meanwhile
    and restored on exit, also after an error; calls not started by then are cancelled, running ones waited for."""
    if n <= 1:
        yield map
        return
    total = torch.get_num_threads()
    share = max(1, total // n)
    pool = _pool(n, share)
    futures: list[Future] = []

    def run(fn: Callable, items: Iterable) -> Iterator:
        submitted = [pool.submit(fn, item) for item in items]
        futures.extend(submitted)
        return (future.result() for future in submitted)

    torch.set_num_threads(share)  # also the math library's (global) thread count
    try:
        yield run
    finally:
        for future in futures:
            future.cancel()
        wait(futures)
        torch.set_num_threads(total)
