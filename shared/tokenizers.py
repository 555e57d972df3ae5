"""Tokenizers: character and word vocabularies built from data (stage 5's BPE is in stage5_gpt/bpe.py).

A `Vocab` maps tokens to ids. Ids 0-3 are always the special tokens, so every stage can rely on
`PAD_ID == 0` (padding), `UNK_ID == 1` (unknown), `BOS_ID == 2` and `EOS_ID == 3` (sequence ends).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from shared.cli import UserError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = [PAD, UNK, BOS, EOS]
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)

_WORD_RE = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


def word_tokenize(text: str, lower: bool = True) -> list[str]:
    """Words and punctuation: "Don't panic!" -> ["don't", "panic", "!"]."""
    return _WORD_RE.findall(text.lower() if lower else text)


def char_tokenize(text: str) -> list[str]:
    return list(text)


class Vocab:
    """A token <-> id table with the four special tokens first."""

    def __init__(self, tokens: Sequence[str], level: str = "word"):
        if list(tokens[:4]) != SPECIALS:
            tokens = SPECIALS + [t for t in tokens if t not in SPECIALS]
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.level = level

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None,
              level: str = "word") -> Vocab:
        """Keep tokens seen at least `min_freq` times, most frequent first (ties alphabetical)."""
        counts = Counter(t for tokens in token_lists for t in tokens)
        kept = sorted((t for t, c in counts.items() if c >= min_freq and t not in SPECIALS),
                      key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max(0, max_size - len(SPECIALS))]
        return cls(SPECIALS + kept, level)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Sequence[str], strict: bool = False) -> list[int]:
        """Token ids; unknown tokens become <unk>, or raise a UserError when `strict`."""
        if strict:
            missing = sorted({t for t in tokens if t not in self.stoi})
            if missing:
                shown = ", ".join(repr(t) for t in missing[:10])
                raise UserError(f"{len(missing)} {self.level}(s) are not in the vocabulary: {shown}; "
                                f"use only {self.level}s that occur in the training text.")
        return [self.stoi.get(t, UNK_ID) for t in tokens]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> list[str]:
        """Tokens for ids; <pad>, <bos> and <eos> are dropped unless skip_special=False (<unk> stays)."""
        return [self.itos[i] for i in ids if not (skip_special and i in (PAD_ID, BOS_ID, EOS_ID))]

    def to_json(self) -> dict:
        return {"level": self.level, "itos": self.itos}

    @classmethod
    def from_json(cls, data: dict) -> Vocab:
        return cls(data["itos"], data.get("level", "word"))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as err:
            raise UserError(f"cannot read vocabulary {path} ({err}); retrain to write it again.") from None


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = PAD_ID, min_len: int = 1):
    """Right-pad id lists into a (B, T) LongTensor, T = the longest sequence (at least `min_len`)."""
    import torch

    width = max(min_len, max((len(s) for s in sequences), default=0))
    out = torch.full((len(sequences), width), pad_id, dtype=torch.long)  # (B, T)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return out
