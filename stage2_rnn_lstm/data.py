"""Stage 2 data: one long stream of token ids per split, cut into parallel streams for truncated BPTT.

    Tiny Shakespeare, characters: first 90% train / last 10% val (the split stage 5 uses)
    WikiText-2, words: train / valid / test as shipped; each line ends with <eos> (the usual convention)

char-rnn batching: the training stream is cut into `batch_size` equal rows, and batch k is columns
k*T .. (k+1)*T of every row. Row r of batch k+1 continues row r of batch k, so the hidden state
carried from one batch to the next is the state the text really was in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shared.cli import UserError
from shared.course_data import split_train_val_text
from shared.data_registry import read_text
from shared.tokenizers import EOS, Vocab


@dataclass
class TextStreams:
    vocab: Vocab
    splits: dict[str, torch.Tensor]  # split -> (N,) token ids


def word_tokens(text: str) -> list[str]:
    """WikiText is already tokenized: split on spaces, one <eos> per line (as PyTorch's word LM example)."""
    return [token for line in text.splitlines() for token in [*line.split(), EOS]]


def load_streams(dataset: str, vocab_type: str, min_freq: int = 1) -> TextStreams:
    if dataset == "tinyshakespeare":
        train, val = split_train_val_text(read_text("tinyshakespeare"))
        texts = {"train": train, "val": val}
    else:
        texts = {"train": read_text("wikitext2", "train"), "val": read_text("wikitext2", "valid"),
                 "test": read_text("wikitext2", "test")}
    tokenize = list if vocab_type == "char" else word_tokens
    tokens = {split: tokenize(text) for split, text in texts.items()}
    vocab = Vocab.build([tokens["train"]], min_freq=min_freq, level=vocab_type)  # built on train only
    # WikiText marks its own rare words "<unk>": they map onto our <unk> (id 1).
    return TextStreams(vocab, {s: torch.tensor(vocab.encode(t), dtype=torch.long) for s, t in tokens.items()})


def as_streams(ids: torch.Tensor, n_streams: int) -> torch.Tensor:
    """(N,) -> (n_streams, N // n_streams): row r is the r-th consecutive piece of the text."""
    width = len(ids) // n_streams
    if width < 2:
        raise UserError(f"the text has {len(ids)} tokens, too few for {n_streams} streams; lower --batch_size.")
    return ids[: width * n_streams].view(n_streams, width)


class ConsecutiveBatches:
    """Batch i -> (inputs (B, T), targets (B, T), starts_epoch): a pure function of i, for exact resume."""

    def __init__(self, ids: torch.Tensor, batch_size: int, seq_len: int, device: torch.device):
        self.rows = as_streams(ids, batch_size).to(device)  # (B, N/B)
        self.seq_len = seq_len
        self.steps_per_epoch = (self.rows.size(1) - 1) // seq_len
        if self.steps_per_epoch < 1:
            raise UserError(f"--seq_len {seq_len} is longer than each of the {batch_size} streams "
                            f"({self.rows.size(1)} tokens); lower --seq_len or --batch_size.")

    def __call__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        k = i % self.steps_per_epoch
        start = k * self.seq_len
        x = self.rows[:, start:start + self.seq_len]  # (B, T)
        y = self.rows[:, start + 1:start + self.seq_len + 1]  # (B, T): the next token of each
        return x, y, k == 0
