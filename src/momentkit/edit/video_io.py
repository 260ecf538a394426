"""Reading the clip to edit and writing the results: the edited MP4 and a side-by-side strip PNG.

Both outputs are written to a temporary file beside the target and renamed into place
(:func:`momentkit.io.atomic_save`), so an interrupted edit leaves nothing half-written.

- :func:`read_clip`: ``num_frames`` consecutive frames sampled at ``fps`` (default: the video's own
  rate) from ``start`` seconds, resized to ``size`` (shorter side, then each side rounded to a
  multiple of the model's ``multiple``).
- :func:`write_mp4`: H.264 (yuv420p, CRF 18) at ``fps``, as :func:`momentkit.video.testing.make_video`
  writes.
- :func:`write_strip`: rows of frames side by side (source on top, then the foreground mask as a
  tinted overlay when there is one, then the edit), with a 2-pixel gap.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from momentkit.errors import InputError
from momentkit.io import atomic_save


def working_size(width: int, height: int, size: int, multiple: int) -> tuple[int, int]:
    """``(H, W)``: the shorter side scaled to ``size``, both sides rounded to a multiple of ``multiple``
    (at least one multiple)."""
    if size < multiple:
        raise InputError(f"size must be at least {multiple} for this model, got {size}", field="--size")
    scale = size / min(width, height)

    def snap(v: float) -> int:
        return max(multiple, int(round(v / multiple)) * multiple)

    return snap(height * scale), snap(width * scale)


def read_clip(path: str | os.PathLike, num_frames: int, *, size: int, multiple: int, fps: float | None = None,
              start: float = 0.0) -> tuple[np.ndarray, float, tuple[int, int]]:
    """``(frames (F, H, W, 3) uint8, fps of the frames, (source height, source width))``."""
    from momentkit.video.decode import iter_frames, probe

    info = probe(path)
    rate = fps or info.fps or 25.0
    hw = working_size(info.width, info.height, size, multiple)
    chunks, got = [], 0
    first = int(np.floor(start * rate + 1e-9))
    for chunk in iter_frames(path, rate, size=hw, chunk_size=max(8, num_frames)):
        keep = chunk.frames[(chunk.indices >= first)]
        chunks.append(keep)
        got += len(keep)
        if got >= num_frames:
            break
    frames = np.concatenate(chunks)[:num_frames] if chunks else np.zeros((0, *hw, 3), np.uint8)
    if len(frames) < num_frames:
        raise InputError(f"the video has {len(frames)} frames at {rate:g} fps from {start:g} s, "
                         f"need {num_frames}", path=path, field="--num-frames")
    return frames, float(rate), (info.height, info.width)


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float, crf: int = 18) -> Path:
    """Write ``(F, H, W, 3)`` uint8 frames as an H.264 MP4, atomically."""
    import av

    frames = np.asarray(frames, dtype=np.uint8)
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise ValueError(f"H.264 (yuv420p) needs even sides, got {w}x{h}")

    def save(tmp: str) -> None:
        with av.open(tmp, mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height = w, h
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf), "preset": "veryfast"}
            for img in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    atomic_save(path, save)
    return Path(path)


def mask_overlay(frames: np.ndarray, mask: np.ndarray, color=(255, 64, 64), alpha: float = 0.5) -> np.ndarray:
    """Frames with the mask tinted in ``color``."""
    out = frames.astype(np.float32).copy()
    tint = np.asarray(color, np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * tint
    return out.round().clip(0, 255).astype(np.uint8)


def strip_image(rows: list[np.ndarray], gap: int = 2) -> np.ndarray:
    """One image of ``rows`` (each ``(F, H, W, 3)``) with the frames of a row side by side."""
    f, h, w = rows[0].shape[:3]
    out = np.full((len(rows) * h + (len(rows) - 1) * gap, f * w + (f - 1) * gap, 3), 255, np.uint8)
    for r, frames in enumerate(rows):
        for i, img in enumerate(frames):
            y, x = r * (h + gap), i * (w + gap)
            out[y: y + h, x: x + w] = img
    return out


def write_strip(path: str | os.PathLike, source: np.ndarray, edited: np.ndarray,
                mask: np.ndarray | None = None) -> Path:
    """Write the side-by-side strip PNG (source / mask overlay / edit), atomically."""
    from PIL import Image

    rows = [source] + ([mask_overlay(source, mask)] if mask is not None else []) + [edited]
    img = Image.fromarray(strip_image(rows))
    atomic_save(path, lambda tmp: img.save(tmp, format="PNG"))
    return Path(path)


__all__ = ["mask_overlay", "read_clip", "strip_image", "working_size", "write_mp4", "write_strip"]
