"""The checks of stage 1's build-it-yourself parts (yours.py), run by `python -m shared.check stage1`.

The n-gram lookup is compared with the reference on real questions; the masked mean on random
embeddings of a padded batch (values, that padding changes nothing, and gradients), and against
F.embedding_bag(mode="mean"), the fused op the fast path uses. `train --yours` builds the featurizer
and the model with your parts (model.Parts), on the settings below.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from shared.check import Part, Wrong, same, same_grads, seeded
from shared.tokenizers import PAD_ID, word_tokenize
from stage1_mlp import data as reference_data
from stage1_mlp import model as reference_model

QUESTIONS = ["What is the capital of France ?", "How many legs does a spider have ?", "Who wrote Hamlet ?", ""]


def check_bag_of_ngrams(yours) -> None:
    vocab = {"<pad>": 0, "<unk>": 1, "what": 2, "is": 3, "the": 4, "of": 5, "?": 6, "how": 7, "a": 8}
    for ngrams in (1, 2, 3):
        for question in QUESTIONS:
            words = word_tokenize(question)
            expected = reference_data.bag_of_ngrams(words, vocab, ngrams, 1000)
            got = yours(words, vocab, ngrams, 1000)
            if list(got) != expected:
                first = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(got), len(expected)))
                raise Wrong(f"{question!r} with ngrams={ngrams}: expected {len(expected)} rows {expected}, got "
                            f"{len(got)} rows {list(got)}; the first difference is at position {first}")


def check_masked_mean(yours) -> None:
    seeded(0)
    ids = torch.tensor([[5, 6, 7, 8], [9, 4, PAD_ID, PAD_ID], [PAD_ID, PAD_ID, PAD_ID, PAD_ID]])  # (B, T)
    table = torch.randn(10, 3, requires_grad=True)
    embedded = table[ids]  # (B, T, D): the padding rows are not zero here, so they must be masked
    got = yours(embedded, ids)
    same("the means", reference_model.masked_mean(embedded, ids), got)
    same("the means, against F.embedding_bag(mode='mean')",
         F.embedding_bag(ids[:2], table, mode="mean", padding_idx=PAD_ID), got[:2])
    changed = embedded.detach().clone()
    changed[1, 2:] = 100.0
    same("the mean of row 1 when only its padding changes", got[1], yours(changed, ids)[1])
    grad = torch.randn(3, 3)
    same_grads("backward", torch.autograd.grad(reference_model.masked_mean(embedded, ids), [table], grad,
                                               retain_graph=True),
               torch.autograd.grad(got, [table], grad, allow_unused=True), ["the embedding table"])


PARTS = [
    Part("bag_of_ngrams", check_bag_of_ngrams,
         "marked = [BOUNDARY, *words, BOUNDARY]; for n in range(2, ngrams + 1): the grams marked[i:i + n] for i "
         "in range(len(marked) - n + 1)"),
    Part("masked_mean", check_masked_mean,
         "mask = (ids != PAD_ID).unsqueeze(-1); (embedded * mask).sum(1) / mask.sum(1).clamp(min=1)"),
]


# The settings --yours trains with: the written-out average, which calls your masked_mean, instead of
# the fused F.embedding_bag.
YOURS_SETTINGS = {"embedding_bag": False}
