"""SDST: the Sparse-Dense Side-Tuner with Reference-based Deformable Self-Attention (ICCV 2025).

A side-tuner over K intermediate layers of a frozen video-language backbone. One set of weights (the
"SDST layer") is applied recurrently over the K levels, refining two streams:

- dense stream (one embedding per clip, for highlight detection):
  ``V = MLP_v(V~^l)``, ``T = MLP_t(T~^l)``; ``D := beta_l D + (1 - beta_l) V``;
  ``D = FFN(SA(CA(D, T)))`` (sinusoidal clip positions on the attention queries/keys);
- sparse stream (M recurrent decoder queries = centre-width references R and latents H, for moment
  retrieval): the sub-layers of ``sparse_order`` (default ``CA(H, T)``, ``SA(H)``, video attention
  over ``D`` -- RDSA by default --, ``FFN``), then the references are refined.

Every sub-layer is residual with DropPath and (post-)LayerNorm (:mod:`.transformer`, :mod:`.rdsa`).
After the last level: saliency ``cos(D^K, pool(T^K))`` with a learnable attention pooling of the text
tokens; per-level class logits and spans (Hungarian matching and set losses at every level); an
actionness score from 16 RoI samples of ``D^K`` inside each final segment; inference confidence
``sqrt(p_cls * actionness)`` (soft-NMS by default in :meth:`SDST.postprocess`).

Choices where the paper leaves room (each visible in :class:`SDSTConfig`):

- Gate: ``beta_l = sigmoid(g_l)`` with ``g_l`` zero-initialised (R2-Tuning's gate, which this stream
  follows), so ``beta`` starts at 0.5 and stays in (0, 1). ``D^0 = 0``, so level 1 gives ``V^1 / 2``.
- References: ``R^{l+1} = sigmoid(inverse_sigmoid(R^l) + MLP_reg(H^l))`` (DAB-DETR); the spans of
  level ``l`` keep their gradient for its losses, but ``R^{l+1}`` is detached before it conditions
  the next level (DAB-/DN-DETR). Each level's positional query is ``MLP(sine(R^l))`` (DAB-DETR), added
  to the latents in the query-side attentions. The regression MLP's last layer starts at zero, so
  level 1 first predicts its references. Initial references: centres uniform in (0, 1), widths uniform
  in (0.05, 0.5); latents ``N(0, 1)``.
- Levels: the last ``num_levels`` levels of the input; a single-level input (B, T, F) is re-used at
  every level (the paper's "last-layer features only" ablation). ``shared: false`` gives every level
  its own projections, dense and sparse sub-layers; heads, pooling and queries are always shared.
- Initialisation: Xavier for attention, Kaiming (normal, ReLU gain) for FFNs, zero biases; the class
  bias starts at the focal prior ``p = 0.01`` (Deformable DETR); deformable heads as in :mod:`.rdsa`.
- Losses: the shared :class:`~momentkit.models.criterion.SetCriterion` (as Moment-DETR's), with the
  :class:`HungarianMatcher` (focal class cost, L1, gIoU) matching every level on its own, all levels in
  one cost matrix; set terms ``span``, ``iou`` (``1 - IoU``), ``label`` (focal) at every level,
  ``saliency`` (SampledNCE), ``video_align``, ``layer_align``, ``actionness`` (see :mod:`.criterion`);
  not in the paper, for query dependence: ``query_contrast`` (with ``neg_pairs``) and ``saliency_bce``.
- The alignment losses use the projected clips ``V^l`` and ``pool(T^l)`` of every level; their
  positives are the clips that overlap a ground-truth window (see :mod:`.sdst_losses`).

Batch: ``video_feats (B, K, T, Fv)`` or ``(B, T, Fv)``, ``video_mask (B, T)``, ``text_feats
(B, K, L, Ft)`` or ``(B, L, Ft)``, ``text_mask (B, L)``; for the loss ``spans``, ``saliency``,
``saliency_pos_idx`` (+ ``saliency_valid``), ``meta`` (``vid``); for post-processing ``meta``.
Optionally ``video_index`` / ``text_index (B,)`` int64 (both or neither): row ``b`` pairs video
``video_index[b]`` with query ``text_index[b]``, the features and masks then holding the distinct
videos ``(Nv, ...)`` and queries ``(Nt, ...)``; each one's input projection is computed once, then
gathered (the same outputs as the gathered batch; :class:`momentkit.predict.Predictor` pairs every
window of a long video with every query this way).
Outputs: ``pred_logits (B, M, 1)``, ``pred_spans (B, M, 2)`` (normalised cxw), ``saliency_scores
(B, T)``, ``pred_actionness`` / ``pred_confidence (B, M)``, ``aux_outputs`` (levels 1..K-1: logits and
spans), ``level_logits (K, B, M, 1)`` / ``level_spans (K, B, M, 2)`` (every level stacked; the set
losses read these), ``level_video (K, B, T, F)``, ``level_text (K, B, F)`` (for the alignment losses),
``betas (K,)``.

Speed: the training step avoids host-device synchronisations (one for the input masks, one for the
matcher's cost matrix), boolean-mask indexing and per-sample Python loops; clips are sampled with
row gathers (:mod:`.rdsa`); ``benchmarks/train_step.py --count-ops`` counts the dispatched operations.
The attentions get no padding mask when nothing is padded (learnt in the same synchronisation as the
masks' check; the same result, and a faster attention kernel), and a single-level input is projected
once for every level unless input dropout is drawn (training), when each level draws its own mask.

``momentkit params CONFIG`` prints the trainable parameters of a config's model, for SDST per part
(:func:`parameter_breakdown`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from momentkit.errors import InputError
from momentkit.models.criterion import SetCriterion
from momentkit.models.layers import MLP, input_projection, inverse_sigmoid
from momentkit.models.matcher import HungarianMatcher
from momentkit.models.position_encoding import build_position_encoding, span_sine_embedding
from momentkit.models.postprocess import postprocess
from momentkit.models.rdsa import (
    RDSA,
    SAMPLE_POINTS,
    DeformableAttentionBlock,
    DeformableCrossAttention,
    roi_align_1d,
)
from momentkit.models.registry import register_model
from momentkit.models.transformer import AttentionBlock, FeedForwardBlock
from momentkit.models.utils import count_parameters

SPARSE_MODULES = ("text_ca", "self_attn", "video_attn", "ffn")
ATTENTIONS = ("rdsa", "deformable", "ca")
LOSS_TERMS = ("span", "iou", "label", "saliency", "query_contrast", "saliency_bce", "video_align", "layer_align",
              "actionness")
TEXT_POOLS = ("attention", "mean")


@dataclass
class SDSTConfig:
    """Every option of :class:`SDST`; defaults are the paper's QVHighlights model (Tab. A)."""

    # inputs (InternVideo2-1B: video 768, text 1024)
    video_dim: int = 768
    text_dim: int = 1024
    num_levels: int = 4  # K: the last K levels of layered inputs are used
    text_cls: bool = False  # the first text token is a CLS token: kept out of the cross-attentions
    # query dependence of the saliency (not in the paper; defaults are the paper's model)
    dense_text_ca: bool = True  # the dense stream's cross-attention to the text (False: D ignores the query)
    text_pool: str = "attention"  # pooled query for the saliency: learned attention pooling | mean of tokens
    neg_pairs: bool = False  # training: also score every video against another sample's query (dense
    #                          stream only) -> saliency_scores_neg, for the `query_contrast` loss term
    # whose query: the previous sample of the batch, or another query of the same video when the batch
    # has one (with data.group_by_video, which puts a video's queries in one batch)
    neg_partner: str = "previous"  # previous | same_video
    # recurrence
    shared: bool = True  # one SDST layer for every level (False: one per level)
    hidden_dim: int = 256
    nheads: int = 8
    ffn_dim: int = 1024
    input_proj_layers: int = 2
    input_dropout: float = 0.5  # dropout of the projection MLPs
    dropout: float = 0.0  # attention-output and FFN dropout inside the sub-layers
    attn_dropout: float = 0.0
    drop_path: float = 0.25
    pre_norm: bool = False
    activation: str = "relu"
    # sparse stream
    num_queries: int = 30
    sparse_order: list[str] = field(default_factory=lambda: list(SPARSE_MODULES))
    decoder_self_attn: bool = True  # False: no self-attention between the queries
    query_dropout: float = 0.0  # training only: zero a query's learned latent and reference
    attention: str = "rdsa"  # video attention of the sparse stream: rdsa | deformable | ca
    num_points: int = 4  # sampling points per head (rdsa, deformable)
    sample_points: str = "l-c-r"  # RDSA query points: c | l-r | l-c-r
    context_cnn: bool = True  # RDSA's context CNN over the dense features
    cnn_hidden: int = 256
    cnn_kernel: int = 3
    rdsa_query_dim: int = 64
    # heads
    cls_layers: int = 1
    reg_layers: int = 3
    act_layers: int = 3
    roi_size: int = 16
    # losses and matching (Tab. 4.22); a term missing from loss_weights is not computed
    loss_weights: dict = field(default_factory=lambda: {
        "span": 1.0, "iou": 1.0, "label": 1.0, "saliency": 0.1, "video_align": 0.1, "layer_align": 0.1,
        "actionness": 1.0})
    cost_class: float = 1.0
    cost_span: float = 1.0
    cost_giou: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    temperature: float = 0.07  # SampledNCE and alignment InfoNCE
    aux_loss: bool = True  # set losses at every level, not only the last

    def __post_init__(self):
        choices = {"attention": ATTENTIONS, "sample_points": tuple(SAMPLE_POINTS), "activation": ("relu", "gelu"),
                   "text_pool": TEXT_POOLS, "neg_partner": ("previous", "same_video")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"must be one of {list(allowed)}, got {getattr(self, name)!r}", field=name)
        for name in ("video_dim", "text_dim", "num_levels", "hidden_dim", "nheads", "ffn_dim", "num_queries",
                     "num_points", "cnn_hidden", "rdsa_query_dim", "cls_layers", "reg_layers", "act_layers",
                     "roi_size", "input_proj_layers"):
            if getattr(self, name) < 1:
                raise InputError(f"must be at least 1, got {getattr(self, name)}", field=name)
        if self.hidden_dim % self.nheads or self.hidden_dim % 4:
            raise InputError(f"must be a multiple of nheads ({self.nheads}) and of 4", field="hidden_dim")
        if self.cnn_kernel % 2 == 0:
            raise InputError(f"must be odd, got {self.cnn_kernel}", field="cnn_kernel")
        for name in ("query_dropout", "dropout", "attn_dropout", "input_dropout", "drop_path"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InputError(f"must be in [0, 1), got {getattr(self, name)}", field=name)
        order = list(self.sparse_order)
        if not order or len(set(order)) != len(order) or any(m not in SPARSE_MODULES for m in order):
            raise InputError(f"must list distinct modules among {list(SPARSE_MODULES)}, got {order}",
                             field="sparse_order")
        if "query_contrast" in self.loss_weights and not self.neg_pairs:
            raise InputError("the query_contrast term needs neg_pairs: true", field="loss_weights")
        unknown = set(self.loss_weights) - set(LOSS_TERMS)
        if unknown:
            raise InputError(f"unknown loss term(s) {sorted(unknown)}; known: {list(LOSS_TERMS)}",
                             field="loss_weights")

    @property
    def sparse_modules(self) -> tuple[str, ...]:
        """The sparse sub-layers in order (``self_attn`` dropped when ``decoder_self_attn`` is off)."""
        return tuple(m for m in self.sparse_order if self.decoder_self_attn or m != "self_attn")


def make_config(**overrides) -> SDSTConfig:
    """An :class:`SDSTConfig` from overrides; unknown keys raise :class:`InputError`."""
    known = {f.name for f in dataclasses.fields(SDSTConfig)}
    for key in overrides:
        if key not in known:
            raise InputError(f"unknown model option {key!r}", field=key)
    return SDSTConfig(**overrides)


# ----------------------------------------------------------------------------- building blocks
class AttentionPooling(nn.Module):
    """Learnable attention pooling of tokens: ``softmax_L(w . x_l) x`` over the valid tokens.

    ``x (B, ..., L, F)``, ``mask (B, L)`` bool -> ``(B, ..., F)``.
    """

    def __init__(self, d_model: int):
        super().__init__()
        self.score = nn.Linear(d_model, 1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.bool().view(mask.shape[0], *([1] * (x.ndim - 3)), mask.shape[1])
        a = self.score(x)[..., 0].masked_fill(~m, float("-inf")).softmax(-1)
        return torch.einsum("...l,...lf->...f", a, x)


class DenseStream(nn.Module):
    """``FFN(SA(CA(D, T)))`` over the clips (queries carry the clip positions)."""

    def __init__(self, cfg: SDSTConfig):
        super().__init__()
        kw = _block_kwargs(cfg)
        self.text_ca = AttentionBlock(**kw) if cfg.dense_text_ca else None
        self.self_attn = AttentionBlock(**kw)
        self.ffn = _ffn(cfg)

    def forward(self, d, text, text_pad, pos, clip_pad):
        if self.text_ca is not None:
            d = self.text_ca(d, text, text_pad, pos, None)
        d = self.self_attn(d, key_pad_mask=clip_pad, pos=pos)
        return self.ffn(d)


class SparseStream(nn.Module):
    """The sparse sub-layers of ``cfg.sparse_modules`` applied in order to the query latents."""

    def __init__(self, cfg: SDSTConfig):
        super().__init__()
        self.order = cfg.sparse_modules
        self.attention = cfg.attention
        kw = _block_kwargs(cfg)
        blocks = {}
        for name in self.order:
            if name in ("text_ca", "self_attn") or (name == "video_attn" and cfg.attention == "ca"):
                blocks[name] = AttentionBlock(**kw)
            elif name == "video_attn":
                d = cfg.hidden_dim
                attn = (RDSA(d, cfg.nheads, cfg.num_points, cfg.rdsa_query_dim, cfg.sample_points,
                             cfg.context_cnn, cfg.cnn_hidden, cfg.cnn_kernel)
                        if cfg.attention == "rdsa" else DeformableCrossAttention(d, cfg.nheads, cfg.num_points))
                blocks[name] = DeformableAttentionBlock(attn, d, cfg.dropout, cfg.drop_path, cfg.pre_norm)
            else:
                blocks[name] = _ffn(cfg)
        self.blocks = nn.ModuleDict(blocks)

    def forward(self, h, refs, query_pos, text, text_pad, dense, clip_mask, dense_pos):
        for name in self.order:
            blk = self.blocks[name]
            if name == "text_ca":
                h = blk(h, text, text_pad, query_pos, None)
            elif name == "self_attn":
                h = blk(h, pos=query_pos)
            elif name == "video_attn" and self.attention == "ca":
                h = blk(h, dense, ~clip_mask, query_pos, dense_pos)
            elif name == "video_attn":
                h = blk(h, refs, dense, clip_mask, query_pos)
            else:
                h = blk(h)
        return h


class SDSTLayer(nn.Module):
    """What the recurrence shares: input projections, dense stream, sparse stream, positional-query MLP."""

    def __init__(self, cfg: SDSTConfig):
        super().__init__()
        d = cfg.hidden_dim
        self.video_proj = input_projection(cfg.video_dim, d, cfg.input_proj_layers, cfg.input_dropout)
        self.text_proj = input_projection(cfg.text_dim, d, cfg.input_proj_layers, cfg.input_dropout)
        self.dense = DenseStream(cfg)
        self.sparse = SparseStream(cfg)
        self.ref_point_head = MLP(d, d, d, 2)


def _block_kwargs(cfg: SDSTConfig) -> dict:
    return dict(d_model=cfg.hidden_dim, nhead=cfg.nheads, dropout=cfg.dropout, attn_dropout=cfg.attn_dropout,
                pre_norm=cfg.pre_norm, drop_path=cfg.drop_path, fused=True)


def _ffn(cfg: SDSTConfig) -> FeedForwardBlock:
    return FeedForwardBlock(cfg.hidden_dim, cfg.ffn_dim, cfg.dropout, cfg.activation, cfg.pre_norm, cfg.drop_path)


# ----------------------------------------------------------------------------- the model
class SDST(nn.Module):
    """Sparse-Dense Side-Tuner; see the module docstring."""

    accepts_row_index = True  # a batch may pair distinct videos and queries by video_index / text_index

    def __init__(self, config: SDSTConfig | None = None):
        super().__init__()
        cfg = self.config = config or SDSTConfig()
        d, m = cfg.hidden_dim, cfg.num_queries
        self.layers = nn.ModuleList(SDSTLayer(cfg) for _ in range(1 if cfg.shared else cfg.num_levels))
        self.gate = nn.Parameter(torch.zeros(cfg.num_levels))  # beta_l = sigmoid(gate_l)
        self.dense_pos = build_position_encoding("sine", d)
        self.query_latents = nn.Parameter(torch.randn(m, d))
        refs = torch.stack([torch.rand(m), 0.05 + 0.45 * torch.rand(m)], dim=-1)
        self.query_refs = nn.Parameter(inverse_sigmoid(refs))  # (centre, width) logits
        self.text_pool = AttentionPooling(d)
        self.class_head = nn.Linear(d, 1) if cfg.cls_layers == 1 else MLP(d, d, 1, cfg.cls_layers)
        self.span_head = MLP(d, d, 2, cfg.reg_layers)
        self.actionness_head = MLP(cfg.roi_size * d, d, 1, cfg.act_layers)
        self._init_weights()
        self.criterion = SetCriterion(
            HungarianMatcher(cfg.cost_class, cfg.cost_span, cfg.cost_giou, "focal", cfg.focal_alpha, cfg.focal_gamma),
            cfg.loss_weights, label_loss="focal", focal_alpha=cfg.focal_alpha, focal_gamma=cfg.focal_gamma,
            iou_loss="iou", saliency_loss="sampled_nce", temperature=cfg.temperature, aux_loss=cfg.aux_loss,
        )

    def _init_weights(self) -> None:
        for mod in self.modules():
            if isinstance(mod, AttentionBlock):
                nn.init.xavier_uniform_(mod.attn.in_proj_weight)
                nn.init.xavier_uniform_(mod.attn.out_proj.weight)
                nn.init.zeros_(mod.attn.in_proj_bias)
                nn.init.zeros_(mod.attn.out_proj.bias)
            elif isinstance(mod, FeedForwardBlock):
                for lin in (mod.linear1, mod.linear2):
                    nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
                    nn.init.zeros_(lin.bias)
        last_cls = self.class_head if isinstance(self.class_head, nn.Linear) else self.class_head.layers[-1]
        nn.init.constant_(last_cls.bias, -math.log((1 - 0.01) / 0.01))
        nn.init.zeros_(self.span_head.layers[-1].weight)
        nn.init.zeros_(self.span_head.layers[-1].bias)

    def betas(self) -> torch.Tensor:
        """The per-level gates ``beta_l`` in (0, 1)."""
        return self.gate.sigmoid()

    def layer(self, level: int) -> SDSTLayer:
        return self.layers[0 if self.config.shared else level]

    # ------------------------------------------------------------------ inputs
    def _levels(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """The last ``num_levels`` levels of ``x (B, N, S, F)``; a single level (``N = 1``) stays one."""
        k, n = self.config.num_levels, x.shape[1]
        if n == 1:
            return x
        if n < k:
            raise InputError(f"has {n} levels but num_levels is {k} (give at least {k} levels, or one)",
                             field=name)
        return x[:, n - k:]

    def _inputs(self, batch: dict):
        """``video (Nv, K or 1, T, Fv)``, ``video_mask (Nv, T)``, ``text (Nt, K or 1, L, Ft)``, ``text_mask
        (Nt, L)``, the text cross-attentions' padding mask (None: no token ignored), whether every clip
        is valid, and the row indices ``video_index`` / ``text_index`` ``(B,)`` (None: row ``b`` is
        sample ``b``)."""
        cfg = self.config
        for key in ("video_feats", "video_mask", "text_feats", "text_mask"):
            if key not in batch:
                raise InputError("missing from the batch", field=key)
        out = []
        for name, width in (("video", cfg.video_dim), ("text", cfg.text_dim)):
            x, mask = batch[f"{name}_feats"], batch[f"{name}_mask"]
            if x.ndim == 3:
                x = x[:, None]
            if x.ndim != 4 or x.shape[-1] != width:
                raise InputError(f"expected shape (B, K, N, {width}) or (B, N, {width}), got {tuple(x.shape)}",
                                 field=f"{name}_feats")
            if tuple(mask.shape) != (x.shape[0], x.shape[2]):
                raise InputError(f"expected shape {(x.shape[0], x.shape[2])}, got {tuple(mask.shape)}",
                                 field=f"{name}_mask")
            out += [self._levels(x, f"{name}_feats"), mask.bool()]
        index = self._row_index(batch, len(out[0]), len(out[2]))
        text_pad = self._text_ca_pad(out[3])
        # one host-device synchronisation for both masks (and whether any position is padded at all)
        checks = torch.stack([out[1].any(1).all(), out[3].any(1).all(), out[1].all(), text_pad.any()]).tolist()
        for name, ok in zip(("video", "text"), checks):
            if not ok:
                raise InputError("every sample needs at least one valid position", field=f"{name}_mask")
        return (*out, text_pad if checks[3] else None, checks[2], *index)

    @staticmethod
    def _row_index(batch: dict, n_video: int, n_text: int):
        """``video_index`` / ``text_index`` of the batch (both or neither), checked against the inputs."""
        vi, ti = batch.get("video_index"), batch.get("text_index")
        if vi is None and ti is None:
            if n_video != n_text:
                raise InputError(f"{n_video} videos but {n_text} queries (give video_index and text_index to "
                                 "pair them)", field="text_feats")
            return None, None
        for name, idx, n in (("video_index", vi, n_video), ("text_index", ti, n_text)):
            if not isinstance(idx, torch.Tensor) or idx.ndim != 1 or idx.dtype != torch.int64:
                raise InputError("must be a 1-D int64 tensor, given together with "
                                 f"{'text_index' if name == 'video_index' else 'video_index'}", field=name)
        if len(vi) != len(ti):
            raise InputError(f"{len(vi)} video rows but {len(ti)} text rows", field="text_index")
        return vi, ti

    def _project(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """The input projection of every level: ``x (N, K or 1, S, F) -> (N, K or 1, S, hidden_dim)``. A
        single-level input is projected once for all levels (the same values: the projection is
        deterministic outside training with input dropout), else once per level."""
        cfg, k = self.config, self.config.num_levels
        if cfg.shared:
            proj = getattr(self.layers[0], f"{name}_proj")
            if x.shape[1] == 1 and not (self.training and cfg.input_dropout > 0):
                return proj(x)
            return proj(x.expand(-1, k, -1, -1))  # one batched projection for every level
        x = x.expand(-1, k, -1, -1)
        return torch.stack([getattr(self.layers[i], f"{name}_proj")(x[:, i]) for i in range(k)], 1)

    def _text_ca_pad(self, text_mask: torch.Tensor) -> torch.Tensor:
        """Key padding mask of the text cross-attentions (True = ignored); the CLS token is ignored
        with ``text_cls`` unless it is a sample's only token."""
        keep = text_mask.clone()
        if self.config.text_cls:
            keep[:, 0] = False
            keep[:, 0] = ~keep.any(1)
        return ~keep

    def _query_keep(self, b: int, device) -> torch.Tensor | None:
        p = self.config.query_dropout
        if not self.training or p == 0.0:
            return None
        return (torch.rand(b, self.config.num_queries, 1, device=device) >= p).float()

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict) -> dict:
        cfg = self.config
        v, vm, t, tm, text_pad, all_clips, video_index, text_index = self._inputs(batch)
        dtype = self.query_latents.dtype
        k, d = cfg.num_levels, cfg.hidden_dim
        video, text = self._project(v.to(dtype), "video"), self._project(t.to(dtype), "text")
        pos = self.dense_pos(vm).to(video)
        if video_index is not None:  # rows pair distinct videos and queries: inputs made once, then gathered
            video, vm, pos = (x.index_select(0, video_index) for x in (video, vm, pos))
            text, tm = text.index_select(0, text_index), tm.index_select(0, text_index)
            text_pad = None if text_pad is None else text_pad.index_select(0, text_index)
        video, text = video.expand(-1, k, -1, -1), text.expand(-1, k, -1, -1)
        b = video.shape[0]
        lengths = vm.sum(1)
        clip_pad = None if all_clips else ~vm  # no padding: attention without a mask (the same result)
        betas = self.betas().to(video)

        keep = self._query_keep(b, video.device)
        h = self.query_latents.expand(b, -1, -1)
        ref_logits = self.query_refs.expand(b, -1, -1)
        if keep is not None:
            h, ref_logits = h * keep, ref_logits * keep
        refs = ref_logits.sigmoid()
        # one unbind per input (its gradient is one stack) instead of a full-size select per use
        videos, texts = video.unbind(1), text.unbind(1)
        carry, mix = betas.unbind(), (1 - betas).unbind()
        dense, latents, spans = None, [], []
        for level in range(k):
            layer = self.layer(level)
            fresh = mix[level] * videos[level]
            dense = fresh if dense is None else carry[level] * dense + fresh  # D^0 = 0
            dense = layer.dense(dense, texts[level], text_pad, pos, clip_pad)
            query_pos = layer.ref_point_head(span_sine_embedding(refs, d).to(dense))
            h = layer.sparse(h, refs, query_pos, texts[level], text_pad, dense, vm, pos)
            span = (self.span_head(h).float() + inverse_sigmoid(refs.float())).sigmoid()
            latents.append(h)
            spans.append(span)
            refs = span.detach()

        logits = self.class_head(torch.stack(latents))  # (K, B, M, 1): every level in one call
        spans = torch.stack(spans)  # (K, B, M, 2)
        pooled = self._pool(text, tm)  # (B, K, F)
        saliency = F.cosine_similarity(dense.float(), pooled[:, -1, None].float(), dim=-1)
        roi = roi_align_1d(dense, spans[-1].detach(), lengths, cfg.roi_size)
        actionness = self.actionness_head(roi.flatten(2))[..., 0].float().sigmoid()
        prob = logits[-1][..., 0].float().sigmoid()
        return {
            "pred_logits": logits[-1],
            "pred_spans": spans[-1],
            "saliency_scores": saliency,
            "pred_actionness": actionness,
            "pred_confidence": (prob * actionness).sqrt(),
            "aux_outputs": [{"pred_logits": a, "pred_spans": s} for a, s in zip(logits[:-1], spans[:-1])],
            "level_logits": logits,
            "level_spans": spans,
            "level_video": video.transpose(0, 1),
            "level_text": pooled.transpose(0, 1),
            "betas": betas,
            **self._negative_pairs(videos, texts, text_pad, tm, pos, clip_pad, carry, mix, pooled, batch),
        }

    def _pool(self, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``text (B, K, L, F)`` -> pooled query ``(B, K, F)`` (``text_pool``)."""
        if self.config.text_pool == "attention":
            return self.text_pool(text, mask)
        w = mask.to(text)[:, None, :, None]
        return (text * w).sum(2) / w.sum(2).clamp(min=1)

    @staticmethod
    def negative_partners(batch: dict, b: int, same_video: bool = True) -> list[int]:
        """For every sample, the sample whose query it is scored against: the previous sample of the
        batch, or (``same_video``) another query of the same video when the batch holds one
        (``data.group_by_video`` puts them together)."""
        vids = [m.get("vid") for m in batch.get("meta", [])] if len(batch.get("meta", [])) == b else [None] * b
        partner = [(i - 1) % b for i in range(b)]
        for i, vid in enumerate(vids if same_video else []):
            same = [j for j in range(b) if j != i and vid is not None and vids[j] == vid]
            if same:  # the next query of the same video (cyclically)
                partner[i] = next((j for j in same if j > i), same[0])
        return partner

    def _negative_pairs(self, videos, texts, text_pad, tm, pos, clip_pad, carry, mix, pooled, batch) -> dict:
        """Training with ``neg_pairs``: the saliency of every video with another sample's query
        (``saliency_scores_neg (B, T)``; :meth:`negative_partners`), the dense stream run again on those
        queries. ``saliency_neg_ok (B, T)``: False at the clips that are relevant to the other query as
        well (it is another query of the same video and its moment covers them), where the contrast
        would be wrong."""
        if not (self.config.neg_pairs and self.training and len(tm) > 1):
            return {}
        b = len(tm)
        partner = self.negative_partners(batch, b, self.config.neg_partner == "same_video")
        idx = torch.tensor(partner, device=tm.device)
        dense = None
        for level, (video, text) in enumerate(zip(videos, texts)):
            fresh = mix[level] * video
            dense = fresh if dense is None else carry[level] * dense + fresh
            dense = self.layer(level).dense(dense, text[idx], None if text_pad is None else text_pad[idx], pos,
                                            clip_pad)
        neg = F.cosine_similarity(dense.float(), pooled[:, -1, None][idx].float(), dim=-1)
        out = {"saliency_scores_neg": neg}
        sal = batch.get("saliency")
        if isinstance(sal, torch.Tensor) and sal.shape[0] == b:
            vids = [m.get("vid") for m in batch["meta"]]
            same = torch.tensor([vids[i] == vids[j] for i, j in enumerate(partner)], device=neg.device)
            other_relevant = sal.to(neg.device)[idx] > 0
            out["saliency_neg_ok"] = ~(same[:, None] & other_relevant[:, : neg.shape[1]])
        return out

    # ------------------------------------------------------------------ loss / predictions
    def loss(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total and the detached value of every term of ``loss_weights``: ``loss_span``,
        ``loss_iou``, ``loss_label`` (+ ``_<level>`` for the earlier levels), ``loss_saliency``,
        ``loss_video_align``, ``loss_layer_align``, ``loss_actionness`` (see :mod:`momentkit.models.criterion`:
        every level matched with one cost matrix, no other wait for the device)."""
        return self.criterion(outputs, self.rows_batch(batch))

    @staticmethod
    def rows_batch(batch: dict) -> dict:
        """``batch`` with the rows' own ``video_mask`` / ``text_mask`` when it pairs distinct inputs by
        ``video_index`` / ``text_index`` (what the loss and post-processing read); else ``batch``."""
        if batch.get("video_index") is None:
            return batch
        return {**batch, "video_mask": batch["video_mask"].index_select(0, batch["video_index"]),
                "text_mask": batch["text_mask"].index_select(0, batch["text_index"])}

    def postprocess(self, outputs: dict, batch: dict, **kwargs) -> list[dict]:
        """Prediction rows in seconds ranked by ``sqrt(p_cls * actionness)``, soft-NMS (``gaussian``)
        unless ``nms`` is given; kwargs as :func:`momentkit.models.postprocess.postprocess`."""
        kwargs.setdefault("nms", "gaussian")
        # postprocess() ranks by sigmoid(pred_logits) for single-logit heads: pass logit(confidence)
        conf = outputs["pred_confidence"].detach().double()
        return postprocess({**outputs, "pred_logits": torch.logit(conf)[..., None]}, self.rows_batch(batch), **kwargs)


def sdst(**cfg) -> SDST:
    """SDST with the paper's QVHighlights configuration; ``cfg`` overrides any :class:`SDSTConfig` option."""
    return SDST(make_config(**cfg))


register_model("sdst", config=SDSTConfig)(sdst)


# ----------------------------------------------------------------------------- parameter count
def parameter_breakdown(model: SDST) -> dict[str, int]:
    """Trainable parameters per part: input projections, dense stream, sparse stream (and, within it,
    the video attention), queries and gates, heads, total."""

    def n(mods) -> int:
        return sum(count_parameters(m) for m in mods)

    layers = list(model.layers)
    out = {
        "input projections": n([x.video_proj for x in layers] + [x.text_proj for x in layers]),
        "dense stream": n([x.dense for x in layers]),
        "sparse stream": n([x.sparse for x in layers] + [x.ref_point_head for x in layers]),
        "  of which video attention": n([x.sparse.blocks["video_attn"] for x in layers
                                         if "video_attn" in x.sparse.blocks]),
        "queries and gates": model.query_latents.numel() + model.query_refs.numel() + model.gate.numel(),
        "heads (class, regression, actionness, text pooling)": n(
            [model.class_head, model.span_head, model.actionness_head, model.text_pool]),
    }
    out["total"] = count_parameters(model)
    return out
