"""Video decoding with PyAV (its wheels bundle FFmpeg; no system install needed).

Frames are sampled at a target rate with exact timestamps and streamed in chunks, so memory stays
bounded whatever the length of the video:

- **Sampling.** At ``fps`` F, sample ``k`` targets the time ``(k + 0.5) / F`` seconds (the centre
  of the k-th ``1/F``-second interval) and takes the frame *shown* at that time: the last decoded
  frame whose presentation time is ``<=`` the target. Samples run while the target lies before the
  end of the last frame (its presentation time plus its duration). With ``fps=None`` every decoded
  frame is returned once. Times are seconds from the start of the video stream (the stream's
  ``start_time`` is subtracted), so the first frame is at 0.
- **Timestamps.** Each returned frame carries the presentation time of the source frame it comes
  from (``times``) and its sample index (``indices``); the target time of sample ``k`` is
  :func:`sample_time` ``(k, fps)``.
- **Resizing** happens in FFmpeg's scaler while converting to RGB (fast, no per-frame PIL):
  ``size=S`` scales the shorter side to S keeping the aspect ratio; ``size=(H, W)`` scales to
  exactly H x W. Frames that no sample uses are decoded (inter-frame codecs need them) but never
  converted, which keeps low-rate sampling of high-rate video cheap.
- **Chunks.** :func:`iter_frames` yields :class:`FrameChunk` objects of at most ``chunk_size``
  frames; only one chunk (plus the decoder's own buffers) is held at a time.
- **Errors.** Missing, empty (0 bytes), unreadable, corrupt and truncated files raise
  :class:`~momentkit.errors.InputError` naming the file. A file whose frames stop well before the
  duration its video stream declares is reported as truncated (``strict=True``, the default).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from momentkit.errors import InputError

DEFAULT_CHUNK_SIZE = 64
# A file is "truncated" when its frames end this much before the declared stream duration.
TRUNCATION_TOLERANCE_S = 0.5
INTERPOLATIONS = ("FAST_BILINEAR", "BILINEAR", "BICUBIC", "AREA", "LANCZOS")


# ----------------------------------------------------------------------------- records
@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the (first) video stream of a file."""

    path: str
    duration: float | None  # seconds, from the video stream (else the container); None if unknown
    fps: float | None  # average frame rate
    width: int
    height: int
    num_frames: int | None  # as declared by the container; None if unknown
    codec: str


@dataclass
class FrameChunk:
    """Consecutive sampled frames of one video.

    ``frames`` ``(N, H, W, 3)`` uint8 RGB; ``times`` ``(N,)`` float64 presentation time in seconds of
    the source frame each row comes from; ``indices`` ``(N,)`` int64 sample index (the target time
    of sample ``k`` is ``(k + 0.5) / fps``; with ``fps=None`` the index of the decoded frame).
    """

    frames: np.ndarray
    times: np.ndarray
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    @staticmethod
    def concatenate(chunks: list[FrameChunk]) -> FrameChunk:
        if not chunks:
            return FrameChunk(np.zeros((0, 0, 0, 3), np.uint8), np.zeros(0), np.zeros(0, np.int64))
        return FrameChunk(
            np.concatenate([c.frames for c in chunks]),
            np.concatenate([c.times for c in chunks]),
            np.concatenate([c.indices for c in chunks]),
        )


def sample_time(k: int | np.ndarray, fps: float) -> float | np.ndarray:
    """Target time in seconds of sample ``k`` at ``fps``: the centre of its ``1/fps`` interval."""
    return (np.asarray(k, dtype=np.float64) + 0.5) / float(fps)


def num_samples(end: float, fps: float) -> int:
    """How many samples at ``fps`` have their target time before ``end`` seconds."""
    if end <= 0:
        return 0
    n = math.ceil(end * fps - 0.5)
    # guard against floating point at the boundary: target of sample n-1 must be < end
    while n > 0 and (n - 0.5) / fps >= end:
        n -= 1
    while (n + 0.5) / fps < end:
        n += 1
    return max(n, 0)


# ----------------------------------------------------------------------------- opening
def _import_av():
    try:
        import av
    except ImportError:  # pragma: no cover - av is a declared dependency of the video extra
        raise InputError("video decoding needs PyAV: pip install 'momentkit[video]'") from None
    return av


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError("video file not found", path=path)
    if path.is_dir():
        raise InputError("expected a video file, found a folder", path=path)
    if path.stat().st_size == 0:
        raise InputError("video file is empty (0 bytes)", path=path)


def _open(path: Path):
    av = _import_av()
    _check_file(path)
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as e:
        raise InputError(f"cannot open video ({_reason(e)}); the file is corrupt, truncated or not a video",
                         path=path) from None
    except OSError as e:
        raise InputError(f"cannot read video ({e.strerror or e})", path=path) from None
    if not container.streams.video:
        container.close()
        raise InputError("no video stream in this file", path=path)
    return container


def _reason(e: BaseException) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return str(msg).split(":")[0].strip() or type(e).__name__


def _seconds(value, time_base) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _stream_facts(container, stream) -> tuple[float, float | None, float | None]:
    """(start offset s, declared stream duration s or None, average fps or None)."""
    start = _seconds(stream.start_time, stream.time_base)
    duration = _seconds(stream.duration, stream.time_base)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else None
    return (start or 0.0), duration, fps


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read the header of a video file (no decoding)."""
    path = Path(path)
    container = _open(path)
    with container:
        stream = container.streams.video[0]
        _, duration, fps = _stream_facts(container, stream)
        if duration is None and container.duration is not None:
            duration = container.duration / 1_000_000
        ctx = stream.codec_context
        return VideoInfo(
            path=str(path),
            duration=duration,
            fps=fps,
            width=int(ctx.width),
            height=int(ctx.height),
            num_frames=int(stream.frames) if stream.frames else None,
            codec=ctx.name,
        )


# ----------------------------------------------------------------------------- resizing
def output_size(width: int, height: int, size: int | tuple[int, int] | None) -> tuple[int, int]:
    """``(out_width, out_height)`` for a ``width`` x ``height`` frame and a ``size`` request."""
    if size is None:
        return width, height
    if isinstance(size, int):
        if size <= 0:
            raise InputError(f"size must be positive, got {size}", field="size")
        if width <= height:
            return size, max(1, round(height * size / width))
        return max(1, round(width * size / height)), size
    h, w = size
    if h <= 0 or w <= 0:
        raise InputError(f"size must be positive, got {size}", field="size")
    return int(w), int(h)


# ----------------------------------------------------------------------------- decoding
def iter_frames(
    path: str | os.PathLike,
    fps: float | None = None,
    *,
    size: int | tuple[int, int] | None = None,
    interpolation: str = "BILINEAR",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    threads: int = 0,
    strict: bool = True,
) -> Iterator[FrameChunk]:
    """Decode ``path`` and yield :class:`FrameChunk` s of at most ``chunk_size`` sampled frames.

    ``fps``: target sampling rate (see the module docstring); None keeps every decoded frame.
    ``size``: shorter side (int) or exact ``(H, W)``; None keeps the stored size.
    ``interpolation``: FFmpeg scaler (one of ``INTERPOLATIONS``). ``threads``: decoder threads
    (0 = FFmpeg's choice). ``strict``: raise when the frames end well before the declared duration.
    """
    av = _import_av()
    path = Path(path)
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise InputError(f"fps must be a positive number, got {fps}", field="fps")
    if chunk_size < 1:
        raise InputError(f"chunk_size must be at least 1, got {chunk_size}", field="chunk_size")
    interpolation = interpolation.upper()
    if interpolation not in INTERPOLATIONS:
        raise InputError(f"unknown interpolation {interpolation!r} (expected one of {', '.join(INTERPOLATIONS)})",
                         field="interpolation")

    container = _open(path)
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if threads:
            stream.codec_context.thread_count = int(threads)
        start, declared, avg_fps = _stream_facts(container, stream)
        nominal_dur = 1.0 / avg_fps if avg_fps else None
        out_wh = None

        buf_frames: list[np.ndarray] = []
        buf_times: list[float] = []
        buf_idx: list[int] = []

        def convert(frame) -> np.ndarray:
            nonlocal out_wh
            if out_wh is None:
                out_wh = output_size(frame.width, frame.height, size)
            w, h = out_wh
            if (w, h) == (frame.width, frame.height) and frame.format.name == "rgb24":
                return frame.to_ndarray()
            return frame.to_ndarray(format="rgb24", width=w, height=h, interpolation=interpolation)

        def flush() -> FrameChunk:
            chunk = FrameChunk(np.stack(buf_frames), np.asarray(buf_times, np.float64),
                               np.asarray(buf_idx, np.int64))
            buf_frames.clear()
            buf_times.clear()
            buf_idx.clear()
            return chunk

        next_k = 0  # next sample index to fill (fps mode) / next frame index (all-frames mode)
        pending = None  # (frame, time) waiting for the next frame's time to close its interval
        last_t = None
        last_dur = nominal_dur
        n_decoded = 0

        def emit(frame, t: float, until: float) -> Iterator[FrameChunk]:
            """Give ``frame`` (shown from ``t``) to every sample whose target is before ``until``."""
            nonlocal next_k
            image = None
            while (next_k + 0.5) / fps < until:
                if image is None:
                    image = convert(frame)
                buf_frames.append(image)
                buf_times.append(t)
                buf_idx.append(next_k)
                next_k += 1
                if len(buf_frames) >= chunk_size:
                    yield flush()

        try:
            for frame in container.decode(stream):
                if frame.pts is not None and frame.time is not None:
                    t = float(frame.time) - start
                elif last_t is not None and last_dur:
                    t = last_t + last_dur
                else:
                    t = n_decoded * (nominal_dur or 0.0)
                if last_t is not None and t <= last_t:  # duplicated or out-of-order timestamp
                    continue
                if last_t is not None:
                    last_dur = t - last_t
                dur = _seconds(frame.duration, frame.time_base) if getattr(frame, "duration", None) else None
                if dur:
                    last_dur = dur
                last_t = t
                n_decoded += 1
                if fps is None:
                    buf_frames.append(convert(frame))
                    buf_times.append(t)
                    buf_idx.append(next_k)
                    next_k += 1
                    if len(buf_frames) >= chunk_size:
                        yield flush()
                    continue
                if pending is not None:
                    yield from emit(pending[0], pending[1], t)
                pending = (frame, t)
            if pending is not None:  # the last frame is shown for its duration
                if not last_dur:
                    last_dur = 1.0 / fps
                yield from emit(pending[0], pending[1], pending[1] + last_dur)
        except av.error.FFmpegError as e:
            raise InputError(f"cannot decode video ({_reason(e)}); the file is corrupt or truncated",
                             path=path) from None

        if n_decoded == 0:
            raise InputError("no frame could be decoded; the file is corrupt, truncated or empty", path=path)
        end = last_t + (last_dur or 0.0)
        if strict and declared is not None and declared - end > max(TRUNCATION_TOLERANCE_S, 3 * (last_dur or 0.0)):
            raise InputError(f"video is truncated: frames end at {end:.2f} s but the stream declares "
                             f"{declared:.2f} s", path=path)
        if buf_frames:
            yield flush()


def read_frames(path: str | os.PathLike, fps: float | None = None, **kwargs) -> FrameChunk:
    """All sampled frames of ``path`` at once (for short videos; long ones: :func:`iter_frames`)."""
    return FrameChunk.concatenate(list(iter_frames(path, fps, **kwargs)))


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FrameChunk",
    "INTERPOLATIONS",
    "VideoInfo",
    "iter_frames",
    "num_samples",
    "output_size",
    "probe",
    "read_frames",
    "sample_time",
]
