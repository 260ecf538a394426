"""Frozen video-text backbones by name (see :mod:`.registry`): ``clip`` (transformers
``CLIPModel``) and ``internvideo2`` (native InternVideo2-1B stage 2, official checkpoint keys).
The interface is :class:`.base.VideoBackbone`."""

from momentkit.video.backbones.base import VideoBackbone
from momentkit.video.backbones.registry import (
    create_backbone,
    get_backbone_class,
    list_backbones,
    register_backbone,
)

__all__ = ["VideoBackbone", "create_backbone", "get_backbone_class", "list_backbones", "register_backbone"]
