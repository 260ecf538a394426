"""A Stable Diffusion UNet inflated to video through diffusers attention processors.

Latents of one video are a batch ``(copies * F, C, h, w)``: ``F`` frames, ``copies`` = 2 under
classifier-free guidance (``[unconditional, conditional]``), frames contiguous in each copy. The
UNet's own layers are untouched; its attention processors are replaced (``set_attn_processor``):

- self-attention layers (``attn1``) become **cross-frame attention** (:class:`FrameAttnProcessor`):
  the queries of frame ``f`` attend to the keys/values of a *span* of frames: ``"self"`` (frame ``f``
  alone, the image model), ``"sparse"`` (the first frame and the previous one, as Tune-A-Video /
  FateZero's sparse-causal attention; frame 0 attends to itself twice, which changes nothing) or
  ``"dense"`` (all ``F`` frames, ControlVideo's fully cross-frame attention; the queries of all
  frames then share one key/value pool). Keys and values can be reduced by token merging
  (:mod:`momentkit.edit.tome`) before the projections; queries are never merged (appendix).
- text cross-attention layers (``attn2``) get :class:`TextAttnProcessor`.

Both can store attention probabilities during inversion and fuse them into generation, FateZero style
(:class:`AttentionStore`): for the conditional copy, in the first ``cross_replace`` fraction of the
diffusion time, the text cross-attention of every target token aligned with a source token is the
stored map of that source token (Prompt-to-Prompt's refinement mapping); in the first
``self_replace`` fraction the cross-frame self-attention of background queries is the stored map and
foreground queries keep their own (FateZero's attention blending, with the foreground mask; without a
mask every query takes the stored map). Maps are stored only for layers whose frames have at most
``store_max_tokens`` query tokens (FateZero and Prompt-to-Prompt keep the maps of resolutions up to
32x32 at 512x512, i.e. all but the full-latent-resolution layers; the default does the same at any
resolution), in float16, and only for the steps generation will use.

What a call needs to know (mode, time, region of Object-Centric Sampling, masks, merge plans) lives
in one :class:`EditState` shared by all processors and set by the pipeline before each UNet call.
Attention (map fusion included) and token merging run inside ``torch.profiler.record_function``
scopes named ``edit.attention.MODE`` and ``edit.tome.MODE`` (``MODE`` = ``invert``, ``generate``, ...;
merging is inside attention), so a profile splits the time of each phase the way Fig. 6.2 does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.profiler import record_function

from momentkit.edit.tome import ToMeConfig, apply_merge, plan_merge

SPANS = ("self", "sparse", "dense")
MODES = ("plain", "invert", "generate", "probe")


class AttentionStore:
    """Attention probabilities of the conditional branch kept during inversion, by
    ``(kind, region, layer, time)``; float16 by default (the thesis counts 16-bit floats)."""

    def __init__(self, dtype: torch.dtype = torch.float16) -> None:
        self.dtype = dtype
        self.maps: dict[tuple, torch.Tensor] = {}

    def put(self, key: tuple, probs: torch.Tensor) -> None:
        self.maps[key] = probs.detach().to(self.dtype)

    def get(self, key: tuple) -> torch.Tensor | None:
        return self.maps.get(key)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.maps.values())

    def clear(self) -> None:
        self.maps.clear()


@dataclass
class EditState:
    """Everything the processors need for the current UNet call (set by the pipeline).

    ``mode``: ``plain`` (no storing or fusing), ``invert`` (store maps and merge plans), ``generate``
    (fuse stored maps, re-use paired plans), ``probe`` (collect the cross-attention maps of
    ``probe_tokens`` for a word mask). ``region``: ``joint``, ``fg`` or ``bg`` (Object-Centric
    Sampling); ``t``: algorithm time of the evaluation; ``latent_hw``: the region's latent size;
    ``fg``: ``(F, h, w)`` bool foreground of the region at latent resolution, or None.
    """

    num_frames: int = 1
    span: str = "dense"
    mode: str = "plain"
    region: str = "joint"
    t: int = 0
    cfg: bool = False
    latent_hw: tuple[int, int] = (1, 1)
    fg: torch.Tensor | None = None
    tome: ToMeConfig = field(default_factory=ToMeConfig)
    tome_controlnet: bool = True
    plans: dict = field(default_factory=dict)
    store: AttentionStore | None = None
    store_max_tokens: int = 0
    T: int = 1000
    self_replace: float = 0.0
    cross_replace: float = 0.0
    token_map: tuple[torch.Tensor, torch.Tensor] | None = None  # (mapper (L,), alphas (L,))
    probe_tokens: list[int] = field(default_factory=list)
    probe_sum: torch.Tensor | None = None
    probe_count: int = 0
    tokens_seen: dict = field(default_factory=dict)  # layer -> (tokens in, tokens after merging)
    plan_log: list | None = None  # when a list: (mode, (region, layer, t), plan) of every merge, for checks

    def __post_init__(self) -> None:
        if self.span not in SPANS:
            raise ValueError(f"unknown attention span {self.span!r} (expected one of {', '.join(SPANS)})")

    def replaces(self, kind: str) -> bool:
        """Whether the step at the current time fuses (generation) or keeps (inversion) ``kind`` maps:
        inside the first ``self_replace`` / ``cross_replace`` fraction of the diffusion time."""
        frac = self.self_replace if kind == "self" else self.cross_replace
        return frac > 0 and self.t > (1.0 - frac) * self.T


def layer_hw(latent_hw: tuple[int, int], tokens: int) -> tuple[int, int]:
    """Token grid of a UNet layer with ``tokens`` per frame for a latent of ``latent_hw``
    (each downsampling halves the sides, rounding up)."""
    h, w = latent_hw
    while h * w > tokens:
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    if h * w != tokens:
        raise ValueError(f"{tokens} tokens per frame do not match a latent of {latent_hw}")
    return h, w


def resize_mask(mask: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """``(F, H, W)`` bool -> ``(F, h, w)`` bool: a cell is foreground when any of its pixels is
    (adaptive max pooling; exact for downsampling by integer factors)."""
    if tuple(mask.shape[-2:]) == tuple(hw):
        return mask.bool()
    return F.adaptive_max_pool2d(mask.float()[:, None], hw)[:, 0] > 0.5


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, c = t.shape
    return t.view(b, n, heads, c // heads).transpose(1, 2)


def _probs(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    return (q @ k.transpose(-1, -2) * scale).softmax(dim=-1)


class FrameAttnProcessor:
    """Cross-frame self-attention with optional key/value token merging and map storing/fusing."""

    def __init__(self, state: EditState, name: str, *, controlnet: bool = False) -> None:
        self.state = state
        self.name = name
        self.controlnet = controlnet

    def _pools(self, x: torch.Tensor, copies: int, frames: int) -> tuple[torch.Tensor, int, torch.Tensor | None]:
        """Key/value pools ``(rows, L * N, C)``, frames per pool ``L`` and the frame of every pool slot."""
        span = self.state.span
        n, c = x.shape[1], x.shape[2]
        if span == "dense":
            return x.reshape(copies, frames * n, c), frames, torch.arange(frames)[None]
        if span == "self":
            return x, 1, torch.arange(frames)[:, None]
        idx = torch.stack([torch.zeros(frames, dtype=torch.long), (torch.arange(frames) - 1).clamp(min=0)], 1)
        pools = x.view(copies, frames, n, c)[:, idx]  # (copies, F, 2, N, C)
        return pools.reshape(copies * frames, 2 * n, c), 2, idx

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("cross-frame attention replaces self-attention layers only")
        st = self.state
        with record_function(f"edit.attention.{st.mode}"):
            x = hidden_states
            input_ndim = x.ndim
            if input_ndim == 4:
                b4, c4, h4, w4 = x.shape
                x = x.view(b4, c4, h4 * w4).transpose(1, 2)
            if attn.group_norm is not None:
                x = attn.group_norm(x.transpose(1, 2)).transpose(1, 2)
            frames = st.num_frames
            bf, n, c = x.shape
            copies = bf // frames
            h, w = layer_hw(st.latent_hw, n)
            query = attn.to_q(x)
            kv, per_pool, pool_frames = self._pools(x, copies, frames)

            tome = st.tome
            if tome.enabled and (st.tome_controlnet or not self.controlnet):
                key = (st.region, self.name, st.t)
                with record_function(f"edit.tome.{st.mode}"):
                    plan = None
                    if st.mode == "generate" and tome.paired and key in st.plans:
                        plan = st.plans[key].to(kv.device).repeat(copies)
                    if plan is None:
                        fg = None
                        if st.fg is not None and tome.eta < 1.0:  # foreground of every pool slot
                            fgf = resize_mask(st.fg, (h, w)).reshape(frames, h * w).to(kv.device)
                            fg = fgf[pool_frames].reshape(pool_frames.shape[0], -1).repeat(copies, 1)
                        plan = plan_merge(kv, per_pool, h, w, tome, fg=fg, key=key)
                        if st.mode == "invert" and tome.paired:
                            st.plans[key] = plan
                    kv = apply_merge(kv, plan)
                    if st.plan_log is not None:
                        st.plan_log.append((st.mode, key, plan))
                    st.tokens_seen[self.name] = (per_pool * n, plan.out_tokens)
            key_ = attn.to_k(kv)
            value = attn.to_v(kv)
            heads = attn.heads
            if st.span == "dense":  # one pool per copy: the queries of all frames share it
                q = _heads(query.reshape(copies, frames * n, -1), heads)
            else:
                q = _heads(query, heads)
            k, v = _heads(key_, heads), _heads(value, heads)

            skey = ("self", st.region, self.name, st.t)
            eligible = (not self.controlnet and st.store is not None and n <= st.store_max_tokens
                        and st.replaces("self"))
            stored = st.store.get(skey) if (eligible and st.mode == "generate") else None
            if eligible and st.mode == "invert":
                probs = _probs(q, k, attn.scale)
                st.store.put(skey, probs)
                out = probs @ v
            elif stored is not None:
                probs = _probs(q, k, attn.scale)
                half = probs.shape[0] // 2 if st.cfg else 0
                cond = probs[half:]
                if st.fg is not None:  # foreground queries keep their own map (attention blending)
                    m = resize_mask(st.fg, (h, w)).reshape(frames, n).to(probs)
                    m = m.reshape(1, 1, -1, 1) if st.span == "dense" else m.reshape(frames, 1, n, 1).repeat(
                        cond.shape[0] // frames, 1, 1, 1)
                    fused = m * cond + (1 - m) * stored.to(probs)
                else:
                    fused = stored.to(probs).expand_as(cond)
                probs = torch.cat([probs[:half], fused], 0)
                out = probs @ v
            else:
                out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)
            out = out.transpose(1, 2).reshape(bf, n, -1).to(query.dtype)
            out = attn.to_out[0](out)
            out = attn.to_out[1](out)
            if input_ndim == 4:
                out = out.transpose(-1, -2).reshape(b4, c4, h4, w4)
            if attn.residual_connection:
                out = out + hidden_states
            return out / attn.rescale_output_factor


class TextAttnProcessor:
    """Text cross-attention with map storing (inversion), Prompt-to-Prompt refinement fusion
    (generation) and collection of a word's maps (``probe`` mode, for a foreground mask)."""

    def __init__(self, state: EditState, name: str, *, controlnet: bool = False) -> None:
        self.state = state
        self.name = name
        self.controlnet = controlnet

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        st = self.state
        with record_function(f"edit.attention.{st.mode}"):
            x = hidden_states
            input_ndim = x.ndim
            if input_ndim == 4:
                b4, c4, h4, w4 = x.shape
                x = x.view(b4, c4, h4 * w4).transpose(1, 2)
            if attn.group_norm is not None:
                x = attn.group_norm(x.transpose(1, 2)).transpose(1, 2)
            context = x if encoder_hidden_states is None else encoder_hidden_states
            if encoder_hidden_states is not None and attn.norm_cross:
                context = attn.norm_encoder_hidden_states(context)
            bf, n, _ = x.shape
            frames = st.num_frames
            heads = attn.heads
            q = _heads(attn.to_q(x), heads)
            k = _heads(attn.to_k(context), heads)
            v = _heads(attn.to_v(context), heads)
            mask = None
            if attention_mask is not None:
                mask = attn.prepare_attention_mask(attention_mask, context.shape[1], bf)
                mask = mask.view(bf, heads, -1, mask.shape[-1])
            skey = ("cross", st.region, self.name, st.t)
            eligible = (not self.controlnet and st.store is not None and n <= st.store_max_tokens
                        and st.replaces("cross"))
            stored = st.store.get(skey) if (eligible and st.mode == "generate") else None
            probe = st.mode == "probe" and not self.controlnet and n <= st.store_max_tokens
            if (eligible and st.mode == "invert") or stored is not None or probe:
                logits = q @ k.transpose(-1, -2) * attn.scale
                if mask is not None:
                    logits = logits + mask
                probs = logits.softmax(dim=-1)
                if eligible and st.mode == "invert":
                    st.store.put(skey, probs)
                if stored is not None and st.token_map is not None:
                    mapper, alphas = (t.to(probs.device) for t in st.token_map)
                    half = bf // 2 if st.cfg else 0
                    a = alphas.to(probs).view(1, 1, 1, -1)
                    src = stored.to(probs)[..., mapper]
                    cond = src * a + probs[half:] * (1 - a)
                    probs = torch.cat([probs[:half], cond], 0)
                if probe and st.probe_tokens:
                    h, w = layer_hw(st.latent_hw, n)
                    word = probs[..., st.probe_tokens].sum(-1).mean(1)  # (B*F, N)
                    word = word.reshape(-1, frames, h, w)[-1].float()  # the conditional copy
                    word = F.interpolate(word[:, None], size=st.latent_hw, mode="bilinear",
                                         align_corners=False)[:, 0]
                    st.probe_sum = word if st.probe_sum is None else st.probe_sum + word
                    st.probe_count += 1
                out = probs @ v
            else:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scale)
            out = out.transpose(1, 2).reshape(bf, n, -1).to(q.dtype)
            out = attn.to_out[0](out)
            out = attn.to_out[1](out)
            if input_ndim == 4:
                out = out.transpose(-1, -2).reshape(b4, c4, h4, w4)
            if attn.residual_connection:
                out = out + hidden_states
            return out / attn.rescale_output_factor


def inflate(model, state: EditState, *, controlnet: bool = False) -> dict[str, object]:
    """Give every attention layer of a diffusers UNet (or ControlNet) the video processors; returns the
    processors by layer name. ``attn1`` layers -> :class:`FrameAttnProcessor`, others
    -> :class:`TextAttnProcessor`."""
    procs = {}
    prefix = "controlnet." if controlnet else ""
    for name in model.attn_processors:
        layer = name[: -len(".processor")]
        cls = FrameAttnProcessor if layer.endswith("attn1") else TextAttnProcessor
        procs[name] = cls(state, prefix + layer, controlnet=controlnet)
    model.set_attn_processor(procs)
    return procs


def token_alignment(source_ids: list[int], target_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt-to-Prompt refinement mapping: for every target token, the index of the source token it
    equals in the longest matching blocks (``difflib``), and 1 where there is one (0 for new words)."""
    import difflib

    mapper = torch.zeros(len(target_ids), dtype=torch.long)
    alphas = torch.zeros(len(target_ids))
    matcher = difflib.SequenceMatcher(None, source_ids, target_ids, autojunk=False)
    for a, b, size in matcher.get_matching_blocks():
        for i in range(size):
            mapper[b + i] = a + i
            alphas[b + i] = 1.0
    return mapper, alphas


__all__ = [
    "AttentionStore",
    "EditState",
    "FrameAttnProcessor",
    "MODES",
    "SPANS",
    "TextAttnProcessor",
    "inflate",
    "layer_hw",
    "resize_mask",
    "token_alignment",
]
