"""Mini-batches that a resumed run can reproduce exactly: which items batch i holds depends on i alone.

A run interrupted at step 1,200 and resumed must train on the same batches as one that never
stopped. So nothing here keeps a position: `EpochBatches(n, batch_size, seed).indices(i)` is computed
from the seed and the batch index alone. Stage 1 and stage 6 batch their texts with it, and the
classifiers of stages 2 and 4 (shared/classify.py) and the translators of stages 3 and 4
(shared/translation.py) wrap it. The language models batch their text their own way, in their
data.py: stage 2 in consecutive chunks (for backpropagation through time), stage 5 in random windows.
"""

from __future__ import annotations

import math

import torch

from shared.cli import UserError


class EpochBatches:
    """Shuffled mini-batches as a pure function of the batch index, so a resumed run sees the same data.

    Batch i belongs to epoch i // steps_per_epoch; each epoch has its own permutation, drawn from a
    generator seeded with (seed, epoch). The last, smaller batch of an epoch is kept.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int):
        if n_items < 1:
            raise UserError("the training split is empty; check the data set and its filters.")
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.steps_per_epoch = math.ceil(n_items / batch_size)
        self._epoch, self._perm = -1, None

    def indices(self, i: int) -> torch.Tensor:
        epoch, k = divmod(i, self.steps_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n_items, generator=generator)
        return self._perm[k * self.batch_size:(k + 1) * self.batch_size]
