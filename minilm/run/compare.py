"""``minilm compare``: the same sentences through minilm and through sentence-transformers, on the same model folder,
and how far apart the two are: max |difference|, the cosine between the two embeddings of each line, top-k neighbour
agreement, and, given a scored pair file, both Spearman correlations.

sentence-transformers is an optional extra (``pip install 'minilm[compare]'``); this is the one module of minilm that
imports it, and only when the command runs.
"""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from minilm.corpus.encode import check_input_file, read_text_lines
from minilm.data.readers import read_roles, read_sts
from minilm.encoder import SentenceEncoder
from minilm.evaluation.evaluators import default_roles
from minilm.evaluation.metrics import evaluate_similarity
from minilm.loading.hub import resolve_model_dir
from minilm.util.extras import MissingExtra

NEIGHBOURS = 10
BLOCK_ROWS = 1024  # rows of the similarity matrix held at once


def load_sentence_transformer(directory: Path, device: torch.device | str = "cpu"):
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:  # main() prints it as one line, exit status 2
        raise MissingExtra(
            "minilm compare needs sentence-transformers, which is not installed: pip install 'minilm[compare]'"
        ) from None
    return SentenceTransformer(str(directory), device=str(device))


@dataclass
class Comparison:
    lines: int
    unique_lines: int
    max_abs_difference: float
    cosine_min: float
    cosine_mean: float
    neighbour_agreement: float  # mean share of each unique line's top-k neighbours the two models agree on
    identical_neighbourhoods: int  # unique lines whose top-k sets are the same
    k: int
    spearman: tuple[float, float, int] | None = None  # (minilm, sentence-transformers, pairs)


def top_k_neighbours(emb: torch.Tensor, k: int) -> torch.Tensor:
    """(N, k) indices of each row's k most cosine-similar other rows, computed BLOCK_ROWS rows at a time."""
    unit = torch.nn.functional.normalize(emb.double(), dim=1)  # (N, D)
    out = []
    for start in range(0, unit.shape[0], BLOCK_ROWS):
        sim = unit[start : start + BLOCK_ROWS] @ unit.T  # (b, N)
        rows = torch.arange(sim.shape[0])
        sim[rows, rows + start] = -torch.inf  # a line is not its own neighbour
        out.append(sim.topk(k, dim=1).indices)
    return torch.cat(out)


def compare_embeddings(ours: np.ndarray, theirs: np.ndarray, texts: list[str], k: int = NEIGHBOURS) -> Comparison:
    """How far apart two (N, D) embeddings of the same ``texts`` are; neighbours among the unique texts."""
    if ours.shape != theirs.shape:
        raise ValueError(
            f"the two embeddings differ in shape: minilm {ours.shape}, sentence-transformers {theirs.shape}"
        )
    a, b = torch.from_numpy(ours).double(), torch.from_numpy(theirs).double()
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=1)  # (N,)
    first = list({text: i for i, text in reversed(list(enumerate(texts)))}.values())[::-1]  # first row of each text
    k = min(k, len(first) - 1)
    agreement, identical = float("nan"), 0
    if k > 0:
        na, nb = top_k_neighbours(a[first], k), top_k_neighbours(b[first], k)
        shared = [len(set(x) & set(y)) for x, y in zip(na.tolist(), nb.tolist())]
        agreement, identical = sum(shared) / (k * len(shared)), sum(s == k for s in shared)
    return Comparison(
        len(texts),
        len(first),
        float((a - b).abs().max()) if a.numel() else 0.0,
        float(cosine.min()),
        float(cosine.mean()),
        agreement,
        identical,
        k,
    )


def read_sentences(path: str, fmt: str) -> list[str]:
    if fmt == "sts":
        s1, s2, _ = read_sts(path)
        return s1 + s2
    check_input_file(Path(path))  # a folder is said to be one, not "does not exist"
    return read_text_lines(Path(path))


def run_compare(
    model: str,
    sentences: list[str],
    pairs: str | None = None,
    pairs_format: str = "auto",
    batch_size: int = 32,
    quantized_model: bool = False,
    device: torch.device | str = "cpu",
) -> Comparison:
    """Encode ``sentences`` (and the scored ``pairs``, a file ``minilm eval --task similarity`` reads) with both, each
    on ``device``."""
    if not sentences:
        raise ValueError("no sentences to compare")
    scored = read_roles(pairs, pairs_format, default_roles("similarity"), "scores") if pairs else None
    directory = resolve_model_dir(model)  # both read the same files, whether a path, a hub id or the packaged copy
    theirs_model = load_sentence_transformer(directory, device)
    minilm_model = SentenceEncoder.from_pretrained(directory, device=device)
    ours_model = types.SimpleNamespace(encode=functools.partial(minilm_model.encode, quantized_model=quantized_model))
    ours = ours_model.encode(sentences, batch_size=batch_size)
    theirs = theirs_model.encode(sentences, batch_size=batch_size, convert_to_numpy=True)
    result = compare_embeddings(ours, np.asarray(theirs, dtype=np.float32), sentences)
    if scored is not None:
        mine = evaluate_similarity(ours_model, *scored, batch_size=batch_size)["spearman"]
        reference = evaluate_similarity(theirs_model, *scored, batch_size=batch_size)["spearman"]
        result.spearman = (mine, reference, len(scored[2]))
    return result


def report(result: Comparison, model: str, tolerance: float) -> str:
    rows = [
        ("model", model),
        ("lines", f"{result.lines} ({result.unique_lines} unique)"),
        ("max |difference|", f"{result.max_abs_difference:.3e}  (tolerance {tolerance:.1e})"),
        ("cosine(minilm, ST) of each line", f"min {result.cosine_min:.8f}  mean {result.cosine_mean:.8f}"),
    ]
    if result.k > 0:
        rows.append(
            (
                f"top-{result.k} neighbour agreement",
                f"{100 * result.neighbour_agreement:.2f} % "
                f"({result.identical_neighbourhoods} of {result.unique_lines} unique lines with the same "
                f"{result.k})",
            )
        )
    if result.spearman is not None:
        mine, reference, pairs = result.spearman
        rows.append(
            (
                f"Spearman, {pairs} scored pairs",
                f"minilm {mine:.6f}  sentence-transformers {reference:.6f}  |difference| {abs(mine - reference):.1e}",
            )
        )
    rows.append(("result", "within tolerance" if result.max_abs_difference <= tolerance else "BEYOND TOLERANCE"))
    width = max(len(label) for label, _ in rows) + 2
    return "\n".join(label.ljust(width) + value for label, value in rows)
