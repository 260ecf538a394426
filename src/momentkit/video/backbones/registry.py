"""Backbones by name: ``register_backbone``, ``create_backbone``, ``list_backbones``.

Each entry is a :class:`~momentkit.video.backbones.base.VideoBackbone` subclass with a
``from_pretrained(model, **options)`` class method and a ``default_model`` (a Hugging Face id)::

    backbone = create_backbone("clip", model="openai/clip-vit-base-patch32", layers=[-4, -3, -2, -1])
    backbone = create_backbone("internvideo2", model="/ckpt/InternVideo2-stage2_1b-224p-f4.pt",
                               layers=[37, 38, 39, 40], pool="attn")

Built-in entries are imported lazily, so ``list_backbones()`` does not import transformers.
"""

from __future__ import annotations

import importlib

from momentkit.errors import InputError

_BUILTIN = {
    "clip": "momentkit.video.backbones.clip:CLIPBackbone",
    "internvideo2": "momentkit.video.backbones.internvideo2:InternVideo2Backbone",
}
_REGISTRY: dict[str, type] = {}


def register_backbone(name: str):
    """Class decorator adding a backbone under ``name``."""

    def deco(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"backbone {name!r} is already registered")
        _REGISTRY[name] = cls
        cls.name = name
        return cls

    return deco


def list_backbones() -> list[str]:
    return sorted(set(_REGISTRY) | set(_BUILTIN))


def get_backbone_class(name: str) -> type:
    if name not in _REGISTRY and name in _BUILTIN:
        module, _, attr = _BUILTIN[name].partition(":")
        getattr(importlib.import_module(module), attr)
    if name not in _REGISTRY:
        raise InputError(f"unknown backbone {name!r} (available: {', '.join(list_backbones())})", field="backbone")
    return _REGISTRY[name]


def create_backbone(name: str, model: str | None = None, **options):
    """Load backbone ``name`` from ``model`` (HF id or local path; default: its ``default_model``)."""
    cls = get_backbone_class(name)
    return cls.from_pretrained(model or cls.default_model, **options)


__all__ = ["create_backbone", "get_backbone_class", "list_backbones", "register_backbone"]
