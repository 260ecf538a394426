"""Model registry (timm style): ``@register_model(name)`` on a factory, ``create_model(name, **cfg)``."""

from __future__ import annotations

from collections.abc import Callable

from momentkit.errors import InputError

_MODELS: dict[str, Callable] = {}


def register_model(name: str) -> Callable[[Callable], Callable]:
    """Register ``factory(**cfg) -> nn.Module`` under ``name``."""

    def deco(factory: Callable) -> Callable:
        if name in _MODELS and _MODELS[name] is not factory:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = factory
        return factory

    return deco


def _load_builtin() -> None:
    import momentkit.models  # noqa: F401  (registers the built-in models)


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    _load_builtin()
    return sorted(_MODELS)


def create_model(name: str, **cfg):
    """Build the registered model ``name`` with config overrides ``cfg``."""
    _load_builtin()
    if name not in _MODELS:
        raise InputError(f"unknown model {name!r}; known: {', '.join(sorted(_MODELS))}", field="model")
    return _MODELS[name](**cfg)
