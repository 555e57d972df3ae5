"""A task's texts as token ids, encoded with the GPT's own tokenizer.

    sms_spam   the shared balanced split (1,045 / 149 / 300 messages), as in LLMs-from-scratch ch. 6
    sst2       SST-2's 67k training phrases (5% held out for validation, the split stage 1 uses with its
               default seed) and GLUE's dev set (872 sentences) as the test set

Every text is cut to `max_length` tokens (by default the longest training text, itself cut to the
model's context) and right-padded to that length. The classifier reads each text at its last real
token, so what the padding holds never matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shared.batching import EpochBatches
from shared.classification_data import load_classification
from shared.course_data import LabeledTexts
from stage5_gpt.data import Tokenizer


@dataclass
class EncodedSplit:
    ids: torch.Tensor  # (N, max_length), right-padded
    lengths: torch.Tensor  # (N,) real tokens per message, >= 1
    labels: torch.Tensor  # (N,)
    texts: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def sample(self, n: int, seed: int = 0) -> EncodedSplit:
        """At most n texts, drawn once with a fixed seed (SST-2's 64k train phrases are scored on 4,000)."""
        if len(self) <= n:
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        return EncodedSplit(self.ids[idx], self.lengths[idx], self.labels[idx], [self.texts[i] for i in idx])


def pad_id(tokenizer: Tokenizer) -> int:
    """<|endoftext|>, as GPT-2 users pad (ours too, for a learned BPE); <pad> for characters."""
    return tokenizer.eot if tokenizer.eot is not None else 0


def encode_split(split: LabeledTexts, tokenizer: Tokenizer, max_length: int) -> EncodedSplit:
    ids = torch.full((len(split), max_length), pad_id(tokenizer), dtype=torch.long)  # (N, T)
    lengths = torch.empty(len(split), dtype=torch.long)
    for row, text in enumerate(split.texts):
        tokens = tokenizer.encode(text)[:max_length] or [pad_id(tokenizer)]  # an empty message: one pad token
        ids[row, :len(tokens)] = torch.tensor(tokens)
        lengths[row] = len(tokens)
    return EncodedSplit(ids, lengths, torch.tensor(split.labels), list(split.texts))


def longest_message(texts: list[str], tokenizer: Tokenizer) -> int:
    return max(len(tokenizer.encode(t)) for t in texts)


def load_encoded(tokenizer: Tokenizer, context: int, max_length: int = 0, task: str = "sms_spam",
                 text_column: str = "text", label_column: str = "label",
                 ) -> tuple[dict[str, EncodedSplit], list[str], int]:
    """({train, val, test}: EncodedSplit, label names, max_length used)."""
    splits = load_classification(task, text_column=text_column, label_column=label_column)
    if not max_length:
        max_length = longest_message(splits["train"].texts, tokenizer)
    max_length = min(max_length, context)
    encoded = {name: encode_split(split, tokenizer, max_length) for name, split in splits.items()}
    return encoded, splits["train"].label_names, max_length


class ShuffledBatches:
    """Batch i of the training split, shuffled per epoch (a pure function of i: exact resume)."""

    def __init__(self, split: EncodedSplit, batch_size: int, seed: int, device: torch.device):
        self.split, self.device = split, device
        self.order = EpochBatches(len(split), batch_size, seed)
        self.steps_per_epoch = self.order.steps_per_epoch

    def __call__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = self.order.indices(i)
        s = self.split
        lengths = s.lengths[idx]
        # Columns past this batch's longest message are padding in every row: dropping them changes
        # no prediction (causal attention) and saves the compute.
        ids = s.ids[idx, :int(lengths.max())]  # (B, T)
        return ids.to(self.device), lengths.to(self.device), s.labels[idx].to(self.device)
