"""Temporal action localisation: an anchor-free pyramid detector (ActionFormer / TriDet family) and
unsupervised domain adaptation of it (SADA, DANN), with two-domain data. It trains through the one
engine as the ``detection`` task (:mod:`momentkit.tasks.detection`, ``momentkit train configs/tal/...``).

- :mod:`momentkit.tal.detector` -- :class:`TemporalActionDetector`, :class:`DetectorConfig`;
- :mod:`momentkit.tal.sada` -- gradient reversal, :class:`DomainAlignment` (none / global / local / sada);
- :mod:`momentkit.tal.data` -- :class:`TwoDomainBatchSampler`, :class:`TwoDomainDataset`, :func:`unlabelled`;
- :mod:`momentkit.tal.benchmarks` -- cross-domain benchmark builders (``momentkit make-da-benchmark``).
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
