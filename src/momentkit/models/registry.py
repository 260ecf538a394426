"""Model registry (timm style): every model has one entry -- a factory, its typed config and its task.

``@register_model(name, config=ConfigClass, task="grounding")`` on a factory ``factory(**options) ->
nn.Module``; ``create_model(name, **options)`` builds it; :func:`model_config` builds and validates the
config alone (what ``momentkit train`` does before any data is opened, so a misspelt or ill-typed
option fails with its dotted key, ``model.hiden_dim``, and the config file in the message).

Every registered model follows :class:`momentkit.models.contract.Model` for its task (``forward`` /
``loss`` / ``postprocess``); see that module for the batch each task feeds it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from momentkit.errors import InputError


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: ``factory(**options)``, the config dataclass its options fill (``presets``
    first, then the user's options), and the task it serves."""

    name: str
    factory: Callable
    config: type | None = None
    task: str = "grounding"
    presets: dict = field(default_factory=dict)


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, *, config: type | None = None, task: str = "grounding",
                   presets: dict | None = None) -> Callable[[Callable], Callable]:
    """Register ``factory(**options) -> nn.Module`` under ``name`` for ``task``; ``config`` is the
    dataclass the options fill (None: options are not checked before the model is built)."""

    def deco(factory: Callable) -> Callable:
        old = _MODELS.get(name)
        if old is not None and old.factory is not factory:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = ModelEntry(name, factory, config, task, dict(presets or {}))
        return factory

    return deco


def unregister_model(name: str) -> None:
    """Remove ``name`` from the registry (models registered for a test)."""
    _MODELS.pop(name, None)


def _load_builtin() -> None:
    import momentkit.models  # noqa: F401  (registers the built-in models)
    import momentkit.tal.detector  # noqa: F401


def list_models(task: str | None = None) -> list[str]:
    """Names of every registered model (of ``task`` when given), sorted."""
    _load_builtin()
    return sorted(n for n, e in _MODELS.items() if task is None or e.task == task)


def model_entry(name: str, *, path: str | None = None) -> ModelEntry:
    """The registry entry of ``name``; an unknown name is an :class:`InputError` on ``model.name``."""
    _load_builtin()
    if name not in _MODELS:
        raise InputError(f"unknown model {name!r}; known: {', '.join(sorted(_MODELS))}", path=path,
                         field="model.name")
    return _MODELS[name]


def model_config(name: str, options: dict, *, path: str | None = None):
    """The validated config dataclass of model ``name`` with ``options`` (None for an untyped model).

    Unknown keys, wrong types and the config's own checks (``__post_init__``) are :class:`InputError` s
    naming ``model.<key>`` and ``path``.
    """
    from momentkit.config import section_from_dict

    from momentkit.training.init import KEYS

    entry = model_entry(name, path=path)
    if entry.config is None:
        return None
    options = {k: v for k, v in options.items() if k not in KEYS}
    return section_from_dict(entry.config, {**entry.presets, **options}, "model", path=path)


def config_fields(name: str) -> set[str]:
    """Option names of model ``name``'s config (empty for an untyped model)."""
    entry = model_entry(name)
    return {f.name for f in dataclasses.fields(entry.config)} if entry.config is not None else set()


def create_model(name: str, **options):
    """Build the registered model ``name`` with config options ``options`` (the engine's
    ``init_from`` / ``init_exclude`` are applied by the runner, not passed to the model)."""
    from momentkit.training.init import KEYS

    return model_entry(name).factory(**{k: v for k, v in options.items() if k not in KEYS})
