"""Lesson 1, solved: minilm's tokenizer pads; the embedding layer is model.py's Embeddings.forward written out."""

import _minilm
import torch


def pad_batch(token_ids):
    padded = _minilm.tokenizer().pad(token_ids)
    return padded["input_ids"], padded["attention_mask"]


def layer_norm(x, weight, bias, eps):
    mean = x.mean(dim=-1, keepdim=True)
    variance = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(variance + eps) * weight + bias


def embed(input_ids, token_type_ids, word, position, token_type, norm_weight, norm_bias, eps):
    T = input_ids.shape[-1]
    x = word[input_ids] + token_type[token_type_ids] + position[torch.arange(T)]
    return layer_norm(x, norm_weight, norm_bias, eps)
