"""Adversarial domain alignment of pyramid anchors: SADA (thesis ch. 2), global DANN, or none.

One module, :class:`DomainAlignment`, whose ``mode`` is configuration:

- ``"none"``: source-only training (the alignment loss is 0 and has no parameters in use);
- ``"global"``: DANN (Ganin & Lempitsky 2015) -- a class-agnostic level-wise discriminator on every
  valid anchor of both domains, behind a gradient reversal layer;
- ``"local"``: Eq. 2.7 only -- class-wise alignment of action anchors;
- ``"sada"``: Eq. 2.9 -- ``L_local + L_bkg`` per level, weighted by ``level_weights``.

Class-wise alignment (``local``/``sada``): source anchors carry the class of the segment centre
sampling assigned them (0 = background); target anchors carry pseudo-labels (Eq. 2.4):
``argmax_i P[z, i] + 1`` when ``max_i P[z, i] > alpha``, else 0, from the detached classification
probabilities. The level-``l`` discriminator ``D_l`` (MLP, ``disc_depth`` linear layers of width
``disc_hidden``, one logit) sees ``[GRL(z) || e_c]`` with ``e_c`` a learnable class embedding (width
F; ``e_0`` the background embedding). Per level, for every class ``c`` present: the mean BCE of
``D_l`` on source anchors of class ``c`` (domain label 0) plus the mean BCE on target anchors of
class ``c`` (label 1); ``L_local`` sums classes 1..C, ``L_bkg`` is the class-0 term. For ``global``
the per-level term is the mean BCE over source anchors plus the mean BCE over target anchors.
Total: ``sum_l lambda_l * term_l`` (``weight`` = lambda_sada is applied by the caller).
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("none", "global", "local", "sada")


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, coeff):
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.coeff * grad, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Identity forward; multiplies the gradient by ``-coeff`` backward (gradient reversal layer)."""
    return _GradReverse.apply(x, float(coeff))


class GradientReversal(nn.Module):
    def __init__(self, coeff: float = 1.0) -> None:
        super().__init__()
        self.coeff = coeff

    def forward(self, x):
        return grad_reverse(x, self.coeff)


def dann_coeff(progress: float, gamma: float = 10.0) -> float:
    """DANN's GRL schedule ``2 / (1 + exp(-gamma p)) - 1`` for training progress ``p`` in [0, 1]."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


def pseudo_labels(probs: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. 2.4: ``(..., C)`` class probabilities -> ``(...)`` long, ``argmax + 1`` where ``max > alpha``, else 0."""
    best, idx = probs.max(dim=-1)
    return torch.where(best > alpha, idx + 1, torch.zeros_like(idx))


class Discriminator(nn.Module):
    """MLP ``in_dim -> hidden (ReLU) -> ... -> 1`` with ``depth`` linear layers."""

    def __init__(self, in_dim: int, hidden: int = 512, depth: int = 2) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (depth - 1) + [1]
        layers: list[nn.Module] = []
        for i in range(depth):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < depth - 1:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).squeeze(-1)


@dataclasses.dataclass
class AlignConfig:
    mode: str = "none"  # one of MODES
    alpha: float = 0.5  # pseudo-label threshold
    level_weights: list[float] | None = None  # lambda_l; default 1 for every level
    weight: float = 1.0  # lambda_sada
    disc_hidden: int = 512
    disc_depth: int = 2
    grl_coeff: float = 1.0
    grl_schedule: str = "constant"  # "constant" or "dann" (coefficient ramps 0 -> grl_coeff)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"align.mode must be one of {MODES}, got {self.mode!r}")
        if self.grl_schedule not in ("constant", "dann"):
            raise ValueError("align.grl_schedule must be 'constant' or 'dann'")


def group_mean_bce(logits: torch.Tensor, domain: torch.Tensor, group: torch.Tensor, num_groups: int) -> torch.Tensor:
    """``sum over (group, domain) cells present of mean BCE(logits, domain)`` -> ``(num_groups,)`` per group."""
    bce = F.binary_cross_entropy_with_logits(logits, domain.to(logits.dtype), reduction="none")
    cell = group * 2 + domain.long()
    sums = torch.zeros(num_groups * 2, dtype=bce.dtype, device=bce.device).index_add(0, cell, bce)
    counts = torch.zeros(num_groups * 2, dtype=bce.dtype, device=bce.device).index_add(0, cell, torch.ones_like(bce))
    return (sums / counts.clamp(min=1)).view(num_groups, 2).sum(-1)


class DomainAlignment(nn.Module):
    """Level-wise adversarial alignment loss; see the module docstring."""

    def __init__(self, cfg: AlignConfig, num_levels: int, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_levels = num_levels
        self.num_classes = num_classes
        weights = cfg.level_weights if cfg.level_weights is not None else [1.0] * num_levels
        if len(weights) != num_levels:
            raise ValueError(f"align.level_weights needs {num_levels} values, got {len(weights)}")
        self.register_buffer("level_weights", torch.tensor(weights, dtype=torch.float32), persistent=False)
        self.coeff = cfg.grl_coeff
        if cfg.mode == "none":
            self.discriminators = nn.ModuleList()
            return
        semantic = cfg.mode in ("local", "sada")
        in_dim = embed_dim * 2 if semantic else embed_dim
        self.discriminators = nn.ModuleList([Discriminator(in_dim, cfg.disc_hidden, cfg.disc_depth)
                                             for _ in range(num_levels)])
        if semantic:  # row 0: background embedding E_0; row i: class i's embedding e_i
            self.class_embed = nn.Parameter(torch.randn(num_classes + 1, embed_dim) * 0.02)

    def set_progress(self, progress: float) -> None:
        self.coeff = (dann_coeff(progress) if self.cfg.grl_schedule == "dann" else 1.0) * self.cfg.grl_coeff

    def disc_inputs(self, anchors: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``[GRL(anchors) || E[labels]]`` (semantic modes) or ``GRL(anchors)`` (global), ``(N, 2F)``/``(N, F)``."""
        x = grad_reverse(anchors, self.coeff)
        if self.cfg.mode in ("local", "sada"):
            x = torch.cat([x, self.class_embed[labels]], dim=-1)
        return x

    def forward(self, anchors: torch.Tensor, anchor_mask: torch.Tensor, level: torch.Tensor,
                domain: torch.Tensor, source_labels: torch.Tensor, cls_logits: torch.Tensor):
        """Alignment loss (before ``weight``) and its per-level terms.

        ``anchors (B, P, F)``, ``anchor_mask (B, P)``, ``level (P,)``, ``domain (B,)`` (0 source,
        1 target), ``source_labels (B, P)`` (0 background, i + 1 class i; read on source rows only),
        ``cls_logits (B, P, C)`` (the detector's; detached here, used on target rows only).
        """
        zero = anchors.sum() * 0.0
        if self.cfg.mode == "none":
            return zero, {}
        dom = domain.long()[:, None].expand_as(anchor_mask)  # (B, P)
        pseudo = pseudo_labels(cls_logits.detach().sigmoid(), self.cfg.alpha)
        labels = torch.where(dom.bool(), pseudo, source_labels)
        if self.cfg.mode == "global":
            labels = torch.zeros_like(labels)
        total, terms = zero, {}
        lvl = level.to(anchors.device)
        for l, disc in enumerate(self.discriminators):  # one discriminator per level
            sel = anchor_mask & (lvl == l)[None, :]
            if not sel.any():
                continue
            z, y, d = anchors[sel], labels[sel], dom[sel]
            logits = disc(self.disc_inputs(z, y))
            per_group = group_mean_bce(logits, d, y, self.num_classes + 1)
            if self.cfg.mode == "global":
                term = per_group[0]
            elif self.cfg.mode == "local":
                term = per_group[1:].sum()
            else:
                term = per_group.sum()
            terms[f"align_l{l}"] = term.detach()
            total = total + self.level_weights[l] * term
        return total, terms

    @torch.no_grad()
    def domain_accuracy(self, anchors, anchor_mask, level, domain, source_labels, cls_logits) -> float:
        """Fraction of valid anchors whose domain the discriminators get right (diagnostic)."""
        if self.cfg.mode == "none":
            return float("nan")
        dom = domain.long()[:, None].expand_as(anchor_mask)
        pseudo = pseudo_labels(cls_logits.sigmoid(), self.cfg.alpha)
        labels = torch.where(dom.bool(), pseudo, source_labels)
        if self.cfg.mode == "global":
            labels = torch.zeros_like(labels)
        right = n = 0
        for l, disc in enumerate(self.discriminators):
            sel = anchor_mask & (level.to(anchors.device) == l)[None, :]
            pred = disc(self.disc_inputs(anchors[sel], labels[sel])) > 0
            right += int((pred == dom[sel].bool()).sum())
            n += int(sel.sum())
        return right / max(n, 1)
