"""BERT, the encoder of all-MiniLM-L6-v2, readable top to bottom.

token ids -> Embeddings -> L x Layer (SelfAttention, then FeedForward; each a post-LayerNorm residual block, as in the
original BERT) -> hidden states -> pool -> one vector per sentence (SentenceEncoder then L2-normalises it).

Everything here is the plain padded computation. The speed machinery (running on the real tokens only, cheap CPU
dropout masks, int8, worker threads) lives in ``minilm/fast/`` and compiled layers in ``kernels/``; they are applied
to a model from outside, and these modules stay the ones that run: the real-tokens path hands ``BertModel`` a
``Layout`` in place of the padding mask, which only changes how attention sees the tokens. Parameter names are
short; ``weights.py`` maps them to the Hugging Face checkpoint's and reads and writes the config file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class BertConfig:
    vocab_size: int = 30522  # WordPiece vocabulary (uncased BERT)
    hidden_size: int = 384  # H: width of every token vector
    num_hidden_layers: int = 6  # L: encoder layers
    num_attention_heads: int = 12  # nh: heads per layer; head dim hd = H / nh = 32
    intermediate_size: int = 1536  # feed-forward inner width (4H)
    max_position_embeddings: int = 512  # longest sequence the position table covers
    type_vocab_size: int = 2  # segment ids (sentence A / B)
    layer_norm_eps: float = 1e-12  # BERT's LayerNorm epsilon, tiny on purpose
    hidden_dropout_prob: float = 0.1  # dropout after embeddings, attention output and feed-forward
    attention_probs_dropout_prob: float = 0.1  # dropout on the attention probabilities
    hidden_act: str = "gelu"  # exact erf GELU; "gelu_new"/"gelu_pytorch_tanh" select the tanh form
    pad_token_id: int = 0  # id of [PAD]; only used to build padding masks from ids

    def validate(self, where: str = "config") -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"{where}: hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"{where}: hidden_act {self.hidden_act!r} is not one of {sorted(ACTIVATIONS)}")


ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


class Embeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.word = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Ids (B, T) -> (B, T, H): word + position + segment vectors, then LayerNorm.

        Positions default to 0..T-1; callers that lay tokens out differently (minilm.fast.unpadded) pass their own.
        """
        if position_ids is None:
            T = input_ids.shape[-1]
            if self.position.num_embeddings < T:
                raise ValueError(
                    f"input_ids has {T} positions but the model has only "
                    f"{self.position.num_embeddings} position embeddings"
                )
            position_ids = torch.arange(T, device=input_ids.device)  # (T,)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.word(input_ids) + self.token_type(token_type_ids) + self.position(position_ids)  # (B, T, H)
        return self.dropout(self.norm(x))


def additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) 0/1 -> (B, 1, 1, T) additive, broadcast over heads and query positions.

    Padded keys get the dtype's most negative value, as transformers does, so a fully padded row still yields finite
    (uniform) probabilities.
    """
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class Layout(Protocol):
    """Tokens laid out other than as one padded (B, T) grid: minilm.fast.unpadded keeps only the real ones, (N, H).

    Every step but attention handles each token on its own and runs on any layout as it is. Attention needs a
    sequence's tokens side by side, so it asks the layout, which puts q, k, v on padded grids of its choosing, runs
    ``attention.attend`` on them and returns the result (N, H) in its own layout.
    """

    def attend(
        self,
        attention: SelfAttention,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, None]: ...


class SelfAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.n_head = config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.attn_dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.sdpa = True  # False forces the explicit matmul-softmax, the reference the tests compare SDPA against

    def forward(self, x: torch.Tensor, mask: torch.Tensor | Layout | None, output_attentions: bool = False):
        """x (B, T, H) and its additive mask (B, 1, 1, T) or None -> (B, T, H), and the attention probabilities
        (B, nh, T, T) if ``output_attentions`` (else None). Given a ``Layout`` instead, x and the result are in it."""
        q, k, v = self.query(x), self.key(x), self.value(x)  # (B, T, H) each
        if mask is None or isinstance(mask, torch.Tensor):
            y, probs = self.attend(q, k, v, mask, output_attentions)  # (B, T, H)
        else:
            y, probs = mask.attend(self, q, k, v, output_attentions)  # (N, H), as x
        return self.output(x, y), probs

    def attend(self, q, k, v, mask, output_attentions: bool = False):
        """Multi-head scaled dot-product attention on one padded grid: q, k, v (B, T, H) -> (B, T, H), probs.
        ``mask`` is additive (B, 1, 1, T), or None when no key is padding."""
        B, T, H = q.shape
        q, k, v = (t.view(B, T, self.n_head, H // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hd)
        # SDPA can apply dropout itself, but with masks of its own; while dropout is on, the explicit path applies
        # the self.attn_dropout module instead, so swapping that module (minilm.fast) takes effect. On CPU, SDPA
        # with dropout falls back to this same math anyway.
        dropping = self.training and self.attn_dropout.p > 0
        if self.sdpa and not output_attentions and not dropping:
            y, probs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask), None  # (B, nh, T, hd)
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, nh, T, T)
            probs = (scores if mask is None else scores + mask).softmax(dim=-1)
            y = self.attn_dropout(probs) @ v  # (B, nh, T, hd)
        return y.transpose(1, 2).reshape(B, T, H), probs

    def output(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout(self.out(y)))  # post-LayerNorm residual


class FeedForward(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size)
        self.act = ACTIVATIONS[config.hidden_act]
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout(self.down(self.act(self.up(x)))))  # (B, T, H): each token on its own


class Layer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = SelfAttention(config)
        self.ffn = FeedForward(config)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | Layout | None, output_attentions: bool = False):
        x, probs = self.attention(x, mask, output_attentions)  # (B, T, H)
        return self.ffn(x), probs


class BertOutput(NamedTuple):
    """What ``BertModel`` returns when asked for more than the last hidden state (fields as in transformers)."""

    last_hidden_state: torch.Tensor  # (B, T, H)
    hidden_states: tuple[torch.Tensor, ...] | None  # L + 1 of (B, T, H): the embeddings, then each layer's output
    attentions: tuple[torch.Tensor, ...] | None  # L of (B, nh, T, T): softmax probabilities, before dropout


class BertModel(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.num_hidden_layers))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | Layout | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor | BertOutput:
        """Ids and 0/1 mask (B, T) -> the last hidden state (B, T, H), or a BertOutput if either flag is set.

        Hidden states at padded positions are computed but meaningless; ``pool`` ignores them. With a ``Layout``
        in place of the mask, the same layers run on the tokens as it lays them out: minilm.fast.unpadded passes
        the real tokens' ids (N,) and positions and gets (N, H) back.
        """
        x = self.embeddings(input_ids, token_type_ids, position_ids)  # (B, T, H)
        if attention_mask is None or isinstance(attention_mask, torch.Tensor) and attention_mask.all():
            mask = None  # no padding, nothing to mask; SDPA runs a faster kernel without a mask
        elif isinstance(attention_mask, torch.Tensor):
            mask = additive_mask(attention_mask, x.dtype)  # (B, 1, 1, T)
        else:
            mask = attention_mask  # a Layout: it runs attention on its own arrangement of the tokens
        hidden_states, attentions = [x], []
        for layer in self.layers:
            x, probs = layer(x, mask, output_attentions)  # (B, T, H), (B, nh, T, T) or None
            hidden_states.append(x)
            attentions.append(probs)
        if not (output_hidden_states or output_attentions):
            return x
        return BertOutput(
            x, tuple(hidden_states) if output_hidden_states else None, tuple(attentions) if output_attentions else None
        )


# ----------------------------------------------------------------------------------------------- pooling

POOLING_MODES = ("mean", "cls", "max")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Reduce token vectors (B, T, H) to one vector per sequence (B, H), ignoring padding."""
    if mode == "cls":
        return hidden[:, 0]
    keep = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    if mode == "mean":
        # The 1e-9 clamp matches sentence-transformers and keeps an all-padding row at zero instead of NaN.
        return (hidden * keep).sum(1) / keep.sum(1).clamp(min=1e-9)
    if mode == "max":
        # Padding is pushed to the most negative finite value so it never wins; every real sequence has [CLS].
        return hidden.masked_fill(keep == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    raise ValueError(f"unknown pooling mode {mode!r}; expected one of {POOLING_MODES}")
