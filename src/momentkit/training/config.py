"""The experiment config: one schema for every task, what ``momentkit train CONFIG`` reads.

A YAML file with a ``task`` and four sections::

    task: grounding            # or detection, ...; default: the task of the model
    data:  {...}               # typed by the task's data config (momentkit.tasks.<task>)
    model: {name: sdst, ...}   # typed by the registered model's own config class
    train: {...}               # TrainConfig below, the same for every task
    eval:  {...}               # typed by the task's eval config

Everything is checked when the file is loaded, before any data is opened: an unknown or ill-typed key
is an :class:`~momentkit.errors.InputError` naming the dotted key (``model.hiden_dim``) and the file, and
``train.monitor`` must be one of the metrics the task produces. Relative paths are resolved against the
working directory, except that ``${here}`` expands to the folder of the config file; ``_base_:
other.yaml`` merges a base file; ``--set key=value`` overrides any value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from momentkit.config import apply_overrides, load_yaml, override_for, section_from_dict, to_dict
from momentkit.errors import InputError


@dataclass
class TrainConfig:
    epochs: int = 200
    lr: float = 1e-4
    weight_decay: float = 1e-4
    weight_decay_1d: bool = True  # false: no weight decay on biases and norm weights (ActionFormer's recipe)
    schedule: Literal["step", "cosine"] = "step"  # step: x0.1 every `lr_drop` epochs; cosine: to 0 at the end
    lr_drop: int | None = None  # epochs between x0.1 steps; None = constant
    warmup_steps: int = 0  # linear warm-up from `warmup_start` x lr ...
    warmup_epochs: float = 0.0  # ... over this many steps or epochs
    warmup_start: float = 0.001
    ema_decay: float | None = None  # evaluate and export an exponential moving average of the weights
    grad_clip: float = 0.1
    seed: int = 2018
    deterministic: bool | str = "warn"  # True, False or "warn" (deterministic where CUDA has it, a warning elsewhere)
    precision: str = "32-true"  # Lightning precision; "16-mixed"/"bf16-mixed" on GPUs
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    threads: int | None = None  # torch CPU threads (None: torch's default)
    monitor: str | None = None  # metric selecting the best checkpoint (higher is better); None: the task's
    eval_every: int = 1  # validate every N epochs
    checkpoint_every_steps: int | None = None  # also save `step.ckpt` every N steps (for resume)
    out_dir: str = "runs/default"
    progress: bool = True
    max_steps: int = -1  # stop after this many optimiser steps (-1 = no limit)
    max_time_minutes: float | None = None  # stop training after this wall time
    # torch.compile the model's forward and loss for the training steps (evaluation stays eager): the
    # same mathematics, a one-off compilation of minutes; off by default (benchmarks/RESULTS.md,
    # "Training step time and memory", has its measured effect)
    compile: bool = False

    def __post_init__(self) -> None:
        check_ranges(self, positive=("epochs", "lr", "eval_every"),
                     nonneg=("weight_decay", "warmup_steps", "warmup_epochs", "grad_clip"),
                     optional_positive=("lr_drop", "threads", "checkpoint_every_steps", "max_time_minutes",
                                        "ema_decay"))
        if self.eval_every > self.epochs:
            raise InputError(f"is {self.eval_every}, more than train.epochs ({self.epochs}): no validation would "
                             "run and no best checkpoint be kept", field="eval_every")
        if self.ema_decay is not None and not self.ema_decay < 1:
            raise InputError(f"must be below 1, got {self.ema_decay}", field="ema_decay")
        if not 0 <= self.warmup_start <= 1:
            raise InputError(f"must be in [0, 1], got {self.warmup_start}", field="warmup_start")


def check_ranges(obj, *, positive=(), nonneg=(), optional_positive=()) -> None:
    """Refuse meaningless numbers of a config dataclass, naming the field and the allowed range."""
    for name in positive:
        if not getattr(obj, name) > 0:
            raise InputError(f"must be > 0, got {getattr(obj, name)}", field=name)
    for name in nonneg:
        if not getattr(obj, name) >= 0:
            raise InputError(f"must be >= 0, got {getattr(obj, name)}", field=name)
    for name in optional_positive:
        value = getattr(obj, name)
        if value is not None and not value > 0:
            raise InputError(f"must be > 0 (or null), got {value}", field=name)


SECTIONS = ("task", "data", "model", "train", "eval")


@dataclass
class ExperimentConfig:
    task: str = "grounding"
    data: Any = None  # the task's data config
    model: dict = field(default_factory=lambda: {"name": "moment_detr"})  # name + the model's options
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: Any = None  # the task's eval config

    def to_dict(self) -> dict:
        return to_dict(self)


def parse_config(data: dict, path: str | None = None) -> ExperimentConfig:
    """Validate a config mapping (see the module docstring) into an :class:`ExperimentConfig`."""
    from momentkit.models.registry import model_config, model_entry
    from momentkit.tasks import get_task

    for key in data:
        if key not in SECTIONS:
            raise InputError(f"unknown key; expected one of: {', '.join(SECTIONS)}", path=path, field=str(key))
    model = data.get("model") or {}
    if not isinstance(model, dict):
        raise InputError(f"expected a mapping, got {model!r}", path=path, field="model")
    if "name" not in model:
        raise InputError("the model section needs a 'name'", path=path, field="model.name")
    entry = model_entry(model["name"], path=path)
    task_name = data.get("task") or entry.task
    task = get_task(task_name, path=path)
    if entry.task != task.name:
        raise InputError(f"model {entry.name!r} is a {entry.task} model, not a {task.name} one", path=path,
                         field="model.name")
    options = {k: v for k, v in model.items() if k != "name"}
    from momentkit.training.init import check_options

    check_options(options, path)  # the engine's init_from / init_exclude
    model_config(entry.name, options, path=path)  # typed check of every option
    cfg = ExperimentConfig(
        task=task.name,
        data=_section(task.data_config, data, "data", path),
        model={"name": entry.name, **options},
        train=_section(TrainConfig, data, "train", path),
        eval=_section(task.eval_config, data, "eval", path),
    )
    task.check(cfg, path)
    names = task.metric_names(cfg)
    if cfg.train.monitor is None:
        cfg.train.monitor = task.default_monitor(cfg)
    elif cfg.train.monitor not in names:
        raise InputError(f"the {task.name} task does not produce {cfg.train.monitor!r}; it produces: "
                         f"{', '.join(names)}", path=path, field="train.monitor")
    return cfg


def _section(cls: type, data: dict, key: str, path: str | None):
    value = data.get(key)
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InputError(f"expected a mapping, got {value!r}", path=path, field=key)
    return section_from_dict(cls, value, key, path=path)


def load_config(path: str | Path | None, overrides: list[str] = (), base: dict | None = None) -> ExperimentConfig:
    """Read a YAML experiment config, apply ``--set`` overrides and validate everything."""
    data = dict(base or {})
    src = None
    if path is not None:
        src = str(path)
        data = load_yaml(path)
        here = str(Path(path).resolve().parent)
        data = _expand(data, here)
    overrides = list(overrides)
    data = apply_overrides(data, overrides)
    try:
        return parse_config(data, src)
    except InputError as e:
        item = override_for(e.field, overrides)
        if item is None:
            raise
        raise InputError(f"{e.message} (given by --set {item})", field=e.field) from None  # not the file's fault


def _expand(node, here: str):
    if isinstance(node, dict):
        return {k: _expand(v, here) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, here) for v in node]
    if isinstance(node, str):
        return node.replace("${here}", here)
    return node
