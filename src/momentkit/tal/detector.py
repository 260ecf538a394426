"""Anchor-free temporal action detector on feature sequences (ActionFormer / TriDet family).

Architecture (every size is configuration, :class:`DetectorConfig`):

- **Neck**: a 1-D conv projection of the input features (``stem_convs`` convs, kernel 3), then
  ``num_levels`` pyramid levels. Level 0 keeps the input rate; each further level max-pools by 2
  (kernel 3, stride 2, padding 1) and applies one block: ``"sgp"`` (TriDet's Scalable-Granularity
  Perception layer: instant-level gating plus two depth-wise window branches), ``"transformer"``
  (a self-attention encoder layer of :mod:`momentkit.models.transformer`) or ``"conv"``. Masks are
  down-sampled with the features (``mask[:, ::2]``) and padded steps are zeroed after every block.
- **Anchors** ("points"): step ``t`` of level ``l`` is an anchor at time ``t * 2**l`` (feature
  steps) with stride ``2**l`` and regression range ``regression_range[l]``. Every per-anchor tensor
  concatenates the levels: ``(B, P, ...)`` with ``P = sum_l T / 2**l``.
- **Heads** shared across levels, each three 1-D convs with kernel 3 (two hidden conv + norm + ReLU,
  one output conv): class logits ``(B, P, C)`` (bias initialised to the prior 0.01) and begin/end
  distances ``(B, P, 2)`` (ReLU of a per-level learnable scale times the output, times the stride).
- **Targets** (:func:`assign_targets`): centre sampling -- an anchor is positive for a segment when it
  lies strictly within ``center_radius * stride`` of the segment's centre (and inside the segment) and the
  larger of its two distances falls in its level's regression range; an anchor positive for several
  segments takes the shortest one (ties: the union of their classes, as ActionFormer).
- **Losses**: sigmoid focal loss over valid anchors and classes, regression loss on positive anchors
  (``"diou"`` ActionFormer's default, ``"giou"``, ``"iou"`` or ``"mse"`` on stride-normalised
  distances, the thesis's choice), both normalised by the number of positives; total =
  ``cls_weight * cls + reg_weight * reg``.
- **Domain alignment** (``align``, :mod:`momentkit.tal.sada`): with ``align.mode`` other than ``none``,
  batches hold source and target videos (``domain``); the detection losses use the source rows only
  and ``align.weight`` times the alignment loss of every valid anchor is added
  (``loss_align`` and its per-level terms ``align_l<l>``). The gradient reversal schedule follows the
  runner's :meth:`TemporalActionDetector.set_progress`.
- **Inference** (:meth:`TemporalActionDetector.postprocess`): top ``pre_nms_topk`` (anchor, class)
  pairs above ``pre_nms_thresh``, decoded, per-class Soft-NMS (:mod:`momentkit.ops.nms`; defaults
  IoU 0.1, min score 0.001, sigma 0.4), the best ``max_seg_num`` kept, mapped to seconds with the
  dataset's grid -> rows ``{"video": id, "detections": [{"segment": [s, e], "label": class id,
  "score": p}]}``.

The model follows :class:`momentkit.models.contract.Model` for the ``detection`` task; batches are
:class:`momentkit.models.contract.DetectionBatch` (``feats (B, T, D)``, ``mask`` True = valid step,
``segments`` in feature steps, ``labels``, optional ``domain``, ``meta``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from momentkit.models.losses import sigmoid_focal_loss
from momentkit.models.registry import register_model
from momentkit.models.transformer import EncoderLayer
from momentkit.tal.sada import AlignConfig, DomainAlignment

REG_LOSSES = ("diou", "giou", "iou", "mse")
NECKS = ("sgp", "transformer", "conv")


@dataclasses.dataclass
class DetectorConfig:
    input_dim: int = 0  # 0: the runner fills it from the features
    num_classes: int = 0  # 0: the runner fills it from the annotations
    embed_dim: int = 512  # F
    num_levels: int = 6
    neck: str = "sgp"  # one of NECKS
    stem_convs: int = 2
    sgp_kernel: int = 3  # window branch kernel; the wide branch uses sgp_kernel * sgp_k
    sgp_k: float = 1.5
    num_heads: int = 4  # transformer neck
    head_dim: int = 512  # hidden width of the heads
    dropout: float = 0.0
    drop_path: float = 0.1
    regression_range: list[tuple[float, float]] | None = None  # per level; default ActionFormer's
    center_sample: bool = True
    center_radius: float = 1.5
    reg_loss: str = "diou"  # one of REG_LOSSES
    cls_weight: float = 1.0
    reg_weight: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    label_smoothing: float = 0.0
    prior_prob: float = 0.01
    # inference
    pre_nms_thresh: float = 0.001
    pre_nms_topk: int = 2000
    nms_method: str = "gaussian"
    nms_iou: float = 0.1
    nms_sigma: float = 0.4
    min_score: float = 0.001
    max_seg_num: int = 200
    duration_thresh: float = 0.05  # seconds; shorter predictions are dropped
    # unsupervised domain adaptation (two-domain batches)
    align: AlignConfig = dataclasses.field(default_factory=AlignConfig)

    def __post_init__(self) -> None:
        if self.neck not in NECKS:
            raise ValueError(f"neck must be one of {NECKS}, got {self.neck!r}")
        if self.reg_loss not in REG_LOSSES:
            raise ValueError(f"reg_loss must be one of {REG_LOSSES}, got {self.reg_loss!r}")
        if self.regression_range is None:
            r = [(0.0, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, 32.0), (32.0, 64.0), (64.0, 10000.0)]
            extra = [(r[-1][0] * 2 ** i, 10000.0) for i in range(1, max(0, self.num_levels - 6) + 1)]
            r = (r + extra)[: self.num_levels]
            r[-1] = (r[-1][0], 10000.0)
            self.regression_range = r
        if len(self.regression_range) != self.num_levels:
            raise ValueError("regression_range needs one (lo, hi) pair per level")


# ---------------------------------------------------------------------------------------- layers
class MaskedConv1d(nn.Conv1d):
    """Conv1d on ``(B, C, T)`` that zeroes padded steps (``mask (B, T)`` bool) in its output."""

    def forward(self, x, mask):  # type: ignore[override]
        return super().forward(x) * mask.unsqueeze(1).to(x.dtype)


class LayerNorm1d(nn.Module):
    """LayerNorm over the channels of ``(B, C, T)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class SGPBlock(nn.Module):
    """TriDet's SGP layer on ``(B, C, T)``: ``x + fc(x) * phi(x) + (conv_w(x) + conv_kw(x)) * psi(x)``
    with ``phi`` a gate from the video-level mean and ``psi`` a depth-wise conv, then an FFN."""

    def __init__(self, dim: int, kernel: int = 3, k: float = 1.5, drop_path: float = 0.0) -> None:
        super().__init__()
        wide = int(round(kernel * k)) // 2 * 2 + 1
        self.norm = LayerNorm1d(dim)
        self.fc = nn.Conv1d(dim, dim, 1)
        self.global_fc = nn.Conv1d(dim, dim, 1)
        self.psi = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.conv_w = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.conv_kw = nn.Conv1d(dim, dim, wide, padding=wide // 2, groups=dim)
        self.norm2 = LayerNorm1d(dim)
        self.ffn = nn.Sequential(nn.Conv1d(dim, 4 * dim, 1), nn.GELU(), nn.Conv1d(4 * dim, dim, 1))
        self.drop_path = drop_path

    def _dp(self, x):
        if not self.training or self.drop_path == 0.0:
            return x
        keep = torch.rand(x.shape[0], 1, 1, device=x.device) >= self.drop_path
        return x * keep / (1 - self.drop_path)

    def forward(self, x, mask):
        m = mask.unsqueeze(1).to(x.dtype)
        y = self.norm(x)
        mean = (y * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1)
        phi = torch.relu(self.global_fc(mean))
        out = self.fc(y) * phi + (self.conv_w(y) + self.conv_kw(y)) * self.psi(y)
        x = (x + self._dp(out)) * m
        return (x + self._dp(self.ffn(self.norm2(x)))) * m


class ConvBlock(nn.Module):
    """Residual conv block (kernel 3) on ``(B, C, T)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = MaskedConv1d(dim, dim, 3, padding=1)
        self.norm = LayerNorm1d(dim)

    def forward(self, x, mask):
        return (x + torch.relu(self.norm(self.conv(x, mask)))) * mask.unsqueeze(1).to(x.dtype)


class TransformerBlock(nn.Module):
    """Self-attention encoder layer on ``(B, C, T)`` (keys of padded steps masked)."""

    def __init__(self, dim: int, nhead: int, dropout: float, drop_path: float) -> None:
        super().__init__()
        self.layer = EncoderLayer(dim, nhead, 4 * dim, dropout, "gelu", pre_norm=True, drop_path=drop_path)

    def forward(self, x, mask):
        y = self.layer(x.transpose(1, 2), pad_mask=~mask)
        return y.transpose(1, 2) * mask.unsqueeze(1).to(x.dtype)


class Scale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x * self.scale


class Head(nn.Module):
    """Three 1-D convs (kernel 3): two hidden (conv, LayerNorm, ReLU) and one output conv."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, bias_init: float = 0.0) -> None:
        super().__init__()
        self.hidden = nn.ModuleList([MaskedConv1d(in_dim if i == 0 else hidden, hidden, 3, padding=1)
                                     for i in range(2)])
        self.norms = nn.ModuleList([LayerNorm1d(hidden) for _ in range(2)])
        self.out = MaskedConv1d(hidden, out_dim, 3, padding=1)
        nn.init.constant_(self.out.bias, bias_init)

    def forward(self, x, mask):
        for conv, norm in zip(self.hidden, self.norms):
            x = torch.relu(norm(conv(x, mask)))
        return self.out(x, mask)


# ---------------------------------------------------------------------------------------- targets
def make_points(lengths: Sequence[int], regression_range, center_radius: float) -> dict[str, torch.Tensor]:
    """Anchor table over levels with ``lengths[l]`` steps: position, stride, range, level (each (P,))."""
    pos, stride, lo, hi, level = [], [], [], [], []
    for l, n in enumerate(lengths):
        s = 2.0 ** l
        pos.append(torch.arange(n, dtype=torch.float32) * s)
        stride.append(torch.full((n,), s))
        lo.append(torch.full((n,), float(regression_range[l][0])))
        hi.append(torch.full((n,), float(regression_range[l][1])))
        level.append(torch.full((n,), l, dtype=torch.long))
    return {"pos": torch.cat(pos), "stride": torch.cat(stride), "range_lo": torch.cat(lo),
            "range_hi": torch.cat(hi), "level": torch.cat(level), "center_radius": torch.tensor(center_radius)}


def pad_targets(segments: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], device=None):
    """Lists of ``(n_i, 2)`` / ``(n_i,)`` -> ``(B, G, 2)``, ``(B, G)`` long and a ``(B, G)`` bool mask."""
    g = max([len(s) for s in segments] + [1])
    b = len(segments)
    segs = torch.zeros(b, g, 2, device=device)
    labs = torch.zeros(b, g, dtype=torch.long, device=device)
    valid = torch.zeros(b, g, dtype=torch.bool, device=device)
    for i, (s, l) in enumerate(zip(segments, labels)):  # list -> padded tensor (data movement only)
        segs[i, : len(s)] = s.to(device=device, dtype=torch.float32)
        labs[i, : len(l)] = l.to(device)
        valid[i, : len(s)] = True
    return segs, labs, valid


def assign_targets(points: dict, segments: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor,
                   num_classes: int, center_sample: bool = True):
    """Centre sampling. ``segments (B, G, 2)`` in feature steps, ``labels (B, G)``, ``valid (B, G)``.

    Returns ``cls_target (B, P, C)`` (multi-hot), ``reg_target (B, P, 2)`` (begin/end distances
    divided by the anchor stride), ``positive (B, P)`` bool and ``label (B, P)`` long (0 = background,
    i + 1 = class i of the assigned segment).
    """
    pos = points["pos"].to(segments.device)[None, :, None]  # (1, P, 1)
    stride = points["stride"].to(segments.device)[None, :, None]
    lo = points["range_lo"].to(segments.device)[None, :, None]
    hi = points["range_hi"].to(segments.device)[None, :, None]
    st, ed = segments[..., 0][:, None, :], segments[..., 1][:, None, :]  # (B, 1, G)
    left, right = pos - st, ed - pos  # (B, P, G)
    if center_sample:
        c = 0.5 * (st + ed)
        r = stride * float(points["center_radius"])
        cb_l = torch.maximum(c - r, st)
        cb_r = torch.minimum(c + r, ed)
        inside = torch.minimum(pos - cb_l, cb_r - pos) > 0
    else:
        inside = torch.minimum(left, right) > 0
    far = torch.maximum(left, right)
    ok = inside & (far >= lo) & (far <= hi) & valid[:, None, :]
    length = torch.where(ok, ed - st, torch.full_like(left, math.inf))
    min_len, best = length.min(dim=-1)  # (B, P)
    positive = torch.isfinite(min_len)
    ties = ok & (length <= min_len.unsqueeze(-1) + 1e-3)  # (B, P, G)
    onehot = F.one_hot(labels, num_classes).to(segments.dtype)  # (B, G, C)
    cls_target = (torch.einsum("bpg,bgc->bpc", ties.to(segments.dtype), onehot) > 0).to(segments.dtype)
    idx = best.unsqueeze(-1)
    reg = torch.stack([left.gather(-1, idx).squeeze(-1), right.gather(-1, idx).squeeze(-1)], -1)
    reg_target = torch.where(positive.unsqueeze(-1), reg / stride.squeeze(-1).unsqueeze(-1), torch.zeros_like(reg))
    label = torch.where(positive, labels.gather(1, best) + 1, torch.zeros_like(best))
    return cls_target, reg_target, positive, label


def offset_iou_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "diou", eps: float = 1e-8):
    """1-D IoU-type losses on begin/end distances from a shared anchor, ``(N, 2)`` each, both >= 0.

    ``iou``: ``1 - IoU``; ``giou``: ``1 - IoU + (enclosing - union) / enclosing``; ``diou``
    (ActionFormer's ``ctr_diou_loss_1d``): ``1 - IoU + (centre distance / enclosing)^2``. Per-row.
    """
    pl, pr = pred[:, 0], pred[:, 1]
    tl, tr = target[:, 0], target[:, 1]
    inter = torch.minimum(pl, tl) + torch.minimum(pr, tr)
    union = pl + pr + tl + tr - inter
    iou = inter / union.clamp(min=eps)
    if kind == "iou":
        return 1 - iou
    enclosing = torch.maximum(pl, tl) + torch.maximum(pr, tr)
    if kind == "giou":
        return 1 - iou + (enclosing - union) / enclosing.clamp(min=eps)
    if kind == "diou":
        rho = 0.5 * (pr - pl - tr + tl)
        return 1 - iou + (rho / enclosing.clamp(min=eps)) ** 2
    raise ValueError(f"kind must be iou, giou or diou, got {kind!r}")


# ---------------------------------------------------------------------------------------- model
class TemporalActionDetector(nn.Module):
    """The detector (and its domain alignment): ``forward(batch) -> outputs``, ``loss(outputs, batch) ->
    (total, terms)``, ``postprocess(outputs, batch) -> rows``; see the module docstring."""

    def __init__(self, cfg: DetectorConfig | None = None, **kwargs) -> None:
        super().__init__()
        cfg = cfg if cfg is not None else DetectorConfig(**kwargs)
        self.cfg = cfg
        d = cfg.embed_dim
        self.stem = nn.ModuleList([MaskedConv1d(cfg.input_dim if i == 0 else d, d, 3, padding=1)
                                   for i in range(max(1, cfg.stem_convs))])
        self.stem_norms = nn.ModuleList([LayerNorm1d(d) for _ in self.stem])
        self.blocks = nn.ModuleList([self._block(cfg, l) for l in range(cfg.num_levels)])
        self.level_norms = nn.ModuleList([LayerNorm1d(d) for _ in range(cfg.num_levels)])
        self.cls_head = Head(d, cfg.head_dim, cfg.num_classes,
                             bias_init=-math.log((1 - cfg.prior_prob) / cfg.prior_prob))
        self.reg_head = Head(d, cfg.head_dim, 2)
        self.scales = nn.ModuleList([Scale() for _ in range(cfg.num_levels)])
        self.pool = nn.MaxPool1d(3, stride=2, padding=1)
        self.align = DomainAlignment(cfg.align, cfg.num_levels, d, cfg.num_classes)

    def set_progress(self, progress: float) -> None:
        """Fraction of training done, for the gradient reversal schedule of the alignment."""
        self.align.set_progress(progress)

    @staticmethod
    def _block(cfg: DetectorConfig, level: int) -> nn.Module:
        if cfg.neck == "sgp":
            return SGPBlock(cfg.embed_dim, cfg.sgp_kernel, cfg.sgp_k, cfg.drop_path)
        if cfg.neck == "transformer":
            return TransformerBlock(cfg.embed_dim, cfg.num_heads, cfg.dropout, cfg.drop_path)
        return ConvBlock(cfg.embed_dim)

    @property
    def divisor(self) -> int:
        return 2 ** (self.cfg.num_levels - 1)

    def pyramid(self, feats: torch.Tensor, mask: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``feats (B, T, D)``, ``mask (B, T)`` -> per level ``(B, F, T_l)`` features and ``(B, T_l)`` masks.
        ``T`` is first padded to a multiple of ``2**(num_levels - 1)``."""
        t = feats.shape[1]
        pad = (-t) % self.divisor
        if pad:
            feats = F.pad(feats, (0, 0, 0, pad))
            mask = F.pad(mask, (0, pad), value=False)
        x = feats.transpose(1, 2) * mask.unsqueeze(1).to(feats.dtype)
        for conv, norm in zip(self.stem, self.stem_norms):
            x = torch.relu(norm(conv(x, mask)))
        levels, masks = [], []
        for l, block in enumerate(self.blocks):
            if l > 0:
                x = self.pool(x)
                mask = mask[:, ::2]
                x = x * mask.unsqueeze(1).to(x.dtype)
            x = block(x, mask)
            levels.append(self.level_norms[l](x) * mask.unsqueeze(1).to(x.dtype))
            masks.append(mask)
        return levels, masks

    def forward(self, batch: dict) -> dict:
        feats, mask = batch["feats"], batch["mask"]
        levels, masks = self.pyramid(feats, mask)
        cls, reg = [], []
        for l, (x, m) in enumerate(zip(levels, masks)):  # heads are shared; levels differ in length
            cls.append(self.cls_head(x, m).transpose(1, 2))
            reg.append(F.relu(self.scales[l](self.reg_head(x, m))).transpose(1, 2))
        points = make_points([x.shape[-1] for x in levels], self.cfg.regression_range, self.cfg.center_radius)
        return {
            "anchors": torch.cat([x.transpose(1, 2) for x in levels], 1),  # (B, P, F)
            "cls_logits": torch.cat(cls, 1),  # (B, P, C)
            "offsets": torch.cat(reg, 1),  # (B, P, 2), in units of the anchor stride
            "anchor_mask": torch.cat(masks, 1),  # (B, P)
            "points": points,
        }

    def targets(self, outputs: dict, batch: dict):
        segs, labs, valid = pad_targets(batch["segments"], batch["labels"], outputs["cls_logits"].device)
        return assign_targets(outputs["points"], segs, labs, valid, self.cfg.num_classes, self.cfg.center_sample)

    def loss(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Detection losses on the source rows (``batch["domain"] == 0``; all rows without ``domain``)
        plus ``align.weight`` x the alignment loss over both domains."""
        targets = self.targets(outputs, batch)  # target rows have no segments: all background
        domain = batch.get("domain")
        domain = torch.zeros(len(batch["meta"]), dtype=torch.long) if domain is None else domain
        domain = domain.to(outputs["cls_logits"].device)
        src = domain == 0
        sub = {k: v[src] for k, v in outputs.items() if torch.is_tensor(v)}
        total, terms = self.detection_loss(sub, tuple(t[src] for t in targets))
        if self.cfg.align.mode != "none":
            align, aterms = self.align(outputs["anchors"], outputs["anchor_mask"], outputs["points"]["level"],
                                       domain, targets[3], outputs["cls_logits"])
            total = total + self.cfg.align.weight * align
            terms = {**terms, "loss_align": align.detach(), **aterms}
        return total, terms

    def detection_loss(self, outputs: dict, targets) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Focal classification + regression loss of ``outputs`` against assigned ``targets``
        (:func:`assign_targets`), both normalised by the number of positive anchors."""
        cfg = self.cfg
        cls_t, reg_t, positive, _ = targets
        valid = outputs["anchor_mask"]
        positive = positive & valid
        n_pos = positive.sum().clamp(min=1).to(cls_t.dtype)
        if cfg.label_smoothing > 0:
            cls_t = cls_t * (1 - cfg.label_smoothing) + cfg.label_smoothing / (cfg.num_classes + 1)
        cls = sigmoid_focal_loss(outputs["cls_logits"][valid], cls_t[valid], cfg.focal_alpha, cfg.focal_gamma,
                                 reduction="sum") / n_pos
        pred, tgt = outputs["offsets"][positive], reg_t[positive]
        if cfg.reg_loss == "mse":
            reg = F.mse_loss(pred, tgt, reduction="sum") / n_pos
        else:
            reg = offset_iou_loss(pred, tgt, cfg.reg_loss).sum() / n_pos
        total = cfg.cls_weight * cls + cfg.reg_weight * reg
        return total, {"loss_cls": cls.detach(), "loss_reg": reg.detach()}

    @torch.no_grad()
    def postprocess(self, outputs: dict, batch: dict) -> list[dict]:
        """One row per video: ``{"video", "detections": [{"segment": [s, e], "label": class id, "score"}]}``
        in seconds, best first."""
        from momentkit.ops.nms import soft_nms, temporal_nms

        cfg = self.cfg
        probs = outputs["cls_logits"].sigmoid().float().cpu().numpy()
        offsets = outputs["offsets"].float().cpu().numpy()
        valid = outputs["anchor_mask"].cpu().numpy()
        pos = outputs["points"]["pos"].numpy()
        stride = outputs["points"]["stride"].numpy()
        results: list[dict] = []
        for b, meta in enumerate(batch["meta"]):
            n_steps = meta["num_steps"]
            scores = np.where(valid[b][:, None], probs[b], 0.0).ravel()
            keep = np.flatnonzero(scores > cfg.pre_nms_thresh)
            keep = keep[np.argsort(-scores[keep], kind="stable")[: cfg.pre_nms_topk]]
            pt, cl = np.divmod(keep, probs.shape[-1])
            st = pos[pt] - offsets[b, pt, 0] * stride[pt]
            ed = pos[pt] + offsets[b, pt, 1] * stride[pt]
            st, ed = np.clip(st, 0, n_steps), np.clip(ed, 0, n_steps)
            to_s = lambda x: (x + meta["crop_start"]) * meta["stride_seconds"] + meta["offset_seconds"]  # noqa: E731
            st_s, ed_s = to_s(st), to_s(ed)
            if meta.get("duration"):
                st_s, ed_s = np.clip(st_s, 0, meta["duration"]), np.clip(ed_s, 0, meta["duration"])
            ok = (ed_s - st_s) > cfg.duration_thresh
            st_s, ed_s, cl, sc = st_s[ok], ed_s[ok], cl[ok], scores[keep][ok]
            rows = []
            for c in np.unique(cl):  # per-class Soft-NMS, on numpy after the model
                sel = cl == c
                w = np.stack([st_s[sel], ed_s[sel], sc[sel]], 1)
                if cfg.nms_method == "hard":
                    kept = temporal_nms(w, cfg.nms_iou)
                else:
                    kept = soft_nms(w, cfg.nms_method, cfg.nms_sigma, cfg.nms_iou, cfg.min_score)
                rows.extend((float(s), float(e), float(p), int(c)) for s, e, p in kept)
            rows.sort(key=lambda r: -r[2])
            results.append({"video": meta["video"], "detections": [
                {"segment": [round(s, 3), round(e, 3)], "label": c, "score": round(p, 6)}
                for s, e, p, c in rows[: cfg.max_seg_num]]})
        return results


@register_model("tal_detector", config=DetectorConfig, task="detection")
def build_detector(**cfg) -> TemporalActionDetector:
    """The pyramid detector; ``cfg`` are :class:`DetectorConfig` options (``align`` a mapping)."""
    from momentkit.config import from_dict

    return TemporalActionDetector(from_dict(DetectorConfig, cfg, prefix="model"))
