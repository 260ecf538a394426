"""CG-DETR (Moon et al., "Correlation-Guided Query-Dependency Calibration for Video Temporal Grounding").

CG-DETR is QD-DETR (:mod:`momentkit.models.detr`) with a different encoder: :class:`CGDETR` subclasses
:class:`~momentkit.models.detr.MomentDETR`, replaces its ``_encode`` and keeps the rest of its
``forward`` -- input projections, anchor decoder, heads, negative pairs -- with its criterion and
post-processing; :class:`CGDETRConfig` extends :class:`~momentkit.models.detr.DETRConfig`, so every
decoder, matching and evaluation option of QD-DETR (``decoder_self_attn``, ``query_dropout``,
``num_queries``, ``eval.nms``, ...) applies to CG-DETR as it is. That includes the matching and
calibration variants of :mod:`momentkit.models.detr` (``matching: one_to_k | group | hybrid``,
``actionness``, ``gt_replication``): ``MomentDETR.forward`` applies GT replication before the
projections (the encoder reads the pasted clips; the correlation branch reads the augmented targets
from outputs ``targets``) and decodes through ``MomentDETR.decoder_outputs`` over the encoded clips.
Shapes: B samples, T clips, L words, N_d dummy tokens, S = N_d + L keys, P saliency prototypes, d hidden.

Encoder, in order (:meth:`CGDETR._encode`):

1. Projections as Moment-DETR (video with its TEF, text), plus a learned token-type vector (0 text,
   1 video). Sine positions for clips, none for words.
2. **Query-conditioned dummy tokens.** ``num_dummies`` learned tokens (each with a learned position)
   are encoded together with the words by ``dummy_layers`` self-attention layers; their outputs are the
   dummies of this query, ``dummy_tokens (B, N_d, d)``.
3. **Adaptive cross-attention** (:class:`AdaptiveCrossAttention`, ``t2v_layers`` layers): each clip is a
   query over the keys ``[dummies; words]`` (S of them, positions added to queries and keys), softmax
   over all S keys, but only the words' values are summed: the weight a clip puts on the dummies is
   taken away from the text, so a clip unrelated to the query takes little of it. No input projections
   (queries, keys and values are the features themselves, split into heads), one output projection,
   then residual, LayerNorm and FFN as any layer. Outputs: the map averaged over heads and layers,
   ``clip_word_attention (B, T, S)``, and each clip's mass on the words, ``word_attention (B, T)`` in
   [0, 1] (0 on padding).
4. **Moment-adaptive saliency token.** ``ctx``: the mean projected clip (detached). Each clip's softmax
   over the cosine similarities of ``clip - ctx`` with P learned prototypes (``saliency_prototypes``),
   averaged over the clips weighted by their (detached) ``word_attention``; the top
   ``saliency_topk`` prototypes, weighted by those averages, are added to ``ctx``. The token passes
   through the same adaptive cross-attention layers (keeping the dummies' values), then leads the
   encoder.
5. Encoder (``enc_layers``) over ``[token; clips]``; every clip adds the encoded token; saliency is
   QD-DETR's scaled dot product of clip and token (:class:`~momentkit.models.heads.TokenSaliencyHead`);
   the decoder reads the clips (``MomentDETR._decode``).
6. Negative pairs (training, B > 1): each video with the next sample's dummies and words gives
   ``saliency_scores_neg`` and ``word_attention_neg``; a pair of two queries of the same ``meta["vid"]``
   is no negative (``saliency_neg_ok`` False; its negative scores are set to -1e4, which the existing
   ``rank`` and ``neg_pair`` terms then ignore).

**Clip-word correlation learning** (``loss``; it reads the targets, so it runs in :meth:`CGDETR.loss`,
never in ``forward``). Moment clips ``M (B, T)``: batch ``saliency > 0`` (else clips inside a window).
A sentence token is encoded (``sent_layers``) with the words, giving ``sentence (B, d)`` and encoded
words, and once with the dummies, giving ``dummy_sentence`` and encoded dummies. A moment token is
encoded (``moment_layers``) with the projected clips, attending to the moment clips only (``moment``,
clip features ``F_m``) and once to the other clips only (``nonmoment``, ``F_n``). Then
``clip_word_similarity (B, T, S) = F_m . [encoded dummies; encoded words]``. Loss terms (registered
with :func:`momentkit.models.criterion.register_term`, computed by :func:`moment_sentence_loss`,
:func:`correlation_distill_loss`, :func:`orthogonality_loss`, :func:`attention_saliency_loss`):

- ``moment_sentence``: cross-entropy of each moment token against the batch's sentences, the
  non-moment tokens' similarities as extra negatives (cosine logits, no temperature); the same with
  the dummy sentences where every pair except (moment_i, dummy_sentence_i) is positive; BCE of
  ``moment . clip feature`` against ``M``.
- ``distill``: ``KL(softmax(clip_word_similarity) || clip_word_attention)`` on the moment clips, the
  similarity detached (the correlation guides the attention map), divided by the number of keys.
- ``ortho``: mean ``|cos|`` between different dummy tokens of a query, plus the same between the
  prototypes (the right factor detached).
- ``attn_saliency``: QD-DETR's saliency losses on ``word_attention``: margin, rank-contrastive (with
  ``word_attention_neg`` as negatives), BCE against ``saliency > 0``, and ``-log(1 - a_neg)``.

Published defaults (``cg_detr/scripts/*``, QVHighlights ``opt.json`` of the reference code): hidden 256,
8 heads, FFN 1024, dropout 0.1, input dropout 0.5, 2 T2V, 3 encoder, 3 decoder layers, 2 dummy, 1
sentence, 1 moment layer, 10 queries, 45 dummies (TACoS 50), 10 prototypes, top-1 (Charades-STA and
TACoS top-2); weights span 10, gIoU 1, label 4 (background 0.1), saliency 1 (Charades-STA and TACoS 4,
applied to its margin, rank, negative-pair and attention parts alike), moment-sentence 1, distill 1,
orthogonality 1; lr 1e-4 (Charades-STA, TACoS 2e-4), batch 32, 200 epochs.

Parameters of the published QVHighlights configuration (video 2818 with TEF, text 512),
``create_model("cg_detr")``: **11,289,372** by our code; the reference code builds 12,615,467
(counted by instantiating it). The whole difference is in three places: 141,056 of the reference's
parameters are never used (a spare text projection, 132,352, and a learned text position table,
8,704); its decoder is DAB-DETR's conditional decoder, 4,477,466 with its anchors, against our
3,292,436 (3 layers 3,160,832, anchor head 131,584, anchors 20; see :mod:`momentkit.models.detr`); and
its other 9 layers use PReLU (1 parameter each) where ours use ReLU. Everything else counts the same,
7,996,936 in both: projections and token types 992,772; dummies and their layers 1,602,560; sentence
and moment branches 1,580,544; T2V 1,184,768; prototypes and token position 2,816; encoder 2,369,280;
heads 264,196.

Where our code departs from the reference code (where that code is silent, ambiguous or looks
unintended), and what we chose:

- Moment clips: the reference uses the clips with a saliency label above 0; with no saliency in the
  batch we take the clips that overlap a window.
- The saliency token in the reference code passes through the T2V layers with an empty key set (its
  attention adds only the output bias); here it attends to ``[dummies; words]`` with the dummies'
  values kept, as the reference's ``dummy=False`` flag for that call asks.
- Dummy-sentence contrast: the reference reduces its multi-positive target with ``argmax`` to one
  (the first) positive; we use all positives (``-log`` of their summed probability).
- ``distill`` ignores padded words (the reference puts them in the target softmax) and divides by the
  sample's number of keys (the reference by the padded width); ``moment_sentence``'s clip BCE and
  ``attn_saliency``'s BCE average over valid clips (the reference over all positions).
- Orthogonality averages over the N(N-1) pairs of different tokens (the reference divides by N^2).
- Real negatives compare ``meta["vid"]`` (the reference strips QVHighlights' ``_start_end`` suffix
  first); the rank loss runs once over all samples with the false negatives' extra clips left out
  (the reference sums two means).
- Residual dropout as Moment-DETR (``dropout``; the reference uses stochastic depth at the same rate)
  and ReLU, as every momentkit DETR.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from momentkit.errors import InputError
from momentkit.models.criterion import LossInputs, SetCriterion, register_term
from momentkit.models.detr import DETRConfig, MomentDETR
from momentkit.models.layers import DropPath
from momentkit.models.losses import rank_contrastive_loss, saliency_margin_loss
from momentkit.models.registry import register_model
from momentkit.models.sdst_losses import clips_in_spans
from momentkit.models.transformer import EncoderLayer, FeedForwardBlock, TransformerEncoder

CG_TERMS = ("attn_saliency", "moment_sentence", "distill", "ortho")  # the terms this module registers
NEG_FILL = -1e4  # score of a clip that is no negative: zero weight in the rank softmax, zero neg_pair loss


def _cg_weights(saliency: float = 1.0) -> dict:
    return {"span": 10.0, "iou": 1.0, "label": 4.0, "saliency": saliency, "rank": saliency, "neg_pair": saliency,
            "attn_saliency": saliency, "moment_sentence": 1.0, "distill": 1.0, "ortho": 1.0}


@dataclass
class CGDETRConfig(DETRConfig):
    """:class:`~momentkit.models.detr.DETRConfig` with CG-DETR's defaults (published QVHighlights
    configuration) and its own options. ``t2v_layers`` counts the adaptive cross-attention layers."""

    t2v_layers: int = 2
    enc_layers: int = 3
    dec_layers: int = 3
    encode_text: bool = False  # fixed: the encoder reads [saliency token; clips]
    saliency_token: bool = True  # fixed: saliency against the moment-adaptive token
    query_type: str = "anchor"
    neg_pair: bool = True
    loss_weights: dict = field(default_factory=_cg_weights)
    num_dummies: int = 45
    dummy_layers: int = 2
    sent_layers: int = 1
    moment_layers: int = 1
    saliency_prototypes: int = 10  # the reference's total_prompts
    saliency_topk: int = 1  # the reference's num_prompts

    def __post_init__(self):
        own = {k: v for k, v in self.loss_weights.items() if k in CG_TERMS}
        self.loss_weights = {k: v for k, v in self.loss_weights.items() if k not in CG_TERMS}
        super().__post_init__()
        self.loss_weights = {**self.loss_weights, **own}
        if self.encode_text:
            raise InputError("CG-DETR's encoder reads the clips only; the text enters through t2v_layers",
                             field="encode_text")
        if not self.saliency_token:
            raise InputError("CG-DETR scores saliency against its saliency token", field="saliency_token")
        for name, low in (("t2v_layers", 1), ("num_dummies", 1), ("dummy_layers", 0), ("sent_layers", 1),
                          ("moment_layers", 1), ("saliency_prototypes", 1), ("saliency_topk", 1)):
            if getattr(self, name) < low:
                raise InputError(f"must be at least {low}, got {getattr(self, name)}", field=name)
        if self.saliency_topk > self.saliency_prototypes:
            raise InputError(f"must be at most saliency_prototypes ({self.saliency_prototypes})",
                             field="saliency_topk")


# ----------------------------------------------------------------------------- adaptive cross-attention
class AdaptiveCrossAttention(nn.Module):
    """Multi-head attention of queries over ``[dummies; words]`` whose output sums the words' values only.

    No input projections: ``query (B, T, d)``, ``key`` / ``value (B, S, d)`` are split into ``nhead``
    heads as they are; per head ``a = softmax(q k^T / sqrt(d / nhead))`` over the S keys (padded keys
    excluded by ``key_pad_mask (B, S)``, True = padded), output ``sum_{j >= num_dummies} a_j v_j``, heads
    concatenated, then ``out_proj``. Returns the output ``(B, T, d)`` and the weights averaged over heads
    ``(B, T, S)`` (before attention dropout; rows sum to 1). ``num_dummies=0`` is plain attention.
    """

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0):
        super().__init__()
        if d_model % nhead:
            raise ValueError(f"d_model {d_model} is not a multiple of nhead {nhead}")
        self.nhead = nhead
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.zeros_(self.out_proj.bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query, key, value, key_pad_mask=None, num_dummies: int = 0):
        b, t, d = query.shape
        s, h = key.shape[1], self.nhead

        def heads(x, n):
            return x.reshape(b, n, h, d // h).transpose(1, 2)  # (B, h, n, d/h)

        scores = heads(query, t) @ heads(key, s).transpose(-1, -2) * (d // h) ** -0.5  # (B, h, T, S)
        if key_pad_mask is not None:
            scores = scores.masked_fill(key_pad_mask.bool()[:, None, None, :], float("-inf"))
        weights = scores.softmax(-1)
        out = self.dropout(weights)[..., num_dummies:] @ heads(value, s)[:, :, num_dummies:]  # (B, h, T, d/h)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d)), weights.mean(1)


class AdaptiveCrossAttentionLayer(nn.Module):
    """:class:`AdaptiveCrossAttention` as a residual sub-layer (dropout, DropPath, LayerNorm; pre- or
    post-norm), then :class:`~momentkit.models.transformer.FeedForwardBlock`. ``x (B, T, d)`` attends to
    ``memory (B, S, d)``; returns the new ``x`` and the weights ``(B, T, S)``."""

    def __init__(self, d_model: int = 256, nhead: int = 8, dim_ff: int = 1024, dropout: float = 0.1,
                 activation: str = "relu", pre_norm: bool = False, drop_path: float = 0.0):
        super().__init__()
        self.attn = AdaptiveCrossAttention(d_model, nhead, dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.drop_path = DropPath(drop_path)
        self.pre_norm = pre_norm
        self.ffn = FeedForwardBlock(d_model, dim_ff, dropout, activation, pre_norm, drop_path)

    def forward(self, x, memory, memory_pad_mask=None, pos=None, memory_pos=None, num_dummies: int = 0):
        h = self.norm(x) if self.pre_norm else x
        q = h if pos is None else h + pos
        k = memory if memory_pos is None else memory + memory_pos
        out, weights = self.attn(q, k, memory, memory_pad_mask, num_dummies)
        x = x + self.drop_path(self.dropout(out))
        return self.ffn(x if self.pre_norm else self.norm(x)), weights


# ----------------------------------------------------------------------------- losses
def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.float()
    return (values * mask).sum() / mask.sum().clamp(min=1)


def _bce(prob: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Elementwise binary cross-entropy of probabilities (float32; safe under autocast)."""
    p = prob.float().clamp(eps, 1 - eps)
    return -(target * p.log() + (1 - target) * (1 - p).log())


def attention_saliency_loss(attention, video_mask, saliency=None, pos_idx=None, neg_idx=None, valid=None,
                            attention_neg=None, neg_ok=None, margin: float = 0.2, levels: int = 12,
                            tau: float = 0.5) -> torch.Tensor:
    """The saliency losses applied to each clip's attention mass on the words, ``attention (B, T)`` in [0, 1].

    Sum of the parts whose inputs are given: the margin hinge on ``pos_idx`` / ``neg_idx (B, P)``
    (:func:`~momentkit.models.losses.saliency_margin_loss`, samples of ``valid (B,)``); the rank-contrastive
    loss against ``saliency (B, T)`` with ``attention_neg (B, T)`` (the video with another query) as
    label-0 clips where ``neg_ok (B, T)``; the mean over valid clips of the BCE of ``attention``
    against ``saliency > 0``; ``sum_t -log(1 - attention_neg)`` over the valid clips where ``neg_ok``,
    mean over samples. ``video_mask (B, T)``: True = valid clip.
    """
    a, mask = attention.float(), video_mask.bool()
    total = a.new_zeros(())
    ok = mask if neg_ok is None else mask & neg_ok.bool()
    if pos_idx is not None:
        total = total + saliency_margin_loss(a, pos_idx.long(), neg_idx.long(), margin, valid)
    if saliency is not None:
        extra = None
        if attention_neg is not None:
            extra = torch.where(ok, attention_neg.float(), NEG_FILL)
        total = total + rank_contrastive_loss(a, saliency.to(a), mask, levels, tau, extra)
        total = total + _masked_mean(_bce(a, (saliency > 0).float()), mask)
    if attention_neg is not None:
        push = -torch.log1p(-attention_neg.float().clamp(0, 1 - 1e-6))
        total = total + (push * ok).sum(1).mean()
    return total


def moment_sentence_loss(moment, nonmoment, sentence, dummy_sentence, clip_logits, moment_mask,
                         video_mask) -> torch.Tensor:
    """Moment-sentence alignment of CG-DETR; tokens ``(B, d)``, ``clip_logits`` and masks ``(B, T)``.

    With unit vectors ``m`` (moment tokens), ``n`` (non-moment tokens), ``s`` (sentences), ``s_d``
    (dummy sentences) and each row ``i`` over ``[m_i . s_j for j; n_i . s_j for j]`` (2B logits):
    cross-entropy with ``m_i . s_i`` as the positive; plus, over ``[m_i . s_d_j; n_i . s_d_j]``,
    ``-log`` of the summed softmax of every entry but ``m_i . s_d_i`` (a moment is unlike its own
    query's dummies); both averaged over the rows. Plus the binary cross-entropy of
    ``sigmoid(clip_logits)`` against ``moment_mask`` over the valid clips.
    """
    m, n, s, sd = (F.normalize(x.float(), dim=-1) for x in (moment, nonmoment, sentence, dummy_sentence))
    b = m.shape[0]
    rows = torch.arange(b, device=m.device)
    sentence_logits = torch.cat([m @ s.T, n @ s.T], 1)  # (B, 2B)
    align = F.cross_entropy(sentence_logits, rows)
    dummy_logits = torch.cat([m @ sd.T, n @ sd.T], 1)
    own = torch.zeros_like(dummy_logits, dtype=torch.bool)
    own[rows, rows] = True
    dummy = (dummy_logits.logsumexp(1) - dummy_logits.masked_fill(own, float("-inf")).logsumexp(1)).mean()
    target = moment_mask.float()
    clips = F.binary_cross_entropy_with_logits(clip_logits.float(), target, reduction="none")
    return align + dummy + _masked_mean(clips, video_mask.bool())


def correlation_distill_loss(attention, similarity, key_valid, moment_mask) -> torch.Tensor:
    """``KL(softmax(similarity) || attention)`` per moment clip, divided by its sample's number of keys,
    mean over the moment clips.

    ``attention (B, T, S)``: the adaptive cross-attention map (rows sum to 1 over the valid keys);
    ``similarity (B, T, S)``: clip-word similarities (detached: they are the target); ``key_valid (B, S)``
    True at the dummies and the valid words; ``moment_mask (B, T)`` True at the moment clips. The
    attention is read as ``attention + 1e-6``, as in the reference code.
    """
    valid = key_valid.bool()[:, None, :]
    sim = similarity.detach().float().masked_fill(~valid, float("-inf"))
    target, log_target = sim.softmax(-1), torch.where(valid, sim.log_softmax(-1), 0.0)
    kl = torch.where(valid, target * (log_target - (attention.float() + 1e-6).log()), 0.0).sum(-1)  # (B, T)
    kl = kl / key_valid.float().sum(1, keepdim=True)
    return _masked_mean(kl, moment_mask.bool())


def orthogonality_loss(tokens: torch.Tensor) -> torch.Tensor:
    """Mean ``|cos(x_m, x_n)|`` over the ordered pairs ``m != n`` of ``tokens (..., N, d)`` (the second
    factor detached), averaged over the leading dimensions; 0 for N < 2."""
    n = tokens.shape[-2]
    if n < 2:
        return tokens.float().sum() * 0.0
    u = F.normalize(tokens.float(), dim=-1)
    sim = (u @ u.detach().transpose(-1, -2)).abs()
    off = 1.0 - torch.eye(n, device=tokens.device)
    return ((sim * off).sum((-1, -2)) / (n * (n - 1))).mean()


@register_term("attn_saliency")
def attn_saliency_term(c: SetCriterion, x: LossInputs) -> torch.Tensor | None:
    """:func:`attention_saliency_loss` of outputs ``word_attention (B, T)`` (with ``word_attention_neg`` and
    ``saliency_neg_ok`` when given) against batch ``saliency``, ``saliency_pos_idx`` / ``saliency_neg_idx``
    and ``saliency_valid``."""
    a, b = x.outputs.get("word_attention"), x.batch
    if a is None:
        return None
    has_pairs = "saliency_pos_idx" in b and "saliency_neg_idx" in b
    return attention_saliency_loss(
        a, x.video_mask, x.batch_on_device("saliency") if "saliency" in b else None,
        x.batch_on_device("saliency_pos_idx") if has_pairs else None,
        x.batch_on_device("saliency_neg_idx") if has_pairs else None,
        x.batch_on_device("saliency_valid") if "saliency_valid" in b else None,
        x.outputs.get("word_attention_neg"), x.outputs.get("saliency_neg_ok"),
        c.saliency_margin, c.rank_levels, c.rank_tau)


@register_term("moment_sentence")
def moment_sentence_term(c: SetCriterion, x: LossInputs) -> torch.Tensor | None:
    """:func:`moment_sentence_loss` of outputs ``moment_token``, ``nonmoment_token``, ``sentence_token``,
    ``dummy_sentence_token (B, d)``, ``moment_clip_logits`` and ``moment_mask (B, T)``."""
    o = x.outputs
    if "moment_token" not in o:
        return None
    return moment_sentence_loss(o["moment_token"], o["nonmoment_token"], o["sentence_token"],
                                o["dummy_sentence_token"], o["moment_clip_logits"], o["moment_mask"], x.video_mask)


@register_term("distill")
def distill_term(c: SetCriterion, x: LossInputs) -> torch.Tensor | None:
    """:func:`correlation_distill_loss` of outputs ``clip_word_attention``, ``clip_word_similarity (B, T, S)``,
    ``key_valid (B, S)`` and ``moment_mask (B, T)``."""
    o = x.outputs
    if "clip_word_similarity" not in o:
        return None
    return correlation_distill_loss(o["clip_word_attention"], o["clip_word_similarity"], o["key_valid"],
                                    o["moment_mask"])


@register_term("ortho")
def ortho_term(c: SetCriterion, x: LossInputs) -> torch.Tensor | None:
    """:func:`orthogonality_loss` of outputs ``dummy_tokens (B, N_d, d)`` plus that of
    ``saliency_prototypes (P, d)``."""
    o = x.outputs
    if "dummy_tokens" not in o:
        return None
    total = orthogonality_loss(o["dummy_tokens"])
    if "saliency_prototypes" in o:
        total = total + orthogonality_loss(o["saliency_prototypes"])
    return total


# ----------------------------------------------------------------------------- the model
class CGDETR(MomentDETR):
    """CG-DETR: :class:`~momentkit.models.detr.MomentDETR` with CG-DETR's encoder (:meth:`_encode`); the
    rest of ``forward`` (decoder, heads, decoder and matching options, negative pairs) is MomentDETR's.
    See the module docstring.

    Outputs beside MomentDETR's: ``word_attention (B, T)``, ``clip_word_attention (B, T, S)``,
    ``dummy_tokens (B, N_d, d)``, ``saliency_prototypes (P, d)``, the projected inputs ``video_tokens``,
    ``video_pos (B, T, d)``, ``text_tokens``, ``text_pos (B, L, d)`` (token types added), and in training
    with negative pairs ``word_attention_neg`` and ``saliency_neg_ok (B, T)``.
    """

    EXTRA = ("word_attention", "clip_word_attention", "dummy_tokens", "video_tokens", "video_pos",
             "text_tokens", "text_pos")

    def __init__(self, config: CGDETRConfig | None = None):
        cfg = config or CGDETRConfig()
        super().__init__(cfg)
        d = cfg.hidden_dim
        del self.sal_token  # the saliency token is built from the prototypes; sal_pos stays its position
        kw = dict(d_model=d, nhead=cfg.nheads, dim_ff=cfg.ffn_dim, dropout=cfg.dropout,
                  activation=cfg.activation, pre_norm=cfg.pre_norm, drop_path=cfg.drop_path)
        self.t2v = nn.ModuleList(AdaptiveCrossAttentionLayer(**kw) for _ in range(cfg.t2v_layers))
        self.token_type = nn.Embedding(2, d)  # row 0: text, row 1: video
        nn.init.normal_(self.token_type.weight, std=0.02)
        self.dummy_tokens = nn.Parameter(torch.randn(cfg.num_dummies, d))
        self.dummy_pos = nn.Parameter(torch.randn(cfg.num_dummies, d))
        self.dummy_encoder = TransformerEncoder(EncoderLayer(**kw), cfg.dummy_layers)
        self.sentence_token = nn.Parameter(torch.randn(d))
        self.sentence_pos = nn.Parameter(torch.randn(d))
        self.sentence_encoder = TransformerEncoder(EncoderLayer(**kw), cfg.sent_layers)
        self.moment_token = nn.Parameter(torch.randn(d))
        self.moment_pos = nn.Parameter(torch.randn(d))
        self.moment_encoder = TransformerEncoder(EncoderLayer(**kw), cfg.moment_layers)
        self.prototypes = nn.Parameter(torch.randn(cfg.saliency_prototypes, d))
        for p in (*self.t2v.parameters(), *self.moment_encoder.parameters()):
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        self._encodings: list[dict] | None = None

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict) -> dict:
        self._encodings = []  # MomentDETR.forward encodes the batch, then (negative pairs) the rolled one
        try:
            out = super().forward(batch)
            encodings = self._encodings
        finally:
            self._encodings = None
        out.update({k: encodings[0][k] for k in self.EXTRA})
        out["saliency_prototypes"] = self.prototypes
        if "saliency_scores_neg" in out and len(encodings) > 1:
            scores = out["saliency_scores_neg"]
            out["word_attention_neg"] = encodings[-1]["word_attention"]
            ok = _real_negatives(batch.get("meta"), scores.shape[0], scores.device)
            if ok is not None:
                out["saliency_neg_ok"] = ok[:, None] & batch["video_mask"].to(scores.device).bool()
                out["saliency_scores_neg"] = torch.where(ok[:, None], scores, NEG_FILL)
        return out

    def _encode(self, v, vm, pos_v, t, tm, pos_t) -> dict:
        """CG-DETR's encoder for projected clips ``v (B, T, d)`` and words ``t (B, L, d)`` (masks True =
        valid, positions): ``clips`` / ``memory (B, T, d)`` (encoded clips plus the encoded token),
        ``token (B, d)``, ``memory_mask``, ``memory_pos``, and :attr:`EXTRA` (see the module docstring)."""
        v = v + self.token_type.weight[1]
        t = t + self.token_type.weight[0]
        ctx = ((v * vm[..., None]).sum(1) / vm.sum(1, keepdim=True)).detach()  # (B, d) mean clip
        dummies = self.query_dummies(t, tm, pos_t)
        k, k_pad, k_pos = self._keys(dummies, t, tm, pos_t)
        nd = self.config.num_dummies
        x, maps = v, []
        for layer in self.t2v:
            x, w = layer(x, k, k_pad, pos_v, k_pos, num_dummies=nd)
            maps.append(w)
        attention = torch.stack(maps).mean(0)
        word = attention[..., nd:].sum(-1).clamp(0.0, 1.0) * vm  # padded words have weight 0
        b = v.shape[0]
        token = self.saliency_token(v, vm, ctx, word)[:, None]
        token_pos = self.sal_pos.to(v).expand(b, 1, -1)
        for layer in self.t2v:
            token, _ = layer(token, k, k_pad, token_pos, k_pos, num_dummies=0)
        mask = torch.cat([vm.new_ones(b, 1), vm], 1)
        memory = self.encoder(torch.cat([token, x], 1), ~mask, torch.cat([token_pos, pos_v], 1))
        glob = memory[:, 0]
        clips = memory[:, 1:] + glob[:, None]
        enc = {"clips": clips, "token": glob, "memory": clips, "memory_mask": vm, "memory_pos": pos_v,
               "word_attention": word, "clip_word_attention": attention, "dummy_tokens": dummies,
               "video_tokens": v, "video_pos": pos_v, "text_tokens": t, "text_pos": pos_t}
        if self._encodings is not None:
            self._encodings.append(enc)
        return enc

    def query_dummies(self, t, tm, pos_t) -> torch.Tensor:
        """The dummy tokens of each query: ``[dummies; words]`` through ``dummy_layers`` -> ``(B, N_d, d)``."""
        b, nd = t.shape[0], self.config.num_dummies
        src = torch.cat([self.dummy_tokens.to(t).expand(b, -1, -1), t], 1)
        pos = torch.cat([self.dummy_pos.to(t).expand(b, -1, -1), pos_t], 1)
        valid = torch.cat([tm.new_ones(b, nd), tm], 1)
        return self.dummy_encoder(src, ~valid, pos)[:, :nd]

    def _keys(self, dummies, t, tm, pos_t):
        """Keys of the adaptive cross-attention: ``[dummies; words] (B, S, d)``, padding ``(B, S)``, positions."""
        b, nd = t.shape[0], self.config.num_dummies
        pad = torch.cat([tm.new_zeros(b, nd), ~tm], 1)
        return torch.cat([dummies, t], 1), pad, torch.cat([self.dummy_pos.to(t).expand(b, -1, -1), pos_t], 1)

    def saliency_token(self, v, vm, ctx, word) -> torch.Tensor:
        """Moment-adaptive saliency token ``(B, d)``: ``ctx`` plus the top ``saliency_topk`` prototypes, each
        weighted by its softmax similarity to ``clip - ctx`` averaged over the clips with weights ``word``
        (the clips' attention mass on the words, detached). ``v (B, T, d)``, ``vm``, ``word (B, T)``."""
        sim = F.normalize(v - ctx[:, None], dim=-1) @ F.normalize(self.prototypes.to(v), dim=-1).T  # (B, T, P)
        importance = (word * vm).detach()
        importance = importance / importance.sum(1, keepdim=True).clamp(min=1e-6)
        weights = (sim.softmax(-1) * importance[..., None]).sum(1)  # (B, P)
        value, index = weights.topk(self.config.saliency_topk, dim=1)
        return ctx + (value[..., None] * self.prototypes.to(v)[index]).sum(1)

    # ------------------------------------------------------------------ loss
    def loss(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """As :meth:`MomentDETR.loss`, after the clip-word correlation branch
        (:meth:`correlation_outputs`) has read the targets; adds ``loss_attn_saliency``,
        ``loss_moment_sentence``, ``loss_distill``, ``loss_ortho``."""
        if {"moment_sentence", "distill"} & set(self.criterion.weights):
            outputs = {**outputs, **self.correlation_outputs(outputs, batch)}
        return MomentDETR.loss(self, outputs, batch)

    def correlation_outputs(self, outputs: dict, batch: dict) -> dict:
        """Moment, non-moment, sentence and dummy-sentence tokens ``(B, d)``, ``moment_clip_logits (B, T)``,
        ``clip_word_similarity (B, T, S)``, ``key_valid (B, S)`` and ``moment_mask (B, T)`` (batch
        ``saliency > 0``, else the clips inside a window of ``spans``; outputs ``targets``, the targets
        a training augmentation made, replace the batch's)."""
        if "targets" in outputs:
            batch = {**batch, **outputs["targets"]}
        v, pos_v, t, pos_t = (outputs[k] for k in ("video_tokens", "video_pos", "text_tokens", "text_pos"))
        dummies = outputs["dummy_tokens"]
        vm = batch["video_mask"].to(v.device).bool()
        tm = batch["text_mask"].to(v.device).bool()
        if "saliency" in batch:
            moment = (torch.as_tensor(batch["saliency"], device=v.device) > 0) & vm
        elif "spans" in batch:
            moment = clips_in_spans(batch["spans"], vm)
        else:
            raise InputError("CG-DETR's correlation losses need 'saliency' or 'spans'", field="saliency")
        b, nd = v.shape[0], self.config.num_dummies
        one = vm.new_ones(b, 1)

        def lead(token, pos, src, src_pos, valid, encoder):
            x = torch.cat([token.to(v).expand(b, 1, -1), src], 1)
            p = torch.cat([pos.to(v).expand(b, 1, -1), src_pos], 1)
            y = encoder(x, ~torch.cat([one, valid], 1), p)
            return y[:, 0], y[:, 1:]

        sentence, words = lead(self.sentence_token, self.sentence_pos, t, pos_t, tm, self.sentence_encoder)
        dummy_pos = self.dummy_pos.to(v).expand(b, -1, -1)
        dummy_sentence, dwords = lead(self.sentence_token, self.sentence_pos, dummies, dummy_pos,
                                      vm.new_ones(b, nd), self.sentence_encoder)
        mom, frames_m = lead(self.moment_token, self.moment_pos, v, pos_v, moment, self.moment_encoder)
        non, frames_n = lead(self.moment_token, self.moment_pos, v, pos_v, vm & ~moment, self.moment_encoder)
        frames = torch.where(moment[..., None], frames_m, frames_n)
        return {
            "moment_mask": moment,
            "moment_token": mom,
            "nonmoment_token": non,
            "sentence_token": sentence,
            "dummy_sentence_token": dummy_sentence,
            "moment_clip_logits": (frames * mom[:, None]).sum(-1),
            "clip_word_similarity": frames_m @ torch.cat([dwords, words], 1).transpose(1, 2),
            "key_valid": torch.cat([vm.new_ones(b, nd), tm], 1),
        }


def _real_negatives(meta, b: int, device) -> torch.Tensor | None:
    """``(B,)`` bool: sample i and sample i + 1 (the pair of negative pairs) come from different videos;
    None when the batch names no videos."""
    if not meta or len(meta) != b or any("vid" not in m for m in meta):
        return None
    vids = [m["vid"] for m in meta]
    return torch.tensor([vids[i] != vids[(i + 1) % b] for i in range(b)], device=device)


def make_config(**overrides) -> CGDETRConfig:
    """A :class:`CGDETRConfig` with ``overrides`` (the per-dataset values are in ``configs/cg_detr/``);
    unknown keys raise :class:`InputError`."""
    known = {f.name for f in dataclasses.fields(CGDETRConfig)}
    for key in overrides:
        if key not in known:
            raise InputError(f"unknown model option {key!r}", field=key)
    return CGDETRConfig(**overrides)


@register_model("cg_detr", config=CGDETRConfig)
def cg_detr(**cfg) -> CGDETR:
    """CG-DETR (Moon et al.), published QVHighlights configuration; ``cfg`` overrides any option."""
    return CGDETR(make_config(**cfg))
