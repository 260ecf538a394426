"""Numerical operators on predictions that need no model: temporal NMS and soft-NMS.

Span arithmetic (conversions, IoU, gIoU) lives in :mod:`momentkit.spans`.
Coarse-Fine Networks' layers: :mod:`momentkit.ops.grid_pool` (Grid Pool / Unpool) and
:mod:`momentkit.ops.fusion` (Multi-stage Fusion).
"""

from momentkit.ops.nms import nms, soft_nms, temporal_nms

__all__ = ["nms", "soft_nms", "temporal_nms"]
