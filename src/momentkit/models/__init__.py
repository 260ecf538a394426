"""Model building blocks and DETR-style moment retrieval models.

- :mod:`.layers` (MLP, input projection, DropPath), :mod:`.position_encoding`, :mod:`.transformer`,
  :mod:`.heads`, :mod:`.matcher`, :mod:`.losses`, :mod:`.postprocess`: reusable pieces.
- :mod:`.detr`: :class:`MomentDETR` (Moment-DETR and QD-DETR as configurations).
- :mod:`.coarse_fine`: Coarse-Fine Networks and their variants (task ``dense``); :mod:`.x3d`: the X3D
  backbone of their raw-frame streams.
- :mod:`.criterion`: :class:`SetCriterion`, the set-prediction losses every DETR-style model shares.
- :mod:`.registry`: ``register_model(name, config=ConfigClass, task=...)``, ``create_model(name, **cfg)``,
  ``list_models()``; :mod:`.contract`: what every model does (``forward`` / ``loss`` /
  ``postprocess``) and the batch of each task.
"""

from momentkit.models import detr  # noqa: F401  (registers the built-in models)
from momentkit.models import cg_detr  # noqa: F401
from momentkit.models import sdst  # noqa: F401
from momentkit.models import coarse_fine  # noqa: F401
from momentkit.models import victr, clip_baselines  # noqa: F401  (task classification)
from momentkit.models.detr import DETRConfig, MomentDETR, make_config
from momentkit.models.postprocess import postprocess, write_predictions
from momentkit.models.contract import ClassificationBatch, DenseBatch, DetectionBatch, GroundingBatch, Model
from momentkit.models.registry import create_model, list_models, register_model
from momentkit.models.utils import count_parameters

__all__ = [
    "ClassificationBatch",
    "DETRConfig",
    "DenseBatch",
    "DetectionBatch",
    "GroundingBatch",
    "Model",
    "MomentDETR",
    "count_parameters",
    "create_model",
    "list_models",
    "make_config",
    "postprocess",
    "register_model",
    "write_predictions",
]
