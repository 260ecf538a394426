"""The Moment-DETR family: Moment-DETR (Lei et al. 2021) and QD-DETR (Moon et al. 2023) as configs.

One implementation, :class:`MomentDETR`, switched by :class:`DETRConfig`:

- Moment-DETR: input projections (video with its 2-d TEF, text), encoder over [video; text] tokens (sine
  positions for video, none for text), decoder with learned queries, linear saliency head.
- QD-DETR (``qd_detr`` preset): ``t2v_layers`` text-to-video cross-attention layers first, encoder
  over [SAL; video] (a learned [SAL] token whose encoded output is dotted with the clip tokens for
  saliency), decoder over the video memory with learned 2-d anchors refined layer by layer
  (DAB-DETR style, see :meth:`MomentDETR._decode`), negative-pair and rank-contrastive saliency losses.

Batch (``forward``): ``video_feats (B, T, Dv)``, ``video_mask (B, T)`` (1 = valid), ``text_feats
(B, L, Dt)``, ``text_mask (B, L)``; for the loss also ``spans`` (B tensors (n_i, 2), normalised
centre-width), ``saliency (B, T)``, ``saliency_pos_idx`` / ``saliency_neg_idx (B, P)``; for
post-processing ``meta`` (dicts with ``qid``, ``vid``, ``duration``, ...).
Outputs: ``pred_logits (B, Q, C)``, ``pred_spans (B, Q, 2)`` (normalised cxw), ``saliency_scores
(B, T)`` (padded positions hold unused values), ``aux_outputs`` (one dict per earlier decoder
layer), and in training with ``neg_pair`` and B > 1, ``saliency_scores_neg``.

Matching and calibration variants (thesis 001, chapter 3, Tab. 3.5-3.6 and 3.9; defaults are the
published behaviour, one-to-one matching and no actionness):

- ``matching: one_to_k`` (Tab. 3.5 "1-to-5" / "1-to-k"): every window is matched to up to ``match_k``
  predictions (the windows repeated ``match_k`` times, then one-to-one; ``match_k >= num_queries``
  matches every query), in every decoder layer.
- ``matching: group`` (Group DETR, Chen et al. 2023): in training the decoder runs ``match_groups``
  groups of ``num_queries`` queries, each group on its own (no attention between groups: the groups
  are decoded as separate batch entries) and matched one-to-one on its own; the losses average over
  the groups. Evaluation uses the first group only. Group DETR uses 11 groups.
- ``matching: hybrid`` (H-DETR's hybrid branch scheme, Jia et al. 2023): the ``num_queries`` queries
  keep one-to-one matching; in training a second set of ``hybrid_queries`` queries is decoded by the
  same decoder and heads, apart from the first, and matched one-to-k (``match_k``; H-DETR uses 6
  and 5x as many queries), its losses added with weight ``hybrid_weight``. Evaluation uses the
  one-to-one queries only.
- ``gt_replication: p`` (Tab. 3.5 "+data_augmentation"): in training, a sample gets, with probability
  ``p``, ``gt_replication_copies`` copies of its moments pasted at free places of its video
  (:mod:`momentkit.ops.gt_replication`); ``forward`` then reads the batch's targets and returns the
  augmented ones under ``targets``, which :meth:`loss` uses.
- ``actionness: true`` (Tab. 3.9 "+actionness", TadTR, Liu et al. 2022): an actionness head, a 3-layer
  MLP on ``roi_size`` samples of the encoded clips inside each final predicted span (detached),
  trained by the ``actionness`` term (L1 to the span's largest IoU with a window; weight 1 unless
  ``loss_weights`` sets it); predictions are ranked by ``sqrt(p_fg * actionness)`` (outputs
  ``pred_actionness``, ``pred_confidence (B, Q)``), as SDST.
- Tab. 3.9 "+SFL" (the sigmoid focal loss, whose calibration Komisarenko & Kull 2024 relate to
  temperature scaling) is ``label_loss: focal`` with ``num_classes: 1``.

The decoder's own fixes of the same chapter are ``decoder_self_attn: false`` (-SA) and
``query_dropout: 0.25`` (+QD).

Differences from the reference code: QD-DETR's decoder is DAB-DETR's conditional cross-attention
(content and positional parts concatenated per head, query scaling, width modulation); here the
anchor's positional query is simply added to the content, in the same DETR layers Moment-DETR uses.
Negative pairs are encoded in training only, so an evaluation-mode loss has no ``neg_pair`` term.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from momentkit.errors import InputError
from momentkit.ops.gt_replication import replicate_moments
from momentkit.models.criterion import SetCriterion
from momentkit.models.heads import LinearSaliencyHead, TokenSaliencyHead, foreground_prob
from momentkit.models.layers import MLP, input_projection, inverse_sigmoid
from momentkit.models.matcher import HungarianMatcher
from momentkit.models.position_encoding import (
    build_position_encoding,
    span_sine_embedding,
    temporal_endpoint_feature,
)
from momentkit.models.postprocess import postprocess
from momentkit.models.rdsa import roi_align_1d
from momentkit.models.registry import register_model
from momentkit.models.transformer import (
    CrossAttentionLayer,
    DecoderLayer,
    EncoderLayer,
    TransformerDecoder,
    TransformerEncoder,
)

LOSS_TERMS = ("span", "iou", "label", "saliency", "rank", "neg_pair", "actionness")  # the criterion terms it feeds
MATCHINGS = ("one_to_one", "one_to_k", "group", "hybrid")


@dataclass
class DETRConfig:
    """Every option of :class:`MomentDETR`; defaults are Moment-DETR's published configuration."""

    # inputs: feature widths as they arrive in the batch (QVHighlights: SlowFast 2304 + CLIP 512 +
    # 2-d TEF already appended by the dataset = 2818; CLIP text 512). tef=True makes the model append
    # the TEF itself (for features that do not carry it; video_dim then excludes those 2 dims).
    video_dim: int = 2818
    text_dim: int = 512
    tef: bool = False
    max_video_len: int = 75  # only for video_pos="learned"
    max_text_len: int = 32  # only for text_pos="learned"
    # transformer
    hidden_dim: int = 256
    nheads: int = 8
    ffn_dim: int = 1024
    t2v_layers: int = 0
    enc_layers: int = 2
    dec_layers: int = 2
    dropout: float = 0.1
    input_dropout: float = 0.5
    input_proj_layers: int = 2
    pre_norm: bool = False
    drop_path: float = 0.0
    activation: str = "relu"
    video_pos: str = "sine"
    text_pos: str = "zero"
    encode_text: bool = True
    saliency_token: bool = False
    # decoder
    num_queries: int = 10
    query_type: str = "learned"  # "learned" (DETR) | "anchor" (learned cxw references, refined)
    decoder_self_attn: bool = True
    query_dropout: float = 0.0
    num_classes: int = 2  # 2: softmax foreground/background; 1: sigmoid (focal loss)
    aux_loss: bool = True
    # losses and matching (terms of momentkit.models.criterion; "iou" is 1 - gIoU here, and the old
    # key "giou" is read as "iou")
    neg_pair: bool = False
    loss_weights: dict = field(default_factory=lambda: {"span": 10.0, "iou": 1.0, "label": 4.0, "saliency": 1.0})
    label_loss: str = "ce"  # "ce" (num_classes 2) | "focal" (num_classes 1)
    eos_coef: float = 0.1
    saliency_margin: float = 0.2
    rank_levels: int = 12
    rank_tau: float = 0.5
    cost_class: float = 4.0
    cost_span: float = 10.0
    cost_giou: float = 1.0
    # matching and calibration variants (see the module docstring); defaults: published behaviour
    matching: str = "one_to_one"  # "one_to_one" | "one_to_k" | "group" | "hybrid"
    match_k: int = 5  # one_to_k: predictions per window; hybrid: k of the one-to-many branch
    match_groups: int = 11  # group: query groups in training
    hybrid_queries: int = 50  # hybrid: queries of the one-to-many branch (training only)
    hybrid_weight: float = 1.0  # hybrid: weight of the one-to-many branch's losses
    gt_replication: float = 0.0  # probability that a training sample gets copies of its moments
    gt_replication_copies: int = 1  # copies pasted into an augmented sample
    actionness: bool = False  # actionness head (TadTR); adds the "actionness" loss term
    roi_size: int = 16  # actionness: samples of the encoded clips per predicted span

    def __post_init__(self):
        choices = {"query_type": ("learned", "anchor"), "label_loss": ("ce", "focal"),
                   "activation": ("relu", "gelu"), "video_pos": ("sine", "learned", "zero"),
                   "text_pos": ("sine", "learned", "zero"), "matching": MATCHINGS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"must be one of {allowed}, got {getattr(self, name)!r}", field=name)
        for name in ("video_dim", "text_dim", "hidden_dim", "nheads", "num_queries", "dec_layers",
                     "input_proj_layers", "ffn_dim", "match_k", "match_groups", "hybrid_queries",
                     "gt_replication_copies", "roi_size"):
            if getattr(self, name) < 1:
                raise InputError(f"must be at least 1, got {getattr(self, name)}", field=name)
        if self.hidden_dim % self.nheads or self.hidden_dim % 4:
            raise InputError(f"must be a multiple of nheads ({self.nheads}) and of 4", field="hidden_dim")
        for name in ("query_dropout", "dropout", "input_dropout", "drop_path"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InputError(f"must be in [0, 1), got {getattr(self, name)}", field=name)
        if not 0.0 <= self.gt_replication <= 1.0:
            raise InputError(f"must be in [0, 1], got {self.gt_replication}", field="gt_replication")
        if not self.hybrid_weight >= 0.0:
            raise InputError(f"must be at least 0, got {self.hybrid_weight}", field="hybrid_weight")
        if (self.label_loss == "ce") != (self.num_classes == 2) or self.num_classes not in (1, 2):
            raise InputError("label_loss 'ce' needs num_classes 2, 'focal' needs num_classes 1",
                             field="num_classes")
        if not (self.encode_text or self.t2v_layers):
            raise InputError("the text must reach the model: set encode_text or t2v_layers > 0",
                             field="encode_text")
        if "giou" in self.loss_weights:  # the name of the "iou" term before all models shared one criterion
            if "iou" in self.loss_weights:
                raise InputError("give 'iou' (1 - gIoU) or its old name 'giou', not both", field="loss_weights")
            self.loss_weights = {("iou" if k == "giou" else k): v for k, v in self.loss_weights.items()}
        unknown = set(self.loss_weights) - set(LOSS_TERMS)
        if unknown:
            raise InputError(f"unknown loss term(s) {sorted(unknown)}; known: {list(LOSS_TERMS)}",
                             field="loss_weights")
        if "actionness" in self.loss_weights and not self.actionness:
            raise InputError("the 'actionness' term needs the actionness head: set actionness: true",
                             field="loss_weights")
        if self.actionness and "actionness" not in self.loss_weights:
            self.loss_weights = {**self.loss_weights, "actionness": 1.0}  # a new dict: presets stay as they are


PRESETS: dict[str, dict] = {
    "moment_detr": {},
    "qd_detr": dict(
        t2v_layers=2, encode_text=False, saliency_token=True, query_type="anchor", neg_pair=True,
        loss_weights={"span": 10.0, "iou": 1.0, "label": 4.0, "saliency": 1.0, "rank": 1.0, "neg_pair": 1.0},
    ),
}


def make_config(preset: str = "moment_detr", **overrides) -> DETRConfig:
    """A :class:`DETRConfig` from a preset name and overrides; unknown keys raise :class:`InputError`."""
    known = {f.name for f in dataclasses.fields(DETRConfig)}
    for key in overrides:
        if key not in known:
            raise InputError(f"unknown model option {key!r}", field=key)
    return DETRConfig(**{**PRESETS[preset], **overrides})


def _check_inputs(batch: dict, cfg: DETRConfig):
    for key in ("video_feats", "video_mask", "text_feats", "text_mask"):
        if key not in batch:
            raise InputError("missing from the batch", field=key)
    v, vm, t, tm = batch["video_feats"], batch["video_mask"], batch["text_feats"], batch["text_mask"]
    for name, x, width, m in (("video", v, cfg.video_dim, vm), ("text", t, cfg.text_dim, tm)):
        if x.ndim != 3 or x.shape[-1] != width:
            raise InputError(f"expected shape (B, N, {width}), got {tuple(x.shape)}", field=f"{name}_feats")
        if tuple(m.shape) != tuple(x.shape[:2]):
            raise InputError(f"expected shape {tuple(x.shape[:2])}, got {tuple(m.shape)}", field=f"{name}_mask")
        if not bool(m.bool().any(1).all()):
            raise InputError("every sample needs at least one valid position", field=f"{name}_mask")
    return v, vm.bool(), t, tm.bool()


class MomentDETR(nn.Module):
    """DETR-style moment retrieval + saliency model; see the module docstring."""

    def __init__(self, config: DETRConfig | None = None):
        super().__init__()
        cfg = self.config = config or DETRConfig()
        d = cfg.hidden_dim
        self.video_proj = input_projection(cfg.video_dim + 2 * cfg.tef, d, cfg.input_proj_layers, cfg.input_dropout)
        self.text_proj = input_projection(cfg.text_dim, d, cfg.input_proj_layers, cfg.input_dropout)
        self.video_pos = build_position_encoding(cfg.video_pos, d, cfg.max_video_len)
        self.text_pos = build_position_encoding(cfg.text_pos, d, cfg.max_text_len)
        kw = dict(d_model=d, nhead=cfg.nheads, dim_ff=cfg.ffn_dim, dropout=cfg.dropout,
                  activation=cfg.activation, pre_norm=cfg.pre_norm, drop_path=cfg.drop_path)
        self.t2v = nn.ModuleList(CrossAttentionLayer(**kw) for _ in range(cfg.t2v_layers))
        self.encoder = TransformerEncoder(EncoderLayer(**kw), cfg.enc_layers,
                                          nn.LayerNorm(d) if cfg.pre_norm else None)
        self.decoder = TransformerDecoder(DecoderLayer(**kw, self_attn=cfg.decoder_self_attn), cfg.dec_layers,
                                          nn.LayerNorm(d))
        for p in (*self.t2v.parameters(), *self.encoder.parameters(), *self.decoder.parameters()):
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        if cfg.saliency_token:
            self.sal_token = nn.Parameter(torch.randn(d))
            self.sal_pos = nn.Parameter(torch.randn(d))
        self.saliency_head = TokenSaliencyHead(d) if cfg.saliency_token else LinearSaliencyHead(d)
        self.class_head = nn.Linear(d, cfg.num_classes)
        self.span_head = MLP(d, d, 2, 3)
        # group matching: match_groups groups of queries in one table, the first group evaluated
        n_queries = cfg.num_queries * (cfg.match_groups if cfg.matching == "group" else 1)
        if cfg.query_type == "learned":
            self.query_embed = nn.Embedding(n_queries, d)
            if cfg.matching == "hybrid":
                self.query_embed_o2m = nn.Embedding(cfg.hybrid_queries, d)
        else:
            self.anchors = nn.Embedding(n_queries, 2)  # (centre, width) logits
            if cfg.matching == "hybrid":
                self.anchors_o2m = nn.Embedding(cfg.hybrid_queries, 2)
            self.ref_point_head = MLP(d, d, d, 2)
            nn.init.zeros_(self.span_head.layers[-1].weight)  # first predictions = the anchors
            nn.init.zeros_(self.span_head.layers[-1].bias)
        if cfg.actionness:
            self.actionness_head = MLP(cfg.roi_size * d, d, 1, 3)
        self.criterion = SetCriterion(
            HungarianMatcher(cfg.cost_class, cfg.cost_span, cfg.cost_giou,
                             "focal" if cfg.label_loss == "focal" else "prob"),
            cfg.loss_weights, eos_coef=cfg.eos_coef, label_loss=cfg.label_loss, iou_loss="giou",
            saliency_loss="margin", saliency_margin=cfg.saliency_margin, rank_levels=cfg.rank_levels,
            rank_tau=cfg.rank_tau, aux_loss=cfg.aux_loss,
            match_k=cfg.match_k if cfg.matching == "one_to_k" else 1,
            one2many_k=cfg.match_k, one2many_weight=cfg.hybrid_weight,
        )

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict) -> dict:
        cfg = self.config
        v, vm, t, tm = _check_inputs(batch, cfg)
        v, targets = self.augment(batch, v)
        dtype = self.class_head.weight.dtype
        v, t = v.to(dtype), t.to(dtype)
        if cfg.tef:
            v = torch.cat([v, temporal_endpoint_feature(vm).to(dtype)], dim=-1)
        v, t = self.video_proj(v), self.text_proj(t)
        pos_v, pos_t = self.video_pos(vm).to(v), self.text_pos(tm).to(t)
        enc = self._encode(v, vm, pos_v, t, tm, pos_t)
        out = self.decoder_outputs(enc["memory"], ~enc["memory_mask"], enc["memory_pos"], enc["clips"], vm)
        out["saliency_scores"] = self.saliency_head(enc["clips"], enc["token"])
        if targets is not None:
            out["targets"] = targets
        if cfg.neg_pair and self.training and v.shape[0] > 1:
            # each video paired with the next sample's query (QD-DETR negative pairs)
            neg = self._encode(v, vm, pos_v, t.roll(-1, 0), tm.roll(-1, 0), pos_t.roll(-1, 0))
            out["saliency_scores_neg"] = self.saliency_head(neg["clips"], neg["token"])
        return out

    # ------------------------------------------------------------------ what every DETR-style model shares
    def augment(self, batch: dict, video: torch.Tensor) -> tuple[torch.Tensor, dict | None]:
        """GT replication (``gt_replication``, training only): the video features ``(B, T, Dv)`` with
        pasted moments and the augmented targets (for ``outputs["targets"]``), or ``video`` and None."""
        cfg = self.config
        if not (cfg.gt_replication > 0 and self.training and "spans" in batch):
            return video, None
        targets = replicate_moments({**batch, "video_feats": video}, cfg.gt_replication, cfg.gt_replication_copies)
        return targets.pop("video_feats"), targets

    def decoder_outputs(self, memory, memory_pad, pos, clips=None, clip_mask=None) -> dict:
        """Decode the queries over ``memory (B, S, d)`` (``memory_pad (B, S)`` True = padding, ``pos``) and
        apply the heads: ``pred_logits (B, Q, C)``, ``pred_spans (B, Q, 2)``, ``aux_outputs``, and, as the
        config asks, ``query_groups`` and ``Q = match_groups * num_queries`` predictions (group matching,
        training), ``one2many`` (hybrid matching, training), ``pred_actionness`` / ``pred_confidence (B,
        Q)`` (actionness: RoI samples of ``clips (B, T, d)``, ``clip_mask (B, T)`` True = valid clip).
        A DETR-style model built on this class calls it, so that the matching and calibration variants
        of the module docstring apply to it."""
        cfg = self.config
        groups = cfg.match_groups if cfg.matching == "group" and self.training else 1
        queries = (self.query_embed if cfg.query_type == "learned" else self.anchors).weight
        hs, spans = self._decode(memory, memory_pad, pos, queries[:groups * cfg.num_queries], groups)
        out = self._heads(hs, spans)
        if groups > 1:
            out["query_groups"] = groups
        if cfg.matching == "hybrid" and self.training:
            o2m = (self.query_embed_o2m if cfg.query_type == "learned" else self.anchors_o2m).weight
            out["one2many"] = self._heads(*self._decode(memory, memory_pad, pos, o2m))
        if cfg.actionness:
            if clips is None or clip_mask is None:
                raise ValueError("the actionness head needs the encoded clips and their mask")
            roi = roi_align_1d(clips, out["pred_spans"].detach(), clip_mask.sum(1), cfg.roi_size)  # (B, Q, size, d)
            actionness = self.actionness_head(roi.flatten(2))[..., 0].float().sigmoid()
            out["pred_actionness"] = actionness
            out["pred_confidence"] = (foreground_prob(out["pred_logits"].float()) * actionness).sqrt()
        return out

    def _heads(self, hs: torch.Tensor, spans: torch.Tensor) -> dict:
        """Class logits of every layer's hidden states ``(L, B, Q, d)``: the last layer's predictions and
        the earlier layers' as ``aux_outputs``."""
        logits = self.class_head(hs)
        out = {"pred_logits": logits[-1], "pred_spans": spans[-1]}
        if self.config.aux_loss:
            out["aux_outputs"] = [{"pred_logits": a, "pred_spans": b} for a, b in zip(logits[:-1], spans[:-1])]
        return out

    def _encode(self, v, vm, pos_v, t, tm, pos_t) -> dict:
        for layer in self.t2v:
            v = layer(v, t, ~tm, pos_v, pos_t)
        src, mask, pos = [v], [vm], [pos_v]
        if self.config.encode_text:
            src, mask, pos = src + [t], mask + [tm], pos + [pos_t]
        k = int(self.config.saliency_token)
        if k:
            b = v.shape[0]
            src.insert(0, self.sal_token.expand(b, 1, -1))
            pos.insert(0, self.sal_pos.expand(b, 1, -1))
            mask.insert(0, vm.new_ones(b, 1))
        src, mask, pos = torch.cat(src, 1), torch.cat(mask, 1), torch.cat(pos, 1)
        memory = self.encoder(src, ~mask, pos)
        n = v.shape[1]
        return {
            "clips": memory[:, k : k + n],
            "token": memory[:, 0] if k else None,
            "memory": memory[:, k:],
            "memory_mask": mask[:, k:],
            "memory_pos": pos[:, k:],
        }

    def _query_keep(self, b: int, n: int, device) -> torch.Tensor | None:
        """(B, n, 1) mask zeroing each learnable query with probability ``query_dropout`` (training only)."""
        p = self.config.query_dropout
        if not self.training or p == 0.0:
            return None
        return (torch.rand(b, n, 1, device=device) >= p).float()

    def _decode(self, memory, memory_pad, pos, queries: torch.Tensor | None = None, groups: int = 1):
        """Decoder over the memory for the learned ``queries`` (``(G * n, d)`` embeddings or ``(G * n, 2)``
        anchor logits; None: the ``num_queries`` evaluated, which leaves the variants of
        :meth:`decoder_outputs` out); returns hidden states and spans of every layer, ``(L, B, G * n, *)``.

        The ``groups`` consecutive groups of ``n`` queries are decoded apart (as G batch entries each,
        so no query attends to another group's). ``anchor`` queries (QD-DETR, simplified DAB-DETR):
        each query has a learned (centre, width) reference; its positional query is
        ``MLP(sine(reference))``; each layer predicts a delta in logit space, ``span = sigmoid(delta +
        logit(reference))``, which becomes the next layer's (detached) reference. Dropped queries have
        their learned embedding (anchor logits) zeroed.
        """
        cfg = self.config
        b, d = memory.shape[0], cfg.hidden_dim
        if queries is None:
            if self.training and (cfg.matching in ("group", "hybrid") or cfg.actionness or cfg.gt_replication):
                raise NotImplementedError(
                    f"{type(self).__name__}.forward decodes without MomentDETR.decoder_outputs, so the options "
                    "matching (group, hybrid), actionness and gt_replication would be ignored; call "
                    "augment() and decoder_outputs() as MomentDETR.forward does")
            queries = (self.query_embed if cfg.query_type == "learned" else self.anchors).weight[:cfg.num_queries]
        n = queries.shape[0] // groups
        if groups > 1:  # (G * B, ...): group-major batch entries
            memory, pos = memory.repeat(groups, 1, 1), pos.repeat(groups, 1, 1)
            memory_pad = memory_pad.repeat(groups, 1)
            queries = queries.view(groups, 1, n, -1).expand(groups, b, n, -1).flatten(0, 1)
        else:
            queries = queries.expand(b, -1, -1)
        keep = self._query_keep(queries.shape[0], n, memory.device)
        tgt = memory.new_zeros(queries.shape[0], n, d)
        if cfg.query_type == "learned":
            query_pos = queries if keep is None else queries * keep
            hs = self.decoder(tgt, memory, memory_pad, pos, query_pos)
            spans = self.span_head(hs).sigmoid()
        else:
            ref = (queries if keep is None else queries * keep).sigmoid()
            hs, spans = [], []
            for layer in self.decoder.layers:
                query_pos = self.ref_point_head(span_sine_embedding(ref, d))
                tgt = layer(tgt, memory, memory_pad, pos, query_pos)
                h = self.decoder.norm(tgt)
                span = (self.span_head(h) + inverse_sigmoid(ref)).sigmoid()
                hs.append(h)
                spans.append(span)
                ref = span.detach()
            hs, spans = torch.stack(hs), torch.stack(spans)
        if groups > 1:  # (L, G * B, n, *) -> (L, B, G * n, *)
            hs, spans = (x.view(x.shape[0], groups, b, n, -1).transpose(1, 2).flatten(2, 3) for x in (hs, spans))
        return hs, spans

    # ------------------------------------------------------------------ loss / predictions
    def loss(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total and the detached value of every term of ``loss_weights`` (``loss_span``,
        ``loss_iou``, ``loss_label``, + ``_<layer>`` for the earlier decoder layers, ``loss_saliency``,
        ``loss_rank``, ``loss_neg_pair``; see :mod:`momentkit.models.criterion`)."""
        return self.criterion(outputs, batch)

    def postprocess(self, outputs: dict, batch: dict, **kwargs) -> list[dict]:
        """Prediction rows in seconds (see :func:`momentkit.models.postprocess.postprocess`), ranked by
        the foreground probability, or by ``pred_confidence`` with the actionness head."""
        if "pred_confidence" in outputs:  # postprocess() reads sigmoid(logit) of a single-logit head
            conf = outputs["pred_confidence"].detach().double()
            outputs = {**outputs, "pred_logits": torch.logit(conf)[..., None]}
        return postprocess(outputs, batch, **kwargs)


@register_model("moment_detr", config=DETRConfig)
def moment_detr(**cfg) -> MomentDETR:
    """Moment-DETR (Lei et al. 2021), published configuration; ``cfg`` overrides any option."""
    return MomentDETR(make_config("moment_detr", **cfg))


@register_model("qd_detr", config=DETRConfig, presets=PRESETS["qd_detr"])
def qd_detr(**cfg) -> MomentDETR:
    """QD-DETR (Moon et al. 2023): T2V layers, [SAL] token, anchor queries, negative pairs."""
    return MomentDETR(make_config("qd_detr", **cfg))
