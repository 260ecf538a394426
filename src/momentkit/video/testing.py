"""Small synthetic MP4 files for tests, examples and benchmarks, written with PyAV, and tiny
randomly initialised backbones saved like downloaded ones (:func:`make_tiny_clip`,
:func:`make_tiny_internvideo2`).

:func:`make_video` draws coloured shapes that appear, move and disappear over a dark background.
The left quarter of every frame is a flat grey *marker* whose level encodes the frame number
(:func:`marker_levels`), so a test can tell which source frame a decoded frame comes from
(:func:`frame_number_of`) despite lossy compression. The shapes' time windows are returned, so a
video doubles as a tiny grounding sample ("a red square moves right" happens from 1 s to 3 s).

:func:`make_truncated` cuts a valid file short and :func:`make_empty` writes a zero-length file,
for the error paths. Nothing here is stored in the repository; tests generate files in a tmp folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BACKGROUND = 24  # grey level of the scene background
MARKER_LOW, MARKER_HIGH = 40, 240


@dataclass(frozen=True)
class Shape:
    """A ``kind`` ("square" or "circle") of ``color`` (RGB) visible in ``[start, end)`` seconds,
    moving linearly from ``start_xy`` to ``end_xy`` (centre, as fractions of the scene width/height),
    ``size`` a fraction of the frame height."""

    kind: str
    color: tuple[int, int, int]
    start: float
    end: float
    start_xy: tuple[float, float] = (0.2, 0.5)
    end_xy: tuple[float, float] = (0.8, 0.5)
    size: float = 0.3
    caption: str = ""


DEFAULT_SHAPES = (
    Shape("square", (230, 30, 30), 1.0, 3.0, (0.15, 0.3), (0.85, 0.3), caption="a red square moves right"),
    Shape("circle", (30, 60, 230), 2.0, 4.0, (0.8, 0.7), (0.2, 0.7), caption="a blue circle moves left"),
)


@dataclass
class SyntheticVideo:
    path: Path
    duration: float  # seconds (num_frames / fps)
    fps: float
    num_frames: int
    width: int
    height: int
    shapes: tuple[Shape, ...] = field(default_factory=tuple)

    def windows(self) -> dict[str, tuple[float, float]]:
        """Caption -> ``(start, end)`` seconds of each shape (clipped to the video)."""
        return {s.caption or f"{s.kind} {s.color}": (max(0.0, s.start), min(self.duration, s.end))
                for s in self.shapes}


def marker_levels(num_frames: int) -> np.ndarray:
    """Grey level of the marker in each frame: evenly spread over [MARKER_LOW, MARKER_HIGH]."""
    if num_frames <= 1:
        return np.full(max(num_frames, 0), MARKER_LOW, dtype=np.float64)
    return np.linspace(MARKER_LOW, MARKER_HIGH, num_frames)


def frame_number_of(frames: np.ndarray, num_frames: int) -> np.ndarray:
    """Source frame number of decoded RGB frames ``(N, H, W, 3)`` (or one frame) from their marker."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    w = frames.shape[2]
    # centre of the marker strip, away from its edges where the scaler blends with the scene
    strip = frames[:, :, max(1, w // 16): max(2, w // 6)].astype(np.float64)
    level = strip.mean(axis=(1, 2, 3))
    return np.abs(level[:, None] - marker_levels(num_frames)[None, :]).argmin(axis=1)


def render_frame(i: int, fps: float, width: int, height: int, shapes, levels: np.ndarray) -> np.ndarray:
    """RGB frame number ``i`` of the scene (uint8, ``(height, width, 3)``)."""
    img = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    marker_w = width // 4
    img[:, :marker_w] = int(round(levels[i]))
    t = i / fps
    yy, xx = np.mgrid[0:height, 0:width]
    scene_w = width - marker_w
    for s in shapes:
        if not (s.start <= t < s.end):
            continue
        a = 0.0 if s.end <= s.start else (t - s.start) / (s.end - s.start)
        cx = marker_w + (s.start_xy[0] + a * (s.end_xy[0] - s.start_xy[0])) * scene_w
        cy = (s.start_xy[1] + a * (s.end_xy[1] - s.start_xy[1])) * height
        r = s.size * height / 2
        if s.kind == "circle":
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        else:
            mask = (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= r)
        mask &= xx >= marker_w
        img[mask] = s.color
    return img


def make_video(
    path: str | os.PathLike,
    *,
    duration: float = 4.0,
    fps: float = 10.0,
    width: int = 96,
    height: int = 64,
    shapes=DEFAULT_SHAPES,
    codec: str = "libx264",
    faststart: bool = False,
    crf: int = 18,
) -> SyntheticVideo:
    """Write an MP4 (H.264 by default) of ``duration`` seconds at ``fps``; returns its description.

    ``faststart`` puts the index (``moov``) at the start of the file, as web videos do; a truncated
    faststart file opens but stops decoding early, a truncated regular one does not open at all.
    """
    import av
    from fractions import Fraction

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(1, int(round(duration * fps)))
    levels = marker_levels(n)
    rate = Fraction(fps).limit_denominator(1001)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(render_frame(i, fps, width, height, shapes, levels), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return SyntheticVideo(path, n / fps, float(fps), n, width, height, tuple(shapes))


def make_truncated(src: str | os.PathLike, dst: str | os.PathLike, fraction: float = 0.5) -> Path:
    """Copy the first ``fraction`` of the bytes of ``src`` to ``dst`` (a download cut short)."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: max(1, int(len(data) * fraction))])
    return dst


def make_empty(path: str | os.PathLike) -> Path:
    """A zero-length file named like a video."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


# ----------------------------------------------------------------------------- tiny models
_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def tiny_clip_tokenizer():
    """A character-level CLIP tokenizer (byte-level BPE without merges) with a 76-token vocabulary."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in _LETTERS + ".,'!?-":
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[])


def tiny_bert_tokenizer():
    """A BERT WordPiece tokenizer (uncased) over single characters and a few words."""
    from transformers import BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_LETTERS, ".", ",",
             "red", "blue", "square", "circle", "moves", "left", "right"]
    words += ["##" + c for c in _LETTERS]
    return BertTokenizer(vocab={w: i for i, w in enumerate(words)})


def make_tiny_clip(folder: str | os.PathLike, *, image_size: int = 32, layers: int = 3, seed: int = 0,
                   width: int = 32, patch_size: int | None = None, projection_dim: int = 16) -> Path:
    """Save a randomly initialised, tiny ``CLIPModel`` and its tokenizer to ``folder`` (loadable with
    ``from_pretrained(folder)``, like a downloaded model). ``width``: hidden size of both towers (4
    heads); ``patch_size``: default half the image (2 x 2 patches)."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    tok = tiny_clip_tokenizer()
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                         num_attention_heads=4, max_position_embeddings=40, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                           num_attention_heads=4, image_size=image_size, patch_size=patch_size or image_size // 2),
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    model = CLIPModel(cfg).eval()
    folder = Path(folder)
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def tiny_internvideo2_config(**overrides):
    """A tiny :class:`~momentkit.video.backbones.internvideo2.InternVideo2Config` (same architecture)."""
    from momentkit.video.backbones.internvideo2 import InternVideo2Config

    base = dict(img_size=28, patch_size=14, num_frames=2, embed_dim=32, depth=3, num_heads=4,
                attn_pool_num_heads=4, clip_embed_dim=24, init_values=0.5, vocab_size=len(tiny_bert_tokenizer()),
                text_hidden_size=16, text_num_layers=2, text_num_heads=2, text_intermediate_size=32,
                text_max_position_embeddings=40, joint_dim=8)
    base.update(overrides)
    return InternVideo2Config(**base)


def make_tiny_internvideo2(folder: str | os.PathLike, *, seed: int = 0, filename: str = "model.safetensors",
                           **overrides) -> Path:
    """Save a randomly initialised, tiny InternVideo2 (official key names), its config and a BERT
    tokenizer to ``folder``."""
    import torch

    from momentkit.video.backbones.internvideo2 import InternVideo2Stage2, save_pretrained

    torch.manual_seed(seed)
    model = InternVideo2Stage2(tiny_internvideo2_config(**overrides)).eval()
    return save_pretrained(model, folder, tiny_bert_tokenizer(), filename=filename)


__all__ = [
    "DEFAULT_SHAPES",
    "Shape",
    "SyntheticVideo",
    "frame_number_of",
    "make_empty",
    "make_tiny_clip",
    "make_tiny_internvideo2",
    "make_truncated",
    "make_video",
    "marker_levels",
    "render_frame",
    "tiny_bert_tokenizer",
    "tiny_clip_tokenizer",
    "tiny_internvideo2_config",
]
