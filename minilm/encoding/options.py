"""sentence-transformers' ``encode`` arguments and what it returns, for ``SentenceEncoder.encode``: the prompt an
encode call uses, the order truncate_dim -> normalise -> quantise, the return types, and minilm's former keyword
names (deprecated)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from minilm.encoding.quantization import quantize_embeddings
from minilm.util.checks import check_texts

OUTPUT_VALUES = ("sentence_embedding", "token_embeddings")
UNSET = object()  # a deprecated keyword that was not passed


def check_output_value(value) -> str:
    if value not in OUTPUT_VALUES:
        raise ValueError(f"output_value must be one of {OUTPUT_VALUES}, got {value!r}")
    return value


def check_truncate_dim(value) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"truncate_dim must be a positive integer or None, got {value!r}")
    return value


def as_text_list(inputs) -> list[str]:
    """One string, or a list / tuple / numpy array / other iterable of strings, as a list of strings."""
    if isinstance(inputs, str):
        return [inputs]
    if isinstance(inputs, np.ndarray):
        inputs = inputs.tolist()
    elif inputs is None or isinstance(inputs, (bytes, dict)) or not isinstance(inputs, Iterable):
        raise TypeError(f"inputs must be a string or a list of strings, got {type(inputs).__name__}")
    texts = inputs if isinstance(inputs, list) else list(inputs)
    check_texts(texts, "inputs")
    return texts


def resolve_prompt(
    prompts: dict[str, str], default_prompt_name: str | None, prompt: str | None, prompt_name: str | None
) -> str | None:
    """The prompt text an encode call uses: ``prompt``, else ``prompts[prompt_name]``, else the default prompt's."""
    if prompt is not None:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
        if prompt_name is not None:
            warnings.warn("encode: both prompt and prompt_name given; prompt_name is ignored", stacklevel=3)
        return prompt
    if prompt_name is not None:
        if prompt_name not in prompts:
            raise ValueError(f"prompt_name {prompt_name!r} is not one of the model's prompts {sorted(prompts)}")
        return prompts[prompt_name]
    if default_prompt_name is not None:
        return prompts.get(default_prompt_name)
    return None


def finish_sentences(
    emb: torch.Tensor,
    truncate_dim: int | None,
    normalize_embeddings: bool,
    precision: str,
    convert_to_numpy: bool,
    convert_to_tensor: bool,
    single: bool,
):
    """Pooled embeddings (N, H) -> what sentence-transformers' encode returns for the same options."""
    if truncate_dim is not None:
        emb = emb[:, :truncate_dim]
    if normalize_embeddings:
        emb = F.normalize(emb, p=2, dim=1)
    out = emb if precision == "float32" else quantize_embeddings(emb, precision)  # numpy codes from here
    if convert_to_tensor:
        out = torch.as_tensor(out)
    elif convert_to_numpy:
        out = out.cpu().numpy() if isinstance(out, torch.Tensor) else out
    else:  # a list of row tensors
        out = list(torch.from_numpy(out) if isinstance(out, np.ndarray) else out)
    return out[0] if single else out


def finish_tokens(tokens: list[torch.Tensor], precision: str, single: bool):
    """Per-input token embeddings (T_i, H) -> sentence-transformers' return: the list (numpy codes if quantised, one
    calibration over all tokens)."""
    out = quantize_embeddings(tokens, precision) if precision != "float32" and tokens else tokens
    return out[0] if single else out


def deprecated_names(
    inputs, sentences, normalize, convert_to, normalize_embeddings, convert_to_numpy, convert_to_tensor
):
    """Map minilm's former encode keywords to sentence-transformers' (a FutureWarning each) and settle which output
    the flags ask for. ``normalize=False`` keeps its old meaning, skipping the checkpoint's Normalize module, which
    has no sentence-transformers name. Returns (inputs, normalize_embeddings, convert_to_numpy, convert_to_tensor,
    skip_normalize)."""
    skip_normalize = False
    if sentences is not UNSET:
        warnings.warn(
            "encode(sentences=...) is deprecated; pass the texts first or as inputs=", FutureWarning, stacklevel=3
        )
        if inputs is not None:
            raise TypeError("encode: got both inputs and sentences")
        inputs = sentences
    if inputs is None:
        raise TypeError("encode: inputs (a string or a list of strings) is required")
    if normalize is not UNSET:
        warnings.warn(
            "encode(normalize=...) is deprecated: use normalize_embeddings=True; to drop the checkpoint's "
            "Normalize module, set model.normalize = False",
            FutureWarning,
            stacklevel=3,
        )
        if normalize is True:
            normalize_embeddings = True
        elif normalize is False:
            skip_normalize = True
        elif normalize is not None:
            raise ValueError(f"normalize must be True, False or None, got {normalize!r}")
    if convert_to is not UNSET:
        warnings.warn(
            "encode(convert_to=...) is deprecated: use convert_to_tensor=True (or convert_to_numpy=True, the default)",
            FutureWarning,
            stacklevel=3,
        )
        if convert_to not in ("numpy", "torch"):
            raise ValueError(f"convert_to must be 'numpy' or 'torch', got {convert_to!r}")
        convert_to_numpy, convert_to_tensor = convert_to == "numpy", convert_to == "torch"
    if convert_to_tensor:
        convert_to_numpy = False
    return inputs, normalize_embeddings, convert_to_numpy, convert_to_tensor, skip_normalize
