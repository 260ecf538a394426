"""Start a model from earlier weights: ``model.init_from`` (pretraining -> fine-tuning, two-stage recipes).

``model.init_from`` names one source or a list of them: a run folder, a ``.ckpt``, a momentkit
``model.safetensors``, a folder of ``momentkit export`` or its Hugging Face Hub id, or a plain state dict
(``.pt`` / ``.pth`` / ``.safetensors``). Every tensor of a
source whose name is a parameter or buffer of the new model is copied into it (later sources win);
``model.init_exclude`` lists glob patterns of names that are never copied (a classifier trained on other
classes: ``["head.fc2.*"]``). A name with another shape is an :class:`InputError` naming the parameter,
both shapes and the file; a source that gives nothing is an error too. The report lists what was
loaded and what was left initialised, so a two-stage Coarse-Fine run shows that the fusion layers are
new and both streams were loaded.

Applied once, when training starts from scratch; a resumed run or ``momentkit test`` reads its own
checkpoint instead.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from momentkit.errors import InputError

KEYS = ("init_from", "init_exclude")  # engine options of the model section (not the model's own)


@dataclass
class InitReport:
    loaded: dict[str, list[str]] = field(default_factory=dict)  # source -> parameter names
    excluded: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)  # parameters left as the model built them

    def lines(self) -> list[str]:
        out = [f"loaded {len(names)} tensors from {src}" for src, names in self.loaded.items()]
        if self.excluded:
            out.append(f"excluded by init_exclude: {_summary(self.excluded)}")
        out.append(f"left initialised: {_summary(self.initialised) if self.initialised else 'nothing'}")
        return out


def _summary(names: list[str], limit: int = 6) -> str:
    """Names grouped by their first two components (``fusion.0.*``), at most ``limit`` groups shown."""
    groups = list(dict.fromkeys(".".join(n.split(".")[:2]) + ("*" if n.count(".") > 1 else "") for n in names))
    shown = ", ".join(groups[:limit]) + (f", ... ({len(groups) - limit} more)" if len(groups) > limit else "")
    return f"{len(names)} tensors ({shown})"


def read_state(source: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model weights of a run folder, checkpoint or state-dict file (see the module docstring)."""
    from momentkit.pretrained import resolve
    from momentkit.training.runner import _resolve_run, load_checkpoint

    p = resolve(source)  # a Hugging Face Hub id of an exported model is downloaded
    if p.is_dir():
        p = _resolve_run(p)
    if not p.is_file():
        raise InputError("file not found", path=p, field="model.init_from")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(p))
        except Exception as e:  # noqa: BLE001 - any parse failure is a bad file for the user
            raise InputError(f"cannot read safetensors file ({type(e).__name__}: {e})", path=p,
                             field="model.init_from") from None
    ckpt = load_checkpoint(p)
    if not isinstance(ckpt, dict):
        raise InputError("expected a state dict or a checkpoint", path=p, field="model.init_from")
    if "state_dict" in ckpt and isinstance(ckpt["state_dict"], dict):
        weights = ckpt["state_dict"]
        prefix = "ema_model." if any(k.startswith("ema_model.") for k in weights) else "model."
        return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    state = {k: v for k, v in ckpt.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise InputError("no tensors in this file", path=p, field="model.init_from")
    return state


def init_weights(model: torch.nn.Module, sources, exclude=()) -> InitReport:
    """Copy matching tensors of ``sources`` into ``model`` (in place); see the module docstring."""
    sources = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    own = model.state_dict()
    report = InitReport()
    done: set[str] = set()
    for src in sources:
        state = read_state(src)
        names = []
        for name, tensor in state.items():
            if name not in own:
                continue
            if any(fnmatch.fnmatchcase(name, pat) for pat in exclude):
                if name not in report.excluded:
                    report.excluded.append(name)
                continue
            if tuple(tensor.shape) != tuple(own[name].shape):
                raise InputError(f"parameter {name!r} has shape {tuple(tensor.shape)} in the file and "
                                 f"{tuple(own[name].shape)} in the model (exclude it with model.init_exclude)",
                                 path=src, field="model.init_from")
            with torch.no_grad():
                own[name].copy_(tensor.to(own[name].dtype))
            names.append(name)
        if not names:
            raise InputError("no tensor of this file matches a parameter of the model", path=src,
                             field="model.init_from")
        report.loaded[str(src)] = names
        done.update(names)
    report.initialised = [n for n in own if n not in done]
    return report


def check_options(model: dict, path: str | None) -> None:
    """Types of ``model.init_from`` / ``model.init_exclude``."""
    src = model.get("init_from")
    if src is not None and not (isinstance(src, str) or (isinstance(src, list) and src
                                                         and all(isinstance(s, str) for s in src))):
        raise InputError(f"expected a path or a list of paths, got {src!r}", path=path, field="model.init_from")
    exc = model.get("init_exclude")
    if exc is not None and not (isinstance(exc, list) and all(isinstance(s, str) for s in exc)):
        raise InputError(f"expected a list of name patterns, got {exc!r}", path=path, field="model.init_exclude")
