"""Cut an encode batch into forwards whose activations stay in the CPU's cache.

A batch of 32 paragraphs of 256 tokens is an (8192, 1536) feed-forward activation, 50 MB: every elementwise op
after a matmul streams it from memory, and the matmuls themselves run ~20 % below their rate at 1-2 k rows
(benchmarks/README.md). Encoding that batch as four forwards of 2048 tokens is ~15 % faster on one core and gives
the same embeddings (each sequence's computation does not depend on its batch mates). Short-sentence batches are
already below the budget and run whole. A CPU technique: a GPU wants the largest batch it can hold.
"""

from __future__ import annotations

import torch

# Padded grid tokens per forward on the CPU. 1-2 k rows keep a worker's feed-forward activation (12 MB at 2048)
# within the shared cache next to the other worker's; measured in benchmarks/README.md.
CPU_FORWARD_TOKENS = 2048


def forward_slices(lengths: list[int], device: torch.device) -> list[slice]:
    """Consecutive slices of a batch whose ``lengths`` are sorted longest first, each padding to at most
    CPU_FORWARD_TOKENS grid tokens (a sequence longer than that runs alone). One slice off the CPU."""
    if device.type != "cpu" or not lengths:
        return [slice(0, len(lengths))]
    slices, start = [], 0
    for end in range(1, len(lengths) + 1):
        # The slice [start, end) pads to its first (longest) sequence; stop before it outgrows the budget.
        if end - start > 1 and (end - start) * lengths[start] > CPU_FORWARD_TOKENS:
            slices.append(slice(start, end - 1))
            start = end - 1
    slices.append(slice(start, len(lengths)))
    return slices
