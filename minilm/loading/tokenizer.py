"""WordPiece tokenisation through the ``tokenizers`` library, padded and truncated the way sentence-transformers does.

The checkpoint's ``tokenizer.json`` may carry its own padding and truncation (all-MiniLM-L6-v2's pads and truncates to
128); those are switched off so that ``max_seq_length`` from ``sentence_bert_config.json`` alone decides truncation and
each batch is padded only to its own longest sequence.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from tokenizers import Tokenizer, normalizers
from tokenizers.implementations import BertWordPieceTokenizer

from minilm.util.checks import check_texts
from minilm.util.io import SMALL_FILE_LIMIT, decode_utf8, read_bytes, read_json, split_lines

# The files that make up a tokenizer; copied verbatim on save so a round trip changes nothing.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


class WordPieceTokenizer:
    def __init__(self, tokenizer: Tokenizer, max_seq_length: int, files: dict[str, bytes] | None = None):
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.files = files or {}
        self.pad_id = tokenizer.token_to_id("[PAD]") or 0

    @property
    def max_seq_length(self) -> int:
        """Tokens per sequence, [CLS] and [SEP] included; longer texts are cut to it silently, as in
        sentence-transformers (``encode_ids(..., truncated=...)`` reports which were)."""
        return self._max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        # Below 2 the tokenizers library ignores the limit altogether: [CLS] and [SEP] alone take two tokens.
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ValueError(f"max_seq_length must be an integer >= 2 ([CLS] and [SEP] take two tokens), got {value!r}")
        self.tokenizer.enable_truncation(max_length=value)
        self._max_seq_length = value

    @classmethod
    def from_dir(cls, directory: Path, max_seq_length: int, do_lower_case: bool = False) -> WordPieceTokenizer:
        # Present means present: a tokenizer file that is a FIFO, a device or a folder is refused by name, not skipped.
        files = {
            name: read_bytes(directory / name, limit=SMALL_FILE_LIMIT)
            for name in TOKENIZER_FILES
            if os.path.lexists(directory / name)
        }
        if "tokenizer.json" in files:
            text = decode_utf8(files["tokenizer.json"], directory / "tokenizer.json")
            try:
                tokenizer = Tokenizer.from_str(text)
            except Exception as e:  # the tokenizers library raises a bare Exception for a malformed file
                raise ValueError(
                    f"{directory / 'tokenizer.json'}: not a readable tokenizer "
                    f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                ) from None
        elif "vocab.txt" in files:
            settings = read_json(directory / "tokenizer_config.json") if "tokenizer_config.json" in files else {}
            lines = split_lines(decode_utf8(files["vocab.txt"], directory / "vocab.txt"))
            tokenizer = BertWordPieceTokenizer(
                # the bytes already read, not the path again; as tokenizers reads a vocab file: ends trimmed, last wins
                {token.rstrip(): i for i, token in enumerate(lines)},
                lowercase=settings.get("do_lower_case", True),
                strip_accents=settings.get("strip_accents"),
                handle_chinese_chars=settings.get("tokenize_chinese_chars", True),
            )._tokenizer
        else:
            raise FileNotFoundError(f"{directory} has neither tokenizer.json nor vocab.txt")
        if do_lower_case:
            # sentence-transformers' do_lower_case: put a Lowercase step in front unless one is already there.
            current = tokenizer.normalizer
            steps = list(current) if isinstance(current, normalizers.Sequence) else [current] if current else []
            if not any(isinstance(step, normalizers.Lowercase) for step in steps):
                tokenizer.normalizer = normalizers.Sequence([normalizers.Lowercase(), *steps])
        return cls(tokenizer, max_seq_length, files)

    def check_ids(self, vocab_size: int, where: Path, config_path: Path) -> None:
        """Every id the tokenizer can emit indexes the model's embedding table: a token id >= ``vocab_size`` (from
        ``config_path``) is refused naming the token, instead of an IndexError in the middle of an encode."""
        vocab = self.tokenizer.get_vocab(with_added_tokens=True)
        token, largest = max(vocab.items(), key=lambda item: item[1], default=("", -1))
        if largest >= vocab_size:
            file = "tokenizer.json" if "tokenizer.json" in self.files else "vocab.txt"
            raise ValueError(
                f"{where / file}: token {token!r} has id {largest}, beyond the vocabulary of {vocab_size} embeddings "
                f"(vocab_size in {config_path})"
            )

    def encode_ids(self, texts: list[str], truncated: list[int] | None = None) -> list[list[int]]:
        """Token ids of each text, with [CLS]/[SEP] and truncated to max_seq_length; no padding. The positions of the
        texts that were cut are appended to ``truncated`` when it is given."""
        check_texts(texts)
        try:
            encodings = self.tokenizer.encode_batch(texts)
        except TypeError:  # the tokenizers library's message for a lone surrogate names neither the text nor why
            for i, text in enumerate(texts):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError as e:
                    raise ValueError(
                        f"texts[{i}] is not valid Unicode text: {e.reason} at character {e.start} ({text[e.start]!r})"
                    ) from None
            raise
        if truncated is not None:
            truncated.extend(i for i, e in enumerate(encodings) if e.overflowing)
        return [e.ids for e in encodings]

    def pad(self, ids: list[list[int]]) -> dict[str, torch.Tensor]:
        """Right-pad to the longest sequence: input_ids, attention_mask, token_type_ids, each (B, T) int64."""
        lengths = torch.tensor([len(x) for x in ids], dtype=torch.long)  # (B,)
        T = int(lengths.max()) if len(ids) else 0
        input_ids = torch.full((len(ids), T), self.pad_id, dtype=torch.long)  # (B, T)
        attention_mask = (torch.arange(T) < lengths[:, None]).long()  # (B, T)
        input_ids[attention_mask.bool()] = torch.tensor([t for x in ids for t in x], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": torch.zeros_like(input_ids)}

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.pad(self.encode_ids(texts))
