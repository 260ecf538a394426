"""The interface every frozen feature backbone implements, and the pieces they share.

A backbone turns decoded frames into one feature row per *clip* (a span of ``clip_len`` seconds)
and query sentences into token features:

- :meth:`VideoBackbone.encode_video` ``(frames, clip_index, num_clips)``: ``frames`` is a uint8
  tensor ``(N, H, W, 3)`` as :func:`momentkit.video.decode.iter_frames` gives them (already resized
  to ``frame_size``), ``clip_index`` ``(N,)`` the clip of each frame (non-decreasing, every clip in
  ``0..num_clips-1`` has at least one frame). Returns ``(num_clips, D)`` or, when ``layers`` were
  selected, ``(num_clips, K, D)``.

  *Frame-level* encoders (``frames_per_clip = None``, e.g. CLIP) embed every frame and average the
  frames of each clip. *Clip-level* encoders (``frames_per_clip = F``, e.g. InternVideo2) see the
  F frames of a clip together; a clip holding another number of frames is resampled to F by
  taking the middle frame of F equal segments (the official "middle" test-time sampling).
- :meth:`VideoBackbone.encode_text` ``(texts)``: one dict per text with ``last_hidden_state``
  ``(L, D)`` (tokens of the final layer, padding removed), ``pooler_output`` ``(D',)`` (the sentence
  vector in the joint video-text space) and, when ``layers`` were selected, ``features``
  ``(K, L, D)`` (the tokens of K text layers).

Layers are numbered from 1 (the first transformer block) to the encoder depth, as the papers do
(SDST uses InternVideo2-1B layers 37-40 of 40); negative numbers count from the end (-1 = last).

Backbones are frozen: eval mode, no gradients, parameters with ``requires_grad=False``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from momentkit.errors import InputError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_layers(layers: Sequence[int] | None, depth: int, what: str = "layers") -> tuple[int, ...] | None:
    """1-based layer numbers (negatives count from the end) -> validated positive numbers."""
    if layers is None:
        return None
    out = []
    for layer in layers:
        n = int(layer)
        pos = depth + 1 + n if n < 0 else n
        if not 1 <= pos <= depth:
            raise InputError(f"layer {n} does not exist: the encoder has layers 1..{depth} "
                             f"(or -1..-{depth} from the end)", field=what)
        out.append(pos)
    if not out:
        raise InputError("no layers given", field=what)
    if len(set(out)) != len(out):
        raise InputError(f"layers repeat: {list(layers)}", field=what)
    return tuple(out)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r} (expected one of {', '.join(DTYPES)})", field="dtype")
    return DTYPES[dtype]


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InputError(f"unknown device {device!r}", field="device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for but CUDA is not available", field="device")
    return dev


def normalize_pixels(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` -> float ``(N, 3, H, W)``: ``(x / 255 - mean) / std`` per channel."""
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre ``size`` x ``size`` crop of ``(..., H, W)`` (torchvision's rounding); pads if smaller."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        x = nn.functional.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        h, w = x.shape[-2:]
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return x[..., top: top + size, left: left + size]


def clip_mean(feats: torch.Tensor, clip_index: torch.Tensor, num_clips: int) -> torch.Tensor:
    """Average the rows of ``feats`` ``(N, ...)`` that share a clip -> ``(num_clips, ...)``."""
    out = feats.new_zeros((num_clips, *feats.shape[1:]), dtype=torch.float32)
    out.index_add_(0, clip_index, feats.float())
    counts = torch.bincount(clip_index, minlength=num_clips).clamp_min(1).to(out.dtype)
    return out / counts.view(-1, *([1] * (feats.dim() - 1)))


def middle_indices(clip_index: torch.Tensor, num_clips: int, frames_per_clip: int) -> torch.Tensor:
    """``(num_clips, F)`` indices into the frames: the middle frame of F equal segments per clip.

    ``clip_index`` must be sorted (frames in time order). A clip with n frames gets frames
    ``start + floor((j + 0.5) * n / F)``, j = 0..F-1 (repeats when n < F).
    """
    counts = torch.bincount(clip_index, minlength=num_clips)
    if (counts == 0).any():
        empty = int(torch.nonzero(counts == 0)[0])
        raise ValueError(f"clip {empty} has no frame")
    starts = torch.cumsum(counts, 0) - counts
    j = torch.arange(frames_per_clip, device=clip_index.device, dtype=torch.float64)
    offs = torch.floor((j[None, :] + 0.5) * counts[:, None].double() / frames_per_clip).long()
    return starts[:, None] + offs


def freeze(module: nn.Module) -> nn.Module:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


class VideoBackbone(nn.Module):
    """Frozen video-text encoder: frames -> per-clip features, texts -> token features.

    Subclasses set ``name``, ``frame_size`` (what the decoder should deliver: an int shorter side or
    an exact ``(H, W)``), ``interpolation`` (FFmpeg scaler), ``frames_per_clip`` (None for
    frame-level encoders), ``layers`` (selected vision layers, 1-based, or None for the single
    final-layer output), ``text_layers``, ``video_dim`` and implement :meth:`preprocess`,
    :meth:`_encode_frames` or :meth:`_encode_clips`, and :meth:`encode_text`.
    """

    name: str = ""
    frame_size: int | tuple[int, int] = 224
    interpolation: str = "BILINEAR"
    frames_per_clip: int | None = None
    layers: tuple[int, ...] | None = None
    text_layers: tuple[int, ...] | None = None
    video_dim: int = 0

    @property
    def layered(self) -> bool:
        return self.layers is not None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def describe(self) -> dict:
        """What produced the features (written next to them by the extraction job)."""
        return {
            "backbone": self.name,
            "frames_per_clip": self.frames_per_clip,
            "frame_size": self.frame_size,
            "layers": list(self.layers) if self.layers else None,
            "text_layers": list(self.text_layers) if self.text_layers else None,
            "video_dim": self.video_dim,
        }

    # ------------------------------------------------------------------ to implement
    @abstractmethod
    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, H, W, 3)`` -> normalised float ``(N, 3, S, S)`` on the model's device/dtype."""

    def _encode_frames(self, pixels: torch.Tensor) -> torch.Tensor:
        """Frame-level encoders: ``(N, 3, S, S)`` -> ``(N, D)`` or ``(N, K, D)``."""
        raise NotImplementedError

    def _encode_clips(self, pixels: torch.Tensor) -> torch.Tensor:
        """Clip-level encoders: ``(B, F, 3, S, S)`` -> ``(B, D)`` or ``(B, K, D)``."""
        raise NotImplementedError

    @abstractmethod
    def encode_text(self, texts: Sequence[str]) -> list[dict[str, np.ndarray]]:
        """One dict per text: ``last_hidden_state`` (L, D), ``pooler_output`` (D',), [``features`` (K, L, D)]."""

    # ------------------------------------------------------------------ shared
    @torch.no_grad()
    def encode_video(self, frames: torch.Tensor | np.ndarray, clip_index: torch.Tensor | np.ndarray,
                     num_clips: int) -> torch.Tensor:
        """Per-clip features (float32, on the model's device); see the module docstring."""
        frames = torch.as_tensor(frames)
        clip_index = torch.as_tensor(clip_index, dtype=torch.long)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (N, H, W, 3) uint8, got {tuple(frames.shape)}")
        if len(clip_index) != len(frames):
            raise ValueError("clip_index must give one clip per frame")
        if self.frames_per_clip is None:
            feats = self._encode_frames(self.preprocess(frames))
            return clip_mean(feats, clip_index.to(feats.device), num_clips)
        idx = middle_indices(clip_index, num_clips, self.frames_per_clip)
        pixels = self.preprocess(frames[idx.reshape(-1).cpu()])
        pixels = pixels.view(num_clips, self.frames_per_clip, *pixels.shape[1:])
        return self._encode_clips(pixels).float()


__all__ = [
    "DTYPES",
    "VideoBackbone",
    "center_crop",
    "clip_mean",
    "freeze",
    "middle_indices",
    "normalize_pixels",
    "resolve_device",
    "resolve_dtype",
    "resolve_layers",
]
