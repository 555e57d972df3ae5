"""Build it yourself: the bag of n-grams and its average. Write each function below, then

    python -m shared.check stage1                      # one line per part: passed / not implemented yet / wrong
    python -m stage1_mlp.train --yours --dataset trec  # the real model, trained with your parts

The reference is in data.py and model.py; try without it first. Theory: docs/stage1_mlp.md
(sections named below). Shapes: B batch, T features per text (padded), D embedding size.
"""

from __future__ import annotations

import torch

from shared.tokenizers import PAD_ID, UNK_ID  # noqa: F401  (0: padding, 1: an unknown word)
from stage1_mlp.data import BOUNDARY, ngram_bucket  # noqa: F401  ("<s>", and crc32(" ".join(gram)) % buckets)


def bag_of_ngrams(words: list[str], vocab: dict[str, int], ngrams: int, hash_buckets: int) -> list[int]:
    """The embedding rows of one text                                   (docs: "1. Text as a bag of n-grams")

    words: the text's words, e.g. ["what", "is", "a", "bird"];  vocab: word -> row (an unknown word is UNK_ID)
    1. each word's row, in order
    2. for n = 2 .. ngrams: every n-gram of [BOUNDARY, *words, BOUNDARY], left to right, in the rows after
       the vocabulary: len(vocab) + ngram_bucket(gram, hash_buckets)   (gram: a list of n strings)
    An empty text is [UNK_ID]. Example with ngrams=2: ["a", "b"] -> [row(a), row(b), <s> a, a b, b <s>].
    """
    raise NotImplementedError


def masked_mean(embedded: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The average of a text's feature embeddings, padding left out   (docs: "2. Embeddings and averaging")

    embedded (B, T, D): the embeddings of ids (B, T), where ids == PAD_ID marks padding
    -> (B, D): for each row, the sum of the embeddings at real positions divided by their number
    (a row that is all padding: zeros, not a division by zero).
    """
    raise NotImplementedError
