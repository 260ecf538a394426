"""The losses of every moment-retrieval model in one object: :class:`SetCriterion` and its terms.

Moment-DETR, QD-DETR (:class:`~momentkit.models.detr.MomentDETR`) and SDST
(:class:`~momentkit.models.sdst.SDST`) build ``self.criterion = SetCriterion(matcher, loss_weights,
**options)`` and their ``loss(outputs, batch)`` is ``self.criterion(outputs, batch)``: the weighted
total (with its graph) and the detached value of every term, by name.

``loss_weights`` names the active terms and their weights (a term missing from it is not computed).
Each term is a small function registered by name with :func:`register_term`; a term whose inputs are
missing from the outputs or the batch is skipped. A term has one name for every model; where the
models differ, an option picks the formula (``iou_loss``, ``label_loss``, ``saliency_loss``). (Moment-DETR's
config still reads ``giou``, the old name of its ``iou`` term.) Shapes: B samples, Q predictions per sample, C class
logits, T clips, L levels (decoder layers or SDST levels), F features, P sampled clips per sample,
n_i windows of sample i, n = sum_i min(Q, n_i) matched pairs per level.

Per level (logged ``loss_<term>`` for the last level, ``loss_<term>_<l>`` for level l = 0 .. L-2),
each level matched to the targets on its own:

- ``span``: mean L1 of the matched (centre, width) pairs.
- ``iou``: mean ``1 - gIoU`` (``iou_loss="giou"``: Moment-DETR, QD-DETR) or ``1 - IoU`` (``"iou"``:
  SDST) of the matched pairs.
- ``label``: matched predictions foreground, the others background: 2-way softmax CE with background
  weight ``eos_coef`` (``label_loss="ce"``, C = 2) or the sigmoid focal loss over the number of matched
  pairs (``"focal"``, C = 1, ``focal_alpha`` / ``focal_gamma``).

Once per batch (logged ``loss_<term>``), on outputs ``saliency_scores (B, T)`` unless said otherwise:

- ``saliency``: ``saliency_loss="margin"`` (Moment-DETR, QD-DETR): hinge ``saliency_margin`` between the
  batch's ``saliency_pos_idx`` and ``saliency_neg_idx (B, P)`` clips; ``"sampled_nce"`` (SDST):
  SampledNCE of the ``saliency_pos_idx`` clips against the clips that are not more salient (batch
  ``saliency (B, T)``, ``temperature``). Both keep the samples of ``saliency_valid (B,)`` if given.
- ``rank``: QD-DETR's rank-contrastive loss against batch ``saliency (B, T)`` (0..12 scale;
  ``rank_levels``, ``rank_tau``), with outputs ``saliency_scores_neg (B, T)`` as extra negatives if given.
- ``neg_pair``: outputs ``saliency_scores_neg (B, T)`` (each video with another sample's query) pushed
  towards 0.
- ``query_contrast`` (SDST with ``neg_pairs``): at the batch's ``saliency_pos_idx`` clips, the score with
  the sample's own query above the score with another sample's query, outputs ``saliency_scores_neg``:
  ``-log sigmoid((s - s_neg) / temperature)``; clips where outputs ``saliency_neg_ok`` is False (relevant
  to the other query as well) are left out.
- ``saliency_bce``: every valid clip's ``sigmoid(s / temperature)`` against "inside a window" (batch
  ``saliency > 0``), and, with outputs ``saliency_scores_neg``, the clips of the other query's pass
  against 0 (where ``saliency_neg_ok``); mean binary cross-entropy.
- ``video_align`` / ``layer_align`` (SDST): InfoNCE between outputs ``level_video (L, B, T, F)`` and
  ``level_text (L, B, F)`` across the videos of the batch / across the levels, on the clips that
  overlap a window (``temperature``; batch ``meta[i]["vid"]`` keeps queries of one video apart).
- ``actionness`` (SDST; Moment-DETR / QD-DETR with ``actionness: true``): L1 between outputs
  ``pred_actionness (B, Q)`` and the largest IoU of each of ``pred_spans`` with a window of its sample.

Inputs. Outputs: ``pred_logits (B, Q, C)``, ``pred_spans (B, Q, 2)`` (normalised centre-width) -- the
last level -- and the earlier levels either stacked with it, ``level_logits (L, B, Q, C)`` /
``level_spans (L, B, Q, 2)`` (SDST), or as ``aux_outputs``: L - 1 dicts of ``pred_logits`` /
``pred_spans`` (DETR); ``aux_loss=False``: the last level only. Batch: ``spans``, B tensors ``(n_i, 2)``
of normalised centre-width windows; ``video_mask (B, T)``, 1 (True) = valid clip (padding never
counts); the keys of the terms above.

Total: term by term in the order above, ``weight * (sum of the term over the levels)``.

Matching variants (thesis 001, Tab. 3.5-3.6; :mod:`momentkit.models.matcher`), for every DETR-style
model (the model's config chooses; :class:`~momentkit.models.detr.DETRConfig` documents them):

- ``match_k`` (criterion option): the per-level terms match each window to up to ``match_k``
  predictions (one-to-k); 1 = one-to-one (DETR).
- Group matching: outputs ``query_groups`` (an int, training only) says that the ``Q`` predictions are
  that many groups of queries decoded apart; each group is matched one-to-one on its own (Group DETR).
  The per-level terms then average over the groups (the span and IoU terms are means over all matched
  pairs, the label term a mean over all predictions).
- Hybrid matching: outputs ``one2many`` (training only), a dict of ``pred_logits (B, Q_m, C)``,
  ``pred_spans (B, Q_m, 2)`` and ``aux_outputs`` of a second set of queries; its levels are matched
  one-to-k with ``one2many_k`` and the per-level terms of that branch are added with the weight
  ``one2many_weight * weight`` (H-DETR), logged ``loss_<term>_o2m`` (last level).
- Augmented targets: outputs ``targets`` (training with GT replication, see
  :func:`momentkit.ops.gt_replication.replicate_moments`), a dict of batch keys (``spans``,
  ``saliency``, ...) that replace the batch's for every term.

Speed: the windows are packed once (:func:`~momentkit.models.losses.pack_spans`) and every level is
matched with one cost matrix and one device-to-host copy (:meth:`HungarianMatcher.match_levels`);
no term waits for the device otherwise (no ``.item()``, ``nonzero`` or boolean-mask indexing), except
``saliency_loss="margin"`` with ``saliency_valid``, which selects the valid samples.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import nn

from momentkit.errors import InputError
from momentkit.models.losses import (
    PackedSpans,
    label_ce_loss,
    label_focal_loss,
    neg_pair_saliency_loss,
    pack_spans,
    rank_contrastive_loss,
    saliency_margin_loss,
    span_iou_loss,
    span_l1_loss,
)
from momentkit.models.matcher import HungarianMatcher
from momentkit.models.sdst_losses import (
    actionness_loss,
    clips_in_spans,
    layer_alignment_loss,
    sampled_nce_loss,
    video_alignment_loss,
)


class LevelMatch:
    """Every level's predictions, matched to the targets level by level (one cost matrix for all).

    ``logits (L, B, Q, C)``, ``spans (L, B, Q, 2)``; ``k``, ``groups``: the matching variant (see
    :mod:`momentkit.models.matcher`); ``index``: the (level, sample, prediction) of the
    matched predictions, three ``(L * n,)`` tensors, level-major; :attr:`pred` / :attr:`target`: the
    matched spans and their windows, ``(L, n, 2)``.
    """

    def __init__(self, logits: torch.Tensor, spans: torch.Tensor, targets: PackedSpans, matcher: HungarianMatcher,
                 k: int = 1, groups: int = 1):
        match = matcher.match_levels(logits, spans, targets.spans, list(targets.sizes), k, groups).to(spans.device)
        self.logits, self.spans, self.levels = logits, spans, spans.shape[0]
        self.n = match.shape[1] // self.levels
        level, sample, pred, self._rows = match.unbind(0)
        self.index = (level, sample, pred)
        self._windows = targets.spans

    @cached_property
    def pred(self) -> torch.Tensor:
        return self.spans[self.index].view(self.levels, self.n, 2)

    @cached_property
    def target(self) -> torch.Tensor:
        return self._windows[self._rows].view(self.levels, self.n, 2).to(self.pred.dtype)


class LossInputs:
    """What a term reads: ``outputs`` and ``batch`` as the model gave them, the windows packed once
    (``targets``), the per-level ``match`` (when a per-level term is active) and the values that
    several terms share, computed on first use."""

    def __init__(self, outputs: dict, batch: dict, targets: PackedSpans, match: LevelMatch | None):
        self.outputs, self.batch, self.targets, self.match = outputs, batch, targets, match

    @cached_property
    def video_mask(self) -> torch.Tensor:
        """``(B, T)`` bool, True = valid clip, on the device of the saliency scores."""
        return self.batch["video_mask"].to(self.outputs["saliency_scores"].device).bool()

    @cached_property
    def positives(self) -> torch.Tensor:
        """``(B, T)`` bool: the valid clips that overlap a window of their sample."""
        return clips_in_spans(self.targets, self.video_mask)

    @cached_property
    def unit_levels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``level_video (L, B, T, F)`` and ``level_text (L, B, F)`` as float32 unit vectors."""
        return (F.normalize(self.outputs["level_video"].float(), dim=-1),
                F.normalize(self.outputs["level_text"].float(), dim=-1))

    def batch_on_device(self, key: str) -> torch.Tensor:
        """``batch[key]`` on the device of the saliency scores."""
        return torch.as_tensor(self.batch[key], device=self.outputs["saliency_scores"].device)


Term = Callable[["SetCriterion", LossInputs], "torch.Tensor | None"]
TERMS: dict[str, Term] = {}  # name -> function, in the order of the total
PER_LEVEL: set[str] = set()


def register_term(name: str, per_level: bool = False) -> Callable[[Term], Term]:
    """Register ``fn(criterion, inputs) -> value`` as the loss term ``name`` (a ``loss_weights`` key).

    A per-level term reads ``inputs.match`` and returns one value per level, ``(L,)``; any other term a
    scalar, or ``None`` when its inputs are missing (the term is then skipped). Options are read from
    the criterion (``criterion.temperature``, ...).
    """

    def add(fn: Term) -> Term:
        if name in TERMS:
            raise ValueError(f"loss term {name!r} is already registered")
        TERMS[name] = fn
        if per_level:
            PER_LEVEL.add(name)
        return fn

    return add


# ----------------------------------------------------------------------------- per-level terms
@register_term("span", per_level=True)
def span_term(c: SetCriterion, x: LossInputs) -> torch.Tensor:
    """Mean L1 of the matched spans ``(L, n, 2)`` and their windows -> ``(L,)``."""
    return span_l1_loss(x.match.pred, x.match.target)


@register_term("iou", per_level=True)
def iou_term(c: SetCriterion, x: LossInputs) -> torch.Tensor:
    """Mean ``1 - gIoU`` or ``1 - IoU`` (``c.iou_loss``) of the matched spans ``(L, n, 2)`` -> ``(L,)``."""
    return span_iou_loss(x.match.pred, x.match.target, c.iou_loss)


@register_term("label", per_level=True)
def label_term(c: SetCriterion, x: LossInputs) -> torch.Tensor:
    """Foreground classification of every prediction, ``logits (L, B, Q, C)`` -> ``(L,)``: softmax CE
    (``c.label_loss="ce"``) or focal loss (``"focal"``)."""
    m = x.match
    if c.label_loss == "focal":
        return label_focal_loss(m.logits, m.index, c.focal_alpha, c.focal_gamma)
    return label_ce_loss(m.logits, m.index, c.eos_coef)


# ----------------------------------------------------------------------------- once per batch
@register_term("saliency")
def saliency_term(c: SetCriterion, x: LossInputs) -> torch.Tensor | None:
    """Clip saliency ``saliency_scores (B, T)`` against batch ``saliency_pos_idx (B, P)`` and
    ``saliency_neg_idx (B, P)`` (margin) or ``saliency (B, T)`` (SampledNCE); ``saliency_valid (B,)``."""
    b, scores = x.batch, x.outputs["saliency_scores"]
    if "saliency_pos_idx" not in b or (c.saliency_loss == "sampled_nce" and "saliency" not in b):
        return None
    valid = x.batch_on_device("saliency_valid") if "saliency_valid" in b else None
    pos = x.batch_on_device("saliency_pos_idx")
    if c.saliency_loss == "margin":
        return saliency_margin_loss(scores, pos, x.batch_on_device("saliency_neg_idx"), c.saliency_margin, valid)
    return sampled_nce_loss(scores, x.batch_on_device("saliency"), pos, x.video_mask, c.temperature, valid)


@register_term("rank")
def rank_term(c: SetCriterion, x: LossInputs) -> torch.Tensor | None:
    """Rank-contrastive loss of ``saliency_scores (B, T)`` against batch ``saliency (B, T)``, with
    ``saliency_scores_neg (B, T)`` as label-0 clips when the outputs have them."""
    if "saliency" not in x.batch:
        return None
    scores = x.outputs["saliency_scores"]
    return rank_contrastive_loss(scores, x.batch["saliency"].to(scores), x.video_mask, c.rank_levels, c.rank_tau,
                                 x.outputs.get("saliency_scores_neg"))


@register_term("neg_pair")
def neg_pair_term(c: SetCriterion, x: LossInputs) -> torch.Tensor | None:
    """``-log(1 - sigmoid(s))`` of the valid clips of ``saliency_scores_neg (B, T)``, summed, mean over B."""
    neg = x.outputs.get("saliency_scores_neg")
    return None if neg is None else neg_pair_saliency_loss(neg, x.video_mask)


@register_term("query_contrast")
def query_contrast_term(c: SetCriterion, x: LossInputs) -> torch.Tensor | None:
    """Does the saliency listen to the query? At each sampled positive clip (batch ``saliency_pos_idx
    (B, P)``), the clip's score with its own query, ``saliency_scores (B, T)``, must exceed its score with
    another sample's query, ``saliency_scores_neg (B, T)``: ``-log sigmoid((s - s_neg) / temperature)``,
    mean over the positives of the ``saliency_valid`` samples."""
    neg = x.outputs.get("saliency_scores_neg")
    if neg is None or "saliency_pos_idx" not in x.batch:
        return None
    pos = x.batch_on_device("saliency_pos_idx").long()
    s, s_neg = x.outputs["saliency_scores"].float().gather(1, pos), neg.float().gather(1, pos)  # (B, P)
    ok = x.video_mask.gather(1, pos)
    if "saliency_valid" in x.batch:
        ok = ok & x.batch_on_device("saliency_valid").bool()[:, None]
    if "saliency_neg_ok" in x.outputs:  # clips relevant to the other query too are no negatives
        ok = ok & x.outputs["saliency_neg_ok"].gather(1, pos)
    loss = -F.logsigmoid((s - s_neg) / c.temperature)
    return torch.where(ok, loss, 0.0).sum() / ok.sum().clamp(min=1)


@register_term("saliency_bce")
def saliency_bce_term(c: SetCriterion, x: LossInputs) -> torch.Tensor | None:
    """Absolute relevance of every clip: binary cross-entropy of ``sigmoid(s / temperature)`` against
    "inside a window of the query" (batch ``saliency (B, T) > 0``) over the valid clips of
    ``saliency_scores (B, T)``, and against 0 over the clips of ``saliency_scores_neg`` (the video with
    another query) where ``saliency_neg_ok`` allows; mean over the clips that count. Unlike the ranking
    losses it asks the clips of another query's moment to score as low as the background."""
    if "saliency" not in x.batch:
        return None
    s = x.outputs["saliency_scores"].float() / c.temperature
    target = (x.batch_on_device("saliency") > 0).float()
    ok = x.video_mask.bool()
    if "saliency_valid" in x.batch:
        ok = ok & x.batch_on_device("saliency_valid").bool()[:, None]
    total = torch.where(ok, F.binary_cross_entropy_with_logits(s, target, reduction="none"), 0.0).sum()
    count = ok.sum()
    neg = x.outputs.get("saliency_scores_neg")
    if neg is not None:
        ok_neg = x.video_mask.bool()
        if "saliency_neg_ok" in x.outputs:
            ok_neg = ok_neg & x.outputs["saliency_neg_ok"]
        n = neg.float() / c.temperature
        total = total + torch.where(ok_neg, F.binary_cross_entropy_with_logits(n, torch.zeros_like(n),
                                                                                 reduction="none"), 0.0).sum()
        count = count + ok_neg.sum()
    return total / count.clamp(min=1)


@register_term("video_align")
def video_align_term(c: SetCriterion, x: LossInputs) -> torch.Tensor | None:
    """InfoNCE of ``level_video (L, B, T, F)`` against ``level_text (L, B, F)`` across the videos of the
    batch, at the clips inside a window, mean over levels."""
    if "level_video" not in x.outputs:
        return None
    video, text = x.unit_levels
    return video_alignment_loss(video, text, x.positives, x.video_mask, c.temperature, x.batch.get("meta"),
                                normalized=True)


@register_term("layer_align")
def layer_align_term(c: SetCriterion, x: LossInputs) -> torch.Tensor | None:
    """InfoNCE of ``level_video (L, B, T, F)`` against ``level_text (L, B, F)`` across the levels, at
    the clips inside a window."""
    if "level_video" not in x.outputs:
        return None
    video, text = x.unit_levels
    return layer_alignment_loss(video, text, x.positives, c.temperature, normalized=True)


@register_term("actionness")
def actionness_term(c: SetCriterion, x: LossInputs) -> torch.Tensor | None:
    """L1 between ``pred_actionness (B, Q)`` and the largest IoU of each of ``pred_spans (B, Q, 2)`` with
    a window of its sample."""
    if "pred_actionness" not in x.outputs:
        return None
    return actionness_loss(x.outputs["pred_actionness"], x.outputs["pred_spans"], x.targets)


# ----------------------------------------------------------------------------- the criterion
class SetCriterion(nn.Module):
    """Match every level of predictions to the targets and combine the weighted terms; see the module
    docstring for the terms, their options and inputs. Returns ``(total, {loss_<term>[_<level>]: value})``."""

    def __init__(self, matcher: HungarianMatcher, weights: dict[str, float], *, eos_coef: float = 0.1,
                 label_loss: str = "ce", focal_alpha: float = 0.25, focal_gamma: float = 2.0,
                 iou_loss: str = "giou", saliency_loss: str = "margin", saliency_margin: float = 0.2,
                 rank_levels: int = 12, rank_tau: float = 0.5, temperature: float = 0.07,
                 aux_loss: bool = True, match_k: int = 1, one2many_k: int = 6, one2many_weight: float = 1.0):
        super().__init__()
        if match_k < 1 or one2many_k < 1:
            raise ValueError(f"match_k and one2many_k must be at least 1, got {match_k}, {one2many_k}")
        kinds = {"label_loss": (label_loss, ("ce", "focal")), "iou_loss": (iou_loss, ("giou", "iou")),
                 "saliency_loss": (saliency_loss, ("margin", "sampled_nce"))}
        for name, (value, allowed) in kinds.items():
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        unknown = set(weights) - set(TERMS)
        if unknown:
            raise InputError(f"unknown loss term(s) {sorted(unknown)}; known: {list(TERMS)}", field="loss_weights")
        self.matcher, self.aux_loss = matcher, aux_loss
        self.weights = {k: float(v) for k, v in weights.items()}
        self.terms = [k for k in TERMS if k in self.weights]  # in the order of the total
        self.label_loss, self.eos_coef = label_loss, eos_coef
        self.focal_alpha, self.focal_gamma, self.iou_loss = focal_alpha, focal_gamma, iou_loss
        self.saliency_loss, self.saliency_margin, self.temperature = saliency_loss, saliency_margin, temperature
        self.rank_levels, self.rank_tau = rank_levels, rank_tau
        self.match_k, self.one2many_k, self.one2many_weight = match_k, one2many_k, one2many_weight

    def levels(self, outputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``logits (L, B, Q, C)`` and ``spans (L, B, Q, 2)`` of the levels that are scored, the last one
        last: ``level_logits`` / ``level_spans``, or ``aux_outputs`` and the last level stacked."""
        if "level_spans" in outputs:
            logits, spans = outputs["level_logits"], outputs["level_spans"]
            return (logits, spans) if self.aux_loss else (logits[-1:], spans[-1:])
        levels = [*outputs.get("aux_outputs", []), outputs] if self.aux_loss else [outputs]
        return torch.stack([o["pred_logits"] for o in levels]), torch.stack([o["pred_spans"] for o in levels])

    def forward(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if "targets" in outputs:  # targets augmented by the model in training (GT replication)
            batch = {**batch, **outputs["targets"]}
        if "spans" not in batch:
            raise InputError("missing from the batch", field="spans")
        b = outputs["pred_spans"].shape[0]
        if len(batch["spans"]) != b:
            raise InputError(f"{len(batch['spans'])} target lists for a batch of {b}", field="spans")
        targets = pack_spans(batch["spans"], outputs["pred_spans"].device)
        per_level_terms = PER_LEVEL & set(self.terms)
        groups = int(outputs.get("query_groups", 1))
        match = LevelMatch(*self.levels(outputs), targets, self.matcher, self.match_k, groups) \
            if per_level_terms else None
        x = LossInputs(outputs, batch, targets, match)
        values = {}
        for name in self.terms:
            value = TERMS[name](self, x)
            if value is not None:
                values[name] = value
        total = outputs["pred_spans"].new_zeros(())
        for name, value in values.items():
            total = total + self.weights[name] * (value.sum() if name in PER_LEVEL else value)
        per_level = [name for name in values if name in PER_LEVEL]
        named = {f"loss_{name}": value[-1] if name in PER_LEVEL else value for name, value in values.items()}
        for level in range(match.levels - 1 if match else 0):
            named.update({f"loss_{name}_{level}": values[name][level] for name in per_level})
        if "one2many" in outputs and per_level_terms:  # hybrid matching: the one-to-many branch
            o2m = outputs["one2many"]
            m2 = LevelMatch(*self.levels(o2m), targets, self.matcher, self.one2many_k)
            x2 = LossInputs(o2m, batch, targets, m2)
            for name in (t for t in self.terms if t in PER_LEVEL):
                value = TERMS[name](self, x2)
                total = total + self.one2many_weight * self.weights[name] * value.sum()
                named[f"loss_{name}_o2m"] = value[-1]
        return total, {k: v.detach() for k, v in named.items()}
