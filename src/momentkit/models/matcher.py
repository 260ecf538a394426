"""Hungarian matching of predicted spans to target spans (DETR).

One cost matrix is computed for the whole padded batch (every prediction against every target of
every sample), then split per sample and solved with :func:`scipy.optimize.linear_sum_assignment`.
Cost = ``cost_class * C_class + cost_span * L1(cxw) - cost_giou * gIoU(start-end)`` where
``C_class`` is ``-p(foreground)`` (``class_cost="prob"``, DETR / Moment-DETR) or the focal cost of
Deformable DETR (``class_cost="focal"``). :meth:`HungarianMatcher.match_levels` matches several
levels of predictions (decoder layers, SDST's levels) to the same targets with one cost matrix and one
copy, each level on its own; :class:`momentkit.models.criterion.SetCriterion` matches with it.

Matching variants (thesis 001, Tab. 3.5-3.6), arguments of :meth:`HungarianMatcher.forward` and
:meth:`HungarianMatcher.match_levels`; ``k=1, groups=1`` is DETR's one-to-one matching:

- ``k`` (one-to-k, as the one-to-many branch of H-DETR, Jia et al. 2023): every target is repeated
  ``k`` times and the repeated targets are matched one-to-one, so each target gets up to ``k``
  predictions and each prediction at most one target; ``min(Q, k * n_i)`` pairs per sample
  (``k >= Q`` matches every prediction).
- ``groups`` (Group DETR, Chen et al. 2023): the ``Q`` predictions are ``groups`` consecutive groups
  of ``Q / groups`` queries (group ``g`` = predictions ``g * Q/groups .. (g+1) * Q/groups - 1``), and
  each group is matched to the targets on its own (one-to-one, or one-to-k with ``k``);
  ``groups * min(Q / groups, k * n_i)`` pairs per sample.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from momentkit.models.heads import foreground_prob
from momentkit.spans import cxw_to_xx, pairwise_giou


class HungarianMatcher(nn.Module):
    def __init__(self, cost_class: float = 4.0, cost_span: float = 10.0, cost_giou: float = 1.0,
                 class_cost: str = "prob", focal_alpha: float = 0.25, focal_gamma: float = 2.0):
        super().__init__()
        if class_cost not in ("prob", "focal"):
            raise ValueError(f"class_cost must be 'prob' or 'focal', got {class_cost!r}")
        self.cost_class, self.cost_span, self.cost_giou = cost_class, cost_span, cost_giou
        self.class_cost = class_cost
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma

    def cost_matrix(self, logits: torch.Tensor, spans: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cost of every prediction (``logits (N, C)``, ``spans (N, 2)`` cxw) against every target (M, 2)."""
        p = foreground_prob(logits.float())
        if self.class_cost == "prob":
            c_class = -p
        else:
            a, g = self.focal_alpha, self.focal_gamma
            pos = a * (1 - p) ** g * -(p + 1e-8).log()
            neg = (1 - a) * p**g * -(1 - p + 1e-8).log()
            c_class = pos - neg
        spans, targets = spans.float(), targets.float()
        c_span = torch.cdist(spans, targets, p=1)
        c_giou = -pairwise_giou(cxw_to_xx(spans), cxw_to_xx(targets))
        return self.cost_class * c_class[:, None] + self.cost_span * c_span + self.cost_giou * c_giou

    @torch.no_grad()
    def forward(self, outputs: dict, targets: list[torch.Tensor], k: int = 1,
                groups: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``outputs``: ``pred_logits (B, Q, C)``, ``pred_spans (B, Q, 2)``; ``targets``: B tensors (n_i, 2).

        Returns, per sample, ``(pred_idx, target_idx)`` int64 tensors of length ``groups * min(Q / groups,
        k * n_i)`` (``min(Q, n_i)`` one-to-one), by group, then by prediction index.
        """
        b, q = outputs["pred_spans"].shape[:2]
        _check_variant(q, k, groups)
        sizes = [len(t) for t in targets]
        if sum(sizes) == 0:
            empty = torch.empty(0, dtype=torch.int64)
            return [(empty, empty) for _ in range(b)]
        cost = self.cost_matrix(
            outputs["pred_logits"].flatten(0, 1), outputs["pred_spans"].flatten(0, 1),
            torch.cat([t.to(outputs["pred_spans"].device) for t in targets]),
        )
        cost = cost.view(b, q, -1).cpu()
        return [(torch.as_tensor(r, dtype=torch.int64), torch.as_tensor(c, dtype=torch.int64))
                for r, c in _assign(cost, sizes, k, groups)]

    @torch.no_grad()
    def match_levels(self, logits: torch.Tensor, spans: torch.Tensor, targets: torch.Tensor,
                     sizes: list[int], k: int = 1, groups: int = 1) -> torch.Tensor:
        """Match ``L`` sets of predictions (e.g. every decoder level) to the same targets with one cost
        computation and one device-to-host copy.

        ``logits (L, B, Q, C)``, ``spans (L, B, Q, 2)``; ``targets (N, 2)``: the targets of the B
        samples concatenated, ``sizes[i]`` of them for sample ``i``. Returns an int64 CPU tensor
        ``(4, L * n)`` of (level, sample, prediction, row of ``targets``) pairs, level-major; every level
        has the same ``n = sum_i groups * min(Q / groups, k * sizes[i])`` pairs (``sum_i min(Q, sizes[i])``
        one-to-one), each level's in the order of :meth:`forward`.
        """
        nl, b, q = spans.shape[:3]
        _check_variant(q, k, groups)
        if sum(sizes) == 0:
            return torch.empty(4, 0, dtype=torch.int64)
        cost = self.cost_matrix(logits.flatten(0, 2), spans.flatten(0, 2), targets)
        cost = cost.view(nl, b, q, -1).cpu()
        starts = np.cumsum([0] + list(sizes[:-1]))
        parts = []
        for level in range(nl):
            for i, (rows, cols) in enumerate(_assign(cost[level], sizes, k, groups)):
                parts.append(np.stack([np.full_like(rows, level), np.full_like(rows, i), rows, cols + starts[i]]))
        return torch.from_numpy(np.concatenate(parts, 1).astype(np.int64))


def _check_variant(q: int, k: int, groups: int) -> None:
    if k < 1 or groups < 1:
        raise ValueError(f"k and groups must be at least 1, got k={k}, groups={groups}")
    if q % groups:
        raise ValueError(f"{q} predictions cannot be split into {groups} groups of equal size")


def assign(cost: np.ndarray, k: int = 1, groups: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Optimal assignment of one sample's ``cost (Q, n)`` (see the module docstring for ``k`` and
    ``groups``) -> (prediction, target) index arrays, by group, then by prediction index."""
    q, n = cost.shape
    if n == 0 or q == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    if k > 1:
        cost = np.tile(cost, (1, k))  # column j * n + t is copy j of target t
    size = q // groups
    rows, cols = [], []
    for g in range(groups):
        r, c = linear_sum_assignment(cost[g * size:(g + 1) * size])
        rows.append(r + g * size)
        cols.append(c % n)
    if groups == 1:
        return rows[0], cols[0]
    return np.concatenate(rows), np.concatenate(cols)


def _assign(cost: torch.Tensor, sizes: list[int], k: int = 1, groups: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """Optimal assignment of every sample: ``cost (B, Q, N)`` on the CPU, its last axis the samples'
    targets one after another (``sizes``) -> per sample (prediction, target) index arrays."""
    if k == 1 and groups == 1:
        return [linear_sum_assignment(c[i].numpy()) for i, c in enumerate(cost.split(sizes, -1))]
    return [assign(c[i].numpy(), k, groups) for i, c in enumerate(cost.split(sizes, -1))]
