"""Two-domain data for unsupervised domain adaptation of temporal action localisation.

- :func:`unlabelled` strips every segment from target samples *before* they reach a dataset, so
  target labels cannot reach a loss; the labelled target records are kept only for evaluation.
- :class:`TwoDomainDataset` concatenates a source and a target :class:`DetectionDataset`
  (indices ``[0, n_source)`` source, ``[n_source, n_source + n_target)`` target) and tags every item
  with ``meta["domain"]`` (0 source, 1 target).
- :class:`TwoDomainBatchSampler` yields batches of ``source_batch`` source and ``target_batch``
  target indices (source first). An epoch has ``max(ceil(n_s / b_s), ceil(n_t / b_t))`` batches:
  the larger domain is seen once, the smaller one is drawn from fresh permutations, repeated until
  the epoch ends (the thesis's "smaller domain repeated within an epoch"). Batches are always full:
  a last partial batch is topped up from the next permutation. Draws come from
  ``np.random.default_rng((seed, epoch))``; call ``set_epoch``. After resuming from a checkpoint
  saved mid-epoch, ``skip_batches`` batches already trained on are left out once.
- :func:`collate_two_domain` = :func:`collate_detection` plus ``domain (B,)`` long.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from momentkit.data.datasets import DetectionDataset, collate_detection
from momentkit.data.records import DetectionSample


def unlabelled(samples: Sequence[DetectionSample]) -> list[DetectionSample]:
    """Copies of ``samples`` without any segment (target-domain training records)."""
    return [dataclasses.replace(s, segments=()) for s in samples]


class TwoDomainDataset(Dataset):
    def __init__(self, source: DetectionDataset, target: DetectionDataset) -> None:
        self.source, self.target = source, target

    @property
    def sizes(self) -> tuple[int, int]:
        return len(self.source), len(self.target)

    def set_epoch(self, epoch: int) -> None:
        self.source.set_epoch(epoch)
        self.target.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.source) + len(self.target)

    def __getitem__(self, index: int) -> dict:
        n = len(self.source)
        item = self.source[index] if index < n else self.target[index - n]
        item["meta"] = {**item["meta"], "domain": int(index >= n)}
        return item


class TwoDomainBatchSampler(Sampler[list[int]]):
    def __init__(self, n_source: int, n_target: int, source_batch: int = 2, target_batch: int = 2,
                 seed: int = 0) -> None:
        if n_source < 1 or (target_batch > 0 and n_target < 1) or source_batch < 1 or target_batch < 0:
            raise ValueError("need at least one source video, a source batch >= 1 and a target batch >= 0")
        self.n_source, self.n_target = n_source, n_target
        self.source_batch, self.target_batch = source_batch, target_batch
        self.seed, self.epoch = seed, 0
        self.skip_batches = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = math.ceil(self.n_source / self.source_batch)
        return max(n, math.ceil(self.n_target / self.target_batch)) if self.target_batch else n

    @staticmethod
    def _stream(rng: np.random.Generator, n: int, need: int) -> np.ndarray:
        if need == 0:
            return np.zeros(0, dtype=np.int64)
        reps = math.ceil(need / n)
        return np.concatenate([rng.permutation(n) for _ in range(reps)])[:need]

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        nb = len(self)
        src = self._stream(rng, self.n_source, nb * self.source_batch)
        tgt = self._stream(rng, self.n_target, nb * self.target_batch) + self.n_source
        skip, self.skip_batches = self.skip_batches, 0
        for b in range(skip, nb):
            yield ([int(i) for i in src[b * self.source_batch:(b + 1) * self.source_batch]]
                   + [int(i) for i in tgt[b * self.target_batch:(b + 1) * self.target_batch]])


def collate_two_domain(batch: Sequence[dict], pad_to: int | None = None) -> dict:
    out = collate_detection(batch, pad_to=pad_to)
    out["domain"] = torch.tensor([b["meta"].get("domain", 0) for b in batch], dtype=torch.long)
    return out
