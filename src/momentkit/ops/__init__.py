"""Numerical operators on predictions that need no model: temporal NMS and soft-NMS.

Span arithmetic (conversions, IoU, gIoU) lives in :mod:`momentkit.spans`.
"""

from momentkit.ops.nms import nms, soft_nms, temporal_nms

__all__ = ["nms", "soft_nms", "temporal_nms"]
