"""VicTR: video-conditioned text representations (thesis 004, chapter 5, Sec. 5.3), task ``classification``.

Inputs (:class:`momentkit.models.contract.ClassificationBatch`): per-frame image embeddings
``e_img^t`` ``(B, V, T, D)`` of a frozen image-VLM, the ``n`` class-text embeddings ``e_txt^x`` ``(n, D)``
and optionally ``m`` auxiliary texts ``e_aux^y`` ``(m, D)`` in ``k`` semantic groups -- all in the VLM's
joint space (``input_dim == text_dim``). The head, as Sec. 5.3 defines it:

1. **Token-boosting** (5.3.1): ``e_txt^{t,x} = e_txt^x * SigAffinity(e_img^t, e_txt^x)`` and the same
   for the auxiliary texts, with ``SigAffinity(a, b) = sigmoid(w * cos(a, b))``, ``w`` learnable; the
   ``T x (1 + n + m)`` tokens ``z^t = [e_img^t, e_txt^{t,x}, e_aux^{t,y}]``.
2. ``L`` (``layers``, default 4) blocks of (5.3.2) ``Z^ = Z + MSA_cross(LN(Z))`` -- attention among the
   ``1 + n + m`` tokens of one timestep -- and ``Z- = Z^ + MSA_temporal(LN(Z^))`` -- attention of each
   token along time, with parameters shared by visual and text tokens; then (5.3.3) **affinity
   re-weighting**: the text tokens are pooled over time, ``e-^x = Pool_t(e-^{t,x})``, and replaced by
   ``e-^x * SigAffinity(e-_vid^t, e-^x)`` at every timestep (auxiliary tokens alike); then
   ``Z_{l+1} = Z- + MLP(Z-)``.
3. (5.3.4) temporal pooling of every token: one video embedding, ``n`` video-conditioned class texts,
   ``m`` auxiliary texts averaged within each of the ``k`` groups; all mapped to ``proj_dim`` (256)
   dimensions; ``logit^x = Affinity(e_vid, e_txt^x)`` and ``logit_aux^{x,y} = Affinity(e_txt^x, e_aux^y)``,
   affinity = cosine similarity times a learnable scale (CLIP's ``logit_scale``, initialised at
   ``1 / 0.07``, at most 100). Loss: cross-entropy of the logits (BCE for multi-label data).

Where the thesis is silent, this implementation chooses (and says so here):

- ``w`` of SigAffinity starts at ``affinity_init`` = 10 (a CLIP cosine spread of ~0.1 then changes the
  weight by ~0.25); token-boosting has one ``w`` (class and auxiliary texts share it) and every
  block's re-weighting its own.
- Learnable temporal position embeddings (zero-initialised) are added to every token before the
  first block (``temporal_pos``): divided attention alone cannot tell the order of frames. Pool =
  the mean over time, in the blocks and at the end.
- The MLP has its own input LayerNorm (ViT / TimeSformer blocks); a final LayerNorm precedes the
  256-d projection, which video, class and auxiliary embeddings share (one joint space).
- The auxiliary loss (the thesis: "guided by the loss on logit_aux", no auxiliary labels exist): for
  every group ``y``, ``logit_aux^{.,y}`` over the classes is a classifier of the video's label, trained
  with the same cross-entropy; the groups' mean is weighted by ``aux_loss_weight`` (0.5).
- Several views of one video: each view is a separate pass; ``postprocess`` averages the views'
  probabilities.

Ablation switches (the thesis's Tables 5.5 / 5.6 and Sec. 5.3.5), also registered as named presets
(bottom of the module): ``token_boosting: false`` (text tokens replicated per frame, unweighted),
``reweighting``: ``affinity`` | ``none`` | ``learnable`` (a learned gate of each pooled text token,
``sigmoid(u . e-^x + b)``, no visual grounding) | ``attention`` (``sigmoid(<W_q e-_vid^t, W_k e-^x> /
sqrt(D))``, learned attention-style weights), ``attention: joint`` (one MSA over all ``T (1 + n + m)``
tokens instead of the divided pair), ``aux: false``, ``classifier``: ``affinity`` | ``visual`` (a linear
map of the video embedding to the training classes, as EVL) | ``text`` (a linear map of each
video-conditioned class embedding to its logit), ``video_embedding: clip`` / ``text_embedding: clip``
(the head's video or text embeddings replaced by the temporally pooled CLIP frames or the original
CLIP text, Table 5.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from momentkit.errors import InputError
from momentkit.models.registry import register_model

REWEIGHTINGS = ("affinity", "none", "learnable", "attention")
CLASSIFIERS = ("affinity", "visual", "text")


def affinity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every row of ``a (..., P, D)`` with every row of ``b (..., Q, D)``: ``(..., P, Q)``."""
    return F.normalize(a, dim=-1, eps=1e-6) @ F.normalize(b, dim=-1, eps=1e-6).transpose(-1, -2)


class SigAffinity(nn.Module):
    """``sigmoid(w * cos(a, b))`` with a learnable ``w``: affinity weights in [0, 1]."""

    def __init__(self, init: float = 10.0) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(float(init)))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.w * affinity(a, b))


class LogitScale(nn.Module):
    """CLIP's learnable temperature: ``exp(s)``, ``s`` initialised at ``log(init)``, at most ``max_scale``."""

    def __init__(self, init: float = 1 / 0.07, max_scale: float = 100.0) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.tensor(math.log(init)))
        self.max_log = math.log(max_scale)

    def forward(self) -> torch.Tensor:
        return self.s.clamp(max=self.max_log).exp()


@dataclass
class VicTRConfig:
    input_dim: int = 0  # frame embedding width (filled from the data)
    text_dim: int = 0  # class-text embedding width (filled from the data; the joint space: = input_dim)
    num_classes: int = 0  # training classes (filled; only the visual classifier has one output per class)
    frames: int = 0  # frames per view (filled; temporal position embeddings)
    layers: int = 4
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    proj_dim: int = 256
    temporal_pos: bool = True
    token_boosting: bool = True
    attention: str = "divided"  # divided | joint
    reweighting: str = "affinity"  # affinity | none | learnable | attention
    classifier: str = "affinity"  # affinity | visual | text
    video_embedding: str = "head"  # head | clip (temporally pooled input frames)
    text_embedding: str = "head"  # head | clip (the input class texts)
    aux: bool = True  # use the auxiliary texts the data gives
    aux_loss_weight: float = 0.5
    affinity_init: float = 10.0  # initial w of SigAffinity

    def __post_init__(self) -> None:
        choices = {"attention": ("divided", "joint"), "reweighting": REWEIGHTINGS, "classifier": CLASSIFIERS,
                   "video_embedding": ("head", "clip"), "text_embedding": ("head", "clip")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise InputError(f"expected one of {', '.join(allowed)}, got {getattr(self, key)!r}", field=key)
        for key in ("layers", "heads", "proj_dim"):
            if getattr(self, key) < 1:
                raise InputError(f"must be >= 1, got {getattr(self, key)}", field=key)
        if not 0 <= self.dropout < 1:
            raise InputError(f"must be in [0, 1), got {self.dropout}", field="dropout")
        if self.aux_loss_weight < 0:
            raise InputError(f"must be >= 0, got {self.aux_loss_weight}", field="aux_loss_weight")
        if self.input_dim and self.input_dim % self.heads:
            raise InputError(f"the width {self.input_dim} is not divisible by {self.heads} heads", field="heads")
        if self.input_dim and self.text_dim and self.input_dim != self.text_dim:
            raise InputError(f"frame embeddings ({self.input_dim}) and class texts ({self.text_dim}) must share "
                             "one joint space (same width): VicTR compares them by cosine", field="text_dim")

    @property
    def fixed_vocabulary(self) -> bool:
        return self.classifier == "visual"


class Mlp(nn.Module):
    def __init__(self, dim: int, ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = max(1, round(dim * ratio))
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Reweight(nn.Module):
    """Affinity (re-)weighting of the text tokens of ``z (B, T, N, D)`` (token 0: the video token)."""

    def __init__(self, cfg: VicTRConfig, dim: int) -> None:
        super().__init__()
        self.mode = cfg.reweighting
        if self.mode == "affinity":
            self.sig = SigAffinity(cfg.affinity_init)
        elif self.mode == "learnable":
            self.gate = nn.Linear(dim, 1)
        elif self.mode == "attention":
            self.q, self.k = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def weights(self, video: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """``video (B, T, D)``, ``pooled (B, M, D)`` -> weights ``(B, T, M)`` in [0, 1]."""
        if self.mode == "affinity":
            return self.sig(video, pooled)
        if self.mode == "learnable":
            return torch.sigmoid(self.gate(pooled)).transpose(1, 2).expand(-1, video.shape[1], -1)
        scores = self.q(video) @ self.k(pooled).transpose(1, 2) / math.sqrt(video.shape[-1])
        return torch.sigmoid(scores)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.mode == "none" or z.shape[2] == 1:
            return z
        video, text = z[:, :, :1], z[:, :, 1:]
        pooled = text.mean(1)  # (B, M, D)
        w = self.weights(video[:, :, 0], pooled)  # (B, T, M)
        return torch.cat([video, pooled[:, None] * w[..., None]], dim=2)


class VicTRBlock(nn.Module):
    """Cross-modal MSA within a timestep, temporal MSA per token, affinity re-weighting, MLP."""

    def __init__(self, cfg: VicTRConfig, dim: int) -> None:
        super().__init__()
        self.joint = cfg.attention == "joint"
        self.norm1 = nn.LayerNorm(dim)
        self.cross = nn.MultiheadAttention(dim, cfg.heads, dropout=cfg.dropout, batch_first=True)
        if not self.joint:
            self.norm2 = nn.LayerNorm(dim)
            self.temporal = nn.MultiheadAttention(dim, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.reweight = Reweight(cfg, dim)
        self.mlp = Mlp(dim, cfg.mlp_ratio, cfg.dropout)

    @staticmethod
    def _attend(attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
        return attn(x, x, x, need_weights=False)[0]

    def cross_step(self, z: torch.Tensor) -> torch.Tensor:
        """``Z + MSA_cross(LN(Z))``: the ``N`` tokens of each timestep attend to each other (``joint``: all
        ``T N`` tokens)."""
        b, t, n, d = z.shape
        if self.joint:
            return z + self._attend(self.cross, self.norm1(z).reshape(b, t * n, d)).reshape(b, t, n, d)
        return z + self._attend(self.cross, self.norm1(z).reshape(b * t, n, d)).reshape(b, t, n, d)

    def temporal_step(self, z: torch.Tensor) -> torch.Tensor:
        """``Z + MSA_temporal(LN(Z))``: each token attends to itself at the other timesteps."""
        if self.joint:
            return z
        b, t, n, d = z.shape
        y = self.norm2(z).transpose(1, 2).reshape(b * n, t, d)
        return z + self._attend(self.temporal, y).reshape(b, n, t, d).transpose(1, 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = self.reweight(self.temporal_step(self.cross_step(z)))
        return z + self.mlp(z)


def _batch_inputs(batch: dict, text_needed: bool = True):
    feats = batch["feats"]
    if feats.ndim == 3:  # (B, T, D): one view
        feats = feats[:, None]
    if text_needed and batch.get("class_text") is None:
        raise InputError("this model scores class texts: the data gives none (data.class_text or data.text_model)",
                         field="data.class_text")
    return feats


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """Cross-entropy of ``logits (B, V, K)`` against ``labels (B, K)`` (every view; BCE for multi-label)."""
    b, v, k = logits.shape
    flat = logits.reshape(b * v, k)
    target = labels.to(logits.dtype).repeat_interleave(v, dim=0)
    if multi_label:
        return F.binary_cross_entropy_with_logits(flat, target)
    return F.cross_entropy(flat, target.argmax(-1))


@torch.no_grad()
def view_probabilities(logits: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """``(B, V, K)`` logits -> ``(B, K)`` probabilities averaged over the views."""
    probs = logits.float().sigmoid() if multi_label else logits.float().softmax(-1)
    return probs.mean(1)


def classification_rows(outputs: dict, batch: dict) -> list[dict]:
    probs = view_probabilities(outputs["logits"], bool(batch.get("multi_label", False))).cpu().numpy()
    return [{"video": m["video"], "scores": probs[i]} for i, m in enumerate(batch["meta"])]


class VicTR(nn.Module):
    """See the module docstring. ``forward(batch) -> {"logits" (B, V, n), "aux_logits" (B, V, n, k) | None,
    "video_embedding" (B, V, P), "text_embedding" (B, V, n, P), "aux_embedding" (B, V, k, P)}`` (P = ``proj_dim``;
    the group embeddings only with auxiliary texts)."""

    def __init__(self, cfg: VicTRConfig) -> None:
        super().__init__()
        if cfg.input_dim < 1:
            raise InputError("input_dim must be set (it comes from the data)", field="model.input_dim")
        if cfg.classifier == "visual" and cfg.num_classes < 1:
            raise InputError("the visual classifier needs num_classes (it comes from the data)",
                             field="model.num_classes")
        self.cfg = cfg
        d = cfg.input_dim
        self.boost = SigAffinity(cfg.affinity_init) if cfg.token_boosting else None
        self.pos = nn.Parameter(torch.zeros(max(cfg.frames, 1), d)) if cfg.temporal_pos else None
        self.blocks = nn.ModuleList(VicTRBlock(cfg, d) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(d)
        self.proj = nn.Linear(d, cfg.proj_dim)
        self.scale = LogitScale()
        if cfg.classifier == "visual":
            self.visual_head = nn.Linear(cfg.proj_dim, cfg.num_classes)
        elif cfg.classifier == "text":
            self.text_head = nn.Linear(cfg.proj_dim, 1)

    def tokens(self, frames: torch.Tensor, text: torch.Tensor, aux: torch.Tensor | None) -> torch.Tensor:
        """Token-boosting: ``frames (B, T, D)``, ``text (n, D)``, ``aux (m, D)`` -> ``Z_0 (B, T, 1 + n + m, D)``."""
        b, t, d = frames.shape
        texts = text if aux is None else torch.cat([text, aux])
        boosted = texts.to(frames.dtype).expand(b, t, *texts.shape)
        if self.boost is not None:
            boosted = boosted * self.boost(frames, texts.to(frames.dtype))[..., None]  # (B, T, n + m, 1)
        return torch.cat([frames[:, :, None], boosted], dim=2)

    def encode(self, frames: torch.Tensor, text: torch.Tensor, aux: torch.Tensor | None) -> torch.Tensor:
        """The head: ``Z_0`` through the blocks, pooled over time: ``(B, 1 + n + m, D)``."""
        z = self.tokens(frames, text, aux)
        if self.pos is not None:
            if z.shape[1] > self.pos.shape[0]:
                raise InputError(f"{z.shape[1]} frames per view, the model was built for {self.pos.shape[0]}",
                                 field="data.frames")
            z = z + self.pos[: z.shape[1], None]
        for block in self.blocks:
            z = block(z)
        return z.mean(1)

    def forward(self, batch: dict) -> dict:
        cfg = self.cfg
        feats = _batch_inputs(batch, text_needed=cfg.classifier != "visual")
        b, v, t, d = feats.shape
        frames = feats.reshape(b * v, t, d)
        text = batch.get("class_text")
        if text is None:  # a visual classifier without class texts: the video token alone
            text = frames.new_zeros(0, d)
        aux = batch.get("aux_text") if cfg.aux else None
        n = text.shape[0]
        pooled = self.encode(frames, text, aux)
        video = frames.mean(1) if cfg.video_embedding == "clip" else pooled[:, 0]
        ctext = text.to(frames.dtype).expand(b * v, n, d) if cfg.text_embedding == "clip" else pooled[:, 1: 1 + n]
        e_vid = self.proj(self.norm(video))
        e_txt = self.proj(self.norm(ctext))
        if cfg.classifier == "affinity":
            logits = self.scale() * affinity(e_vid[:, None], e_txt)[:, 0]
        elif cfg.classifier == "visual":
            logits = self.visual_head(e_vid)
        else:
            logits = self.text_head(e_txt)[..., 0]
        out = {"logits": logits.reshape(b, v, -1), "aux_logits": None,
               "video_embedding": e_vid.reshape(b, v, -1), "text_embedding": e_txt.reshape(b, v, n, -1)}
        if aux is not None and n:
            groups = batch["aux_groups"].to(frames.device)
            k = int(groups.max()) + 1
            onehot = F.one_hot(groups, k).to(frames.dtype)  # (m, k)
            group_emb = (onehot.T @ pooled[:, 1 + n:]) / onehot.sum(0)[:, None]  # (B, k, D) mean within a group
            e_aux = self.proj(self.norm(group_emb))
            out["aux_logits"] = (self.scale() * affinity(e_txt, e_aux)).reshape(b, v, n, k)
            out["aux_embedding"] = e_aux.reshape(b, v, k, -1)
        return out

    def loss(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        multi = bool(batch.get("multi_label", False))
        cls = classification_loss(outputs["logits"], batch["labels"], multi)
        terms = {"loss_cls": cls.detach()}
        total = cls
        aux = outputs.get("aux_logits")
        if aux is not None and self.cfg.aux_loss_weight > 0:
            k = aux.shape[-1]
            per_group = torch.stack([classification_loss(aux[..., y], batch["labels"], multi) for y in range(k)])
            total = total + self.cfg.aux_loss_weight * per_group.mean()
            terms["loss_aux"] = per_group.mean().detach()
        return total, terms

    @torch.no_grad()
    def postprocess(self, outputs: dict, batch: dict, **_) -> list[dict]:
        return classification_rows(outputs, batch)


# ----------------------------------------------------------------------------- registered variants
VARIANTS = {
    "victr": {},
    "victr_no_boost": {"token_boosting": False},
    "victr_no_reweight": {"reweighting": "none"},
    "victr_learnable_weights": {"reweighting": "learnable"},
    "victr_attention_weights": {"reweighting": "attention"},
    "victr_joint_attention": {"attention": "joint"},
    "victr_no_aux": {"aux": False},
    "victr_visual_classifier": {"classifier": "visual"},
    "victr_text_classifier": {"classifier": "text"},
    "victr_clip_video": {"video_embedding": "clip"},
    "victr_clip_text": {"text_embedding": "clip"},
}


def _factory(name: str):
    def build(**options) -> VicTR:
        from momentkit.models.registry import model_config

        return VicTR(model_config(name, options))

    build.__name__ = name
    build.__doc__ = f"VicTR, variant {name!r}: {VARIANTS[name] or 'as Sec. 5.3 defines it'}."
    return build


for _name, _preset in VARIANTS.items():
    register_model(_name, config=VicTRConfig, task="classification", presets=_preset)(_factory(_name))
