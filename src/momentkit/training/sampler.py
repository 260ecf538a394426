"""A deterministic, resumable, rank-aware sampler.

The order of an epoch depends only on (seed, epoch); each rank takes every ``world_size``-th index
(padded with repeats so ranks get equal counts, as ``DistributedSampler`` does). After resuming
from a checkpoint saved mid-epoch, ``skip`` batches already done are left out, so the resumed run
sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import numpy as np
import torch


class ResumableSampler(torch.utils.data.Sampler[int]):
    """``groups`` (one key per index, e.g. each query's video): shuffled epochs keep the indices of a
    group next to each other (the groups in random order, each group's indices in random order), so
    the samples of one group share batches."""

    def __init__(self, n: int, *, shuffle: bool, seed: int, batch_size: int, dataset=None,
                 groups=None) -> None:
        self.n = n
        self.groups = None
        if groups is not None:
            members: dict = {}
            for i, key in enumerate(groups):
                members.setdefault(key, []).append(i)
            self.groups = [np.asarray(v, dtype=np.int64) for v in members.values()]
        self.dataset = dataset  # told the epoch too, for its own per-epoch random draws
        self.shuffle = shuffle
        self.seed = seed
        self.batch_size = batch_size
        self.epoch = 0
        self.skip_batches = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    @staticmethod
    def _rank_world() -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def _indices(self) -> np.ndarray:
        rank, world = self._rank_world()
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.shuffle and self.groups is not None:
            order = np.concatenate([rng.permutation(self.groups[g]) for g in rng.permutation(len(self.groups))])
        else:
            order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        per_rank = -(-self.n // world)
        order = np.resize(order, per_rank * world)  # pad with repeats
        return order[rank::world]

    def __iter__(self):
        idx = self._indices()[self.skip_batches * self.batch_size:]
        self.skip_batches = 0
        return iter(idx.tolist())

    def __len__(self) -> int:
        _, world = self._rank_world()
        return -(-self.n // world)


def batches_done(resume_from: tuple[int, int], per_epoch: int) -> int:
    """Batches of the current epoch already trained on when a checkpoint was saved mid-epoch:
    ``resume_from`` is the checkpoint's ``(global_step, epoch)``, ``per_epoch`` the batches of an epoch."""
    step, epoch = resume_from
    return max(0, step - epoch * per_epoch) % max(1, per_epoch)
