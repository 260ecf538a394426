"""Temporal action localisation: an anchor-free pyramid detector (ActionFormer / TriDet family) and
unsupervised domain adaptation of it (SADA, DANN), with two-domain data and a training runner.

- :mod:`momentkit.tal.detector` -- :class:`TemporalActionDetector`, :class:`DetectorConfig`;
- :mod:`momentkit.tal.sada` -- gradient reversal, :class:`DomainAlignment` (none / global / local / sada);
- :mod:`momentkit.tal.data` -- :class:`TwoDomainBatchSampler`, :class:`TwoDomainDataset`, :func:`unlabelled`;
- :mod:`momentkit.tal.train` -- :class:`TALConfig`, :func:`load_tal_config`, :func:`train_tal`
  (``momentkit train CONFIG``).
"""

from momentkit.tal.data import TwoDomainBatchSampler, TwoDomainDataset, collate_two_domain, unlabelled
from momentkit.tal.detector import DetectorConfig, TemporalActionDetector, assign_targets, offset_iou_loss
from momentkit.tal.sada import AlignConfig, DomainAlignment, GradientReversal, grad_reverse, pseudo_labels

__all__ = [
    "AlignConfig",
    "DetectorConfig",
    "DomainAlignment",
    "GradientReversal",
    "TemporalActionDetector",
    "TwoDomainBatchSampler",
    "TwoDomainDataset",
    "assign_targets",
    "collate_two_domain",
    "grad_reverse",
    "offset_iou_loss",
    "pseudo_labels",
    "unlabelled",
]
