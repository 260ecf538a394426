"""Data module for grounding experiments: annotation files + feature stores -> batches."""

from __future__ import annotations

from functools import cached_property

import lightning as L
import torch

from momentkit.errors import InputError
from momentkit.training.config import DataConfig
from momentkit.training.sampler import ResumableSampler


class GroundingDataModule(L.LightningDataModule):
    def __init__(self, cfg: DataConfig, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.seed = seed
        self.samplers: dict[str, ResumableSampler] = {}
        self.resume_from: tuple[int, int] | None = None  # (global_step, epoch) of a restored checkpoint

    # stores are opened once and shared by every split
    @cached_property
    def video_store(self):
        from momentkit.data.features import open_store

        if not self.cfg.video_features:
            raise InputError("no video features configured", field="data.video_features")
        paths = self.cfg.video_features
        return open_store(paths if len(paths) > 1 else paths[0], kind="video")

    @cached_property
    def text_store(self):
        from momentkit.data.features import open_store

        if self.cfg.text_features is None:
            raise InputError("no text features configured", field="data.text_features")
        return open_store(self.cfg.text_features, kind="text")

    def samples(self, split: str):
        from momentkit.data.annotations import read_annotations

        path = getattr(self.cfg, split)
        if path is None:
            raise InputError(f"no annotation file for split '{split}'", field=f"data.{split}")
        return _cached_read(str(path), self.cfg.format)

    def dataset(self, split: str):
        from momentkit.data.datasets import GroundingDataset

        return GroundingDataset(
            self.samples(split), self.video_store, self.text_store, clip_len=self.cfg.clip_len,
            max_v_len=self.cfg.max_v_len, max_q_len=self.cfg.max_q_len, use_tef=self.cfg.use_tef,
            layer=self.cfg.layer,
        )

    def input_dims(self) -> tuple[int, int]:
        """(video width including TEF, text width), as the model's input projections need."""
        item = self.dataset("train" if self.cfg.train else "val")[0]
        return int(item["video_feats"].shape[-1]), int(item["text_feats"].shape[-1])

    def _loader(self, split: str, train: bool) -> torch.utils.data.DataLoader:
        from momentkit.data.datasets import collate_grounding

        ds = self.dataset(split)
        bs = self.cfg.batch_size if train else self.cfg.eval_batch_size
        sampler = ResumableSampler(len(ds), shuffle=train, seed=self.seed, batch_size=bs, dataset=ds)
        if train and self.resume_from is not None:
            # a checkpoint saved mid-epoch: leave out the batches of this epoch already trained on
            step, epoch = self.resume_from
            per_epoch = len(sampler) // bs + (len(sampler) % bs > 0)
            sampler.skip_batches = max(0, step - epoch * per_epoch) % per_epoch
            self.resume_from = None
        self.samplers[split] = sampler
        return torch.utils.data.DataLoader(
            ds, batch_size=bs, sampler=sampler, collate_fn=collate_grounding,
            num_workers=self.cfg.num_workers,
        )

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return self._loader(getattr(self, "test_split", "test"), False)


_READ_CACHE: dict = {}


def _cached_read(path: str, fmt: str | None):
    from momentkit.data.annotations import read_annotations

    key = (path, fmt)
    if key not in _READ_CACHE:
        _READ_CACHE[key] = read_annotations(path, format=fmt)
    return _READ_CACHE[key]
