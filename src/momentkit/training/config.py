"""The experiment config: what ``momentkit train CONFIG`` reads.

A YAML file with four sections (``data``, ``model``, ``train``, ``eval``); see ``configs/`` for
complete examples. Relative paths are resolved against the working directory, except that
``${here}`` expands to the folder of the config file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from momentkit.config import apply_overrides, from_dict, load_yaml, to_dict
from momentkit.errors import InputError


@dataclass
class DataConfig:
    train: str | None = None  # annotation file of each split
    val: str | None = None
    test: str | None = None
    format: str | None = None  # annotation format; None = detect from the file
    video_features: list[str] = field(default_factory=list)  # folders or packed stores, combined per clip
    text_features: str | None = None  # folder or packed store of qid{qid}.npz text features
    clip_len: float = 2.0  # seconds per feature step
    max_v_len: int = 75  # clips kept per video (longer videos are truncated; see GroundingDataset)
    max_q_len: int = 32  # text tokens kept per query
    use_tef: bool = True  # append temporal endpoint features [t/T, (t+1)/T]
    layer: int | None = None  # layered (K, T, D) features: keep this layer only (e.g. -1, the last)
    batch_size: int = 32
    eval_batch_size: int = 64
    num_workers: int = 0


@dataclass
class TrainConfig:
    epochs: int = 200
    lr: float = 1e-4
    weight_decay: float = 1e-4
    lr_drop: int | None = None  # epochs between x0.1 steps; None = constant
    warmup_steps: int = 0
    grad_clip: float = 0.1
    seed: int = 2018
    deterministic: bool | str = "warn"  # True, False or "warn" (deterministic where CUDA has it, a warning elsewhere)
    precision: str = "32-true"  # Lightning precision; "16-mixed"/"bf16-mixed" on GPUs
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    monitor: str = "MR-full-mAP"  # metric that selects the best checkpoint (higher is better)
    eval_every: int = 1  # validate every N epochs
    checkpoint_every_steps: int | None = None  # also save `last.ckpt` every N steps (for resume)
    out_dir: str = "runs/default"
    progress: bool = True
    max_steps: int = -1  # stop after this many optimiser steps (-1 = no limit)
    max_time_minutes: float | None = None  # stop training after this wall time


@dataclass
class EvalConfig:
    task: Literal["grounding", "single", "multimoment"] = "grounding"
    max_windows: int = 10  # windows kept per query in the prediction file
    nms: Literal["hard", "gaussian", "linear"] | None = None  # NMS / soft-NMS at inference (None = off)
    nms_threshold: float = 0.7  # IoU threshold of NMS
    active_threshold: float = 0.5  # multimoment: a prediction is "active" at this confidence or above


@dataclass
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: dict = field(default_factory=lambda: {"name": "moment_detr"})
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return to_dict(self)


def load_config(path: str | Path | None, overrides: list[str] = (), base: dict | None = None) -> ExperimentConfig:
    """Read a YAML experiment config, apply ``--set`` overrides and validate everything."""
    data = dict(base or {})
    src = None
    if path is not None:
        src = str(path)
        data = load_yaml(path)
        here = str(Path(path).resolve().parent)
        data = _expand(data, here)
    data = apply_overrides(data, list(overrides))
    cfg = from_dict(ExperimentConfig, data, path=src)
    if "name" not in cfg.model:
        raise InputError("the model section needs a 'name'", path=src, field="model.name")
    return cfg


def _expand(node, here: str):
    if isinstance(node, dict):
        return {k: _expand(v, here) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, here) for v in node]
    if isinstance(node, str):
        return node.replace("${here}", here)
    return node
