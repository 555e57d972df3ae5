"""Stage 1 model: average the embeddings of a text's n-grams, then classify with an MLP.

    ids (B, T) --embed--> (B, T, D) --masked mean over T--> (B, D) --MLP--> logits (B, classes)

The teaching path writes the masked mean out; the fast path (`embedding_bag=True`) computes the
same average with the fused `F.embedding_bag`, which never materialises the (B, T, D) tensor.
With `sparse=True` the embedding's gradient only holds the rows a batch used, so an optimizer that
accepts sparse gradients (Adagrad) updates the few hundred rows a batch uses instead of all of them.
Token dropout (as in Deep Averaging Networks, Iyyer et al. 2015) hides random n-grams during
training, so the model cannot lean on any single one.

`Parts` holds the two functions a learner writes in yours.py (`python -m shared.check stage1`):
the model and the featurizer are built with them, the reference by default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from shared.tokenizers import PAD_ID
from stage1_mlp import data


def masked_mean(embedded: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The mean over T of embedded (B, T, D), counting only positions where ids (B, T) is not padding
    -> (B, D); a row that is all padding gives zeros."""
    mask = (ids != PAD_ID).unsqueeze(-1).to(embedded.dtype)  # (B, T, 1)
    summed = (embedded * mask).sum(dim=1)  # (B, D)
    return summed / mask.sum(dim=1).clamp(min=1)  # (B, D)


@dataclass(frozen=True)
class Parts:
    """The functions the model is built from: `Parts()` is the reference, `Parts(**yours)` puts the
    learner's (from yours.py, through --yours) on top. The featurizer turns texts into rows with
    bag_of_ngrams; the teaching path of the model averages them with masked_mean."""

    bag_of_ngrams: Callable[..., list[int]] = data.bag_of_ngrams
    masked_mean: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = masked_mean


class BagOfNgramsMLP(nn.Module):
    def __init__(self, num_embeddings: int, num_classes: int, embed_dim: int = 64, hidden_dim: int = 128,
                 num_layers: int = 1, dropout: float = 0.3, token_dropout: float = 0.0,
                 embedding_bag: bool = True, sparse: bool = False, parts: Parts | None = None):
        super().__init__()
        self.parts = parts or Parts()
        self.embedding = nn.Embedding(num_embeddings, embed_dim, padding_idx=PAD_ID, sparse=sparse)
        self.embedding_bag = embedding_bag
        self.token_dropout = token_dropout
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        width = embed_dim
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_dim), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden_dim
        layers.append(nn.Linear(width, num_classes))
        self.mlp = nn.Sequential(*layers)
        nn.init.normal_(self.embedding.weight, std=0.1)
        with torch.no_grad():
            self.embedding.weight[PAD_ID].zero_()

    def pool(self, ids: torch.Tensor) -> torch.Tensor:
        """Mean of the non-padding embeddings of each row of ids (B, T) -> (B, D)."""
        if self.embedding_bag:
            return F.embedding_bag(ids, self.embedding.weight, mode="mean", padding_idx=PAD_ID,
                                   sparse=self.embedding.sparse)  # (B, D)
        return self.parts.masked_mean(self.embedding(ids), ids)  # (B, D)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.training and self.token_dropout > 0:
            dropped = torch.rand(ids.shape, device=ids.device) < self.token_dropout  # (B, T)
            ids = ids.masked_fill(dropped, PAD_ID)
        return self.mlp(self.pool(ids))  # (B, num_classes)
