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
from momentkit.models.criterion import SetCriterion
from momentkit.models.heads import LinearSaliencyHead, TokenSaliencyHead
from momentkit.models.layers import MLP, input_projection, inverse_sigmoid
from momentkit.models.matcher import HungarianMatcher
from momentkit.models.position_encoding import (
    build_position_encoding,
    span_sine_embedding,
    temporal_endpoint_feature,
)
from momentkit.models.postprocess import postprocess
from momentkit.models.registry import register_model
from momentkit.models.transformer import (
    CrossAttentionLayer,
    DecoderLayer,
    EncoderLayer,
    TransformerDecoder,
    TransformerEncoder,
)

LOSS_TERMS = ("span", "iou", "label", "saliency", "rank", "neg_pair")  # the criterion terms this model feeds


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

    def __post_init__(self):
        choices = {"query_type": ("learned", "anchor"), "label_loss": ("ce", "focal"),
                   "activation": ("relu", "gelu"), "video_pos": ("sine", "learned", "zero"),
                   "text_pos": ("sine", "learned", "zero")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"must be one of {allowed}, got {getattr(self, name)!r}", field=name)
        for name in ("video_dim", "text_dim", "hidden_dim", "nheads", "num_queries", "dec_layers",
                     "input_proj_layers", "ffn_dim"):
            if getattr(self, name) < 1:
                raise InputError(f"must be at least 1, got {getattr(self, name)}", field=name)
        if self.hidden_dim % self.nheads or self.hidden_dim % 4:
            raise InputError(f"must be a multiple of nheads ({self.nheads}) and of 4", field="hidden_dim")
        for name in ("query_dropout", "dropout", "input_dropout", "drop_path"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InputError(f"must be in [0, 1), got {getattr(self, name)}", field=name)
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
        if cfg.query_type == "learned":
            self.query_embed = nn.Embedding(cfg.num_queries, d)
        else:
            self.anchors = nn.Embedding(cfg.num_queries, 2)  # (centre, width) logits
            self.ref_point_head = MLP(d, d, d, 2)
            nn.init.zeros_(self.span_head.layers[-1].weight)  # first predictions = the anchors
            nn.init.zeros_(self.span_head.layers[-1].bias)
        self.criterion = SetCriterion(
            HungarianMatcher(cfg.cost_class, cfg.cost_span, cfg.cost_giou,
                             "focal" if cfg.label_loss == "focal" else "prob"),
            cfg.loss_weights, eos_coef=cfg.eos_coef, label_loss=cfg.label_loss, iou_loss="giou",
            saliency_loss="margin", saliency_margin=cfg.saliency_margin, rank_levels=cfg.rank_levels,
            rank_tau=cfg.rank_tau, aux_loss=cfg.aux_loss,
        )

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict) -> dict:
        cfg = self.config
        v, vm, t, tm = _check_inputs(batch, cfg)
        dtype = self.class_head.weight.dtype
        v, t = v.to(dtype), t.to(dtype)
        if cfg.tef:
            v = torch.cat([v, temporal_endpoint_feature(vm).to(dtype)], dim=-1)
        v, t = self.video_proj(v), self.text_proj(t)
        pos_v, pos_t = self.video_pos(vm).to(v), self.text_pos(tm).to(t)
        enc = self._encode(v, vm, pos_v, t, tm, pos_t)
        hs, spans = self._decode(enc["memory"], ~enc["memory_mask"], enc["memory_pos"])
        logits = self.class_head(hs)
        out = {
            "pred_logits": logits[-1],
            "pred_spans": spans[-1],
            "saliency_scores": self.saliency_head(enc["clips"], enc["token"]),
        }
        if cfg.aux_loss:
            out["aux_outputs"] = [{"pred_logits": a, "pred_spans": b} for a, b in zip(logits[:-1], spans[:-1])]
        if cfg.neg_pair and self.training and v.shape[0] > 1:
            # each video paired with the next sample's query (QD-DETR negative pairs)
            neg = self._encode(v, vm, pos_v, t.roll(-1, 0), tm.roll(-1, 0), pos_t.roll(-1, 0))
            out["saliency_scores_neg"] = self.saliency_head(neg["clips"], neg["token"])
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

    def _query_keep(self, b: int, device) -> torch.Tensor | None:
        """(B, Q, 1) mask zeroing each learnable query with probability ``query_dropout`` (training only)."""
        p = self.config.query_dropout
        if not self.training or p == 0.0:
            return None
        return (torch.rand(b, self.config.num_queries, 1, device=device) >= p).float()

    def _decode(self, memory, memory_pad, pos):
        """Decoder over the memory; returns hidden states and spans of every layer, (L, B, Q, *).

        ``anchor`` queries (QD-DETR, simplified DAB-DETR): each query has a learned (centre, width)
        reference; its positional query is ``MLP(sine(reference))``; each layer predicts a delta in
        logit space, ``span = sigmoid(delta + logit(reference))``, which becomes the next layer's
        (detached) reference. Dropped queries have their learned embedding (anchor logits) zeroed.
        """
        cfg = self.config
        b, d = memory.shape[0], cfg.hidden_dim
        keep = self._query_keep(b, memory.device)
        tgt = memory.new_zeros(b, cfg.num_queries, d)
        if cfg.query_type == "learned":
            query_pos = self.query_embed.weight.expand(b, -1, -1)
            if keep is not None:
                query_pos = query_pos * keep
            hs = self.decoder(tgt, memory, memory_pad, pos, query_pos)
            return hs, self.span_head(hs).sigmoid()
        anchors = self.anchors.weight.expand(b, -1, -1)
        ref = (anchors if keep is None else anchors * keep).sigmoid()
        hs, spans = [], []
        for layer in self.decoder.layers:
            query_pos = self.ref_point_head(span_sine_embedding(ref, d))
            tgt = layer(tgt, memory, memory_pad, pos, query_pos)
            h = self.decoder.norm(tgt)
            span = (self.span_head(h) + inverse_sigmoid(ref)).sigmoid()
            hs.append(h)
            spans.append(span)
            ref = span.detach()
        return torch.stack(hs), torch.stack(spans)

    # ------------------------------------------------------------------ loss / predictions
    def loss(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total and the detached value of every term of ``loss_weights`` (``loss_span``,
        ``loss_iou``, ``loss_label``, + ``_<layer>`` for the earlier decoder layers, ``loss_saliency``,
        ``loss_rank``, ``loss_neg_pair``; see :mod:`momentkit.models.criterion`)."""
        return self.criterion(outputs, batch)

    def postprocess(self, outputs: dict, batch: dict, **kwargs) -> list[dict]:
        """Prediction rows in seconds (see :func:`momentkit.models.postprocess.postprocess`)."""
        return postprocess(outputs, batch, **kwargs)


@register_model("moment_detr", config=DETRConfig)
def moment_detr(**cfg) -> MomentDETR:
    """Moment-DETR (Lei et al. 2021), published configuration; ``cfg`` overrides any option."""
    return MomentDETR(make_config("moment_detr", **cfg))


@register_model("qd_detr", config=DETRConfig, presets=PRESETS["qd_detr"])
def qd_detr(**cfg) -> MomentDETR:
    """QD-DETR (Moon et al. 2023): T2V layers, [SAL] token, anchor queries, negative pairs."""
    return MomentDETR(make_config("qd_detr", **cfg))
