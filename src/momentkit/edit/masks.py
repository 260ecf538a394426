"""Foreground masks for Object-Centric Diffusion: from image files (one per frame), from a box, or
by thresholding the cross-attention map of a word of the source prompt.

Masks are ``(F, H, W)`` bool arrays at the working resolution of the edit (the resized frames). The
pipeline brings them to latent resolution with max pooling (a latent cell is foreground when any of
its pixels is), so thin objects are not lost.

- :func:`load_mask_files`: a folder of images, one per frame in name order (the first ``F`` are used),
  or one image for every frame; a pixel is foreground when its grey level is above 127 (white on
  black, as DAVIS annotations and most segmenters write them; any non-zero palette index counts).
- :func:`box_mask`: a rectangle ``(x0, y0, x1, y1)`` in pixels of the *source video*, the same for
  every frame.
- :func:`word_mask`: cross-attention maps of the word's tokens (averaged over heads and layers by the
  pipeline), each frame divided by its maximum and thresholded (``threshold`` 0.3, the value
  Prompt-to-Prompt's local blending and FateZero use).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from momentkit.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DEFAULT_WORD_THRESHOLD = 0.3


def _read_mask_image(path: Path, size: tuple[int, int], field: str | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.mode == "P":  # palette annotations (DAVIS): any non-zero index is an object
                arr = np.asarray(img) > 0
                img2 = Image.fromarray(arr.astype(np.uint8) * 255)
            else:
                img2 = img.convert("L")
            img2 = img2.resize((size[1], size[0]), Image.NEAREST)
            return np.asarray(img2) > 127
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"cannot read the mask image ({e})", path=path, field=field) from None


def load_mask_files(path: str | os.PathLike, num_frames: int, size: tuple[int, int], *,
                    field: str | None = "--mask") -> np.ndarray:
    """``(num_frames, H, W)`` bool masks from a folder of per-frame images or one image.
    ``size`` = ``(H, W)`` of the working frames."""
    path = Path(path)
    if not path.exists():
        raise InputError("mask file or folder not found", path=path, field=field)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) < num_frames:
            raise InputError(f"found {len(files)} mask images, need one per frame ({num_frames})",
                             path=path, field=field)
        masks = np.stack([_read_mask_image(p, size, field) for p in files[:num_frames]])
    else:
        masks = np.repeat(_read_mask_image(path, size, field)[None], num_frames, axis=0)
    if not masks.any():
        raise InputError("the mask is empty (no pixel above 127)", path=path, field=field)
    return masks


def parse_box(values) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` from four numbers (or one ``"x0,y0,x1,y1"`` string)."""
    if isinstance(values, str):
        values = values.replace(",", " ").split()
    try:
        box = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise InputError(f"expected four numbers x0 y0 x1 y1, got {values!r}", field="--box") from None
    if len(box) != 4:
        raise InputError(f"expected four numbers x0 y0 x1 y1, got {len(box)}", field="--box")
    return box  # type: ignore[return-value]


def box_mask(box, num_frames: int, source_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """``(num_frames, H, W)`` bool mask of a box ``(x0, y0, x1, y1)`` given in pixels of the source
    video (``source_size`` = its ``(height, width)``), scaled to the working ``size``."""
    x0, y0, x1, y1 = parse_box(box)
    sh, sw = source_size
    if not (0 <= x0 < x1 <= sw and 0 <= y0 < y1 <= sh):
        raise InputError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is not inside the {sw}x{sh} video "
                         "(expected 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height)", field="--box")
    h, w = size
    fy, fx = h / sh, w / sw
    r0, r1 = int(np.floor(y0 * fy)), max(int(np.ceil(y1 * fy)), int(np.floor(y0 * fy)) + 1)
    c0, c1 = int(np.floor(x0 * fx)), max(int(np.ceil(x1 * fx)), int(np.floor(x0 * fx)) + 1)
    mask = np.zeros((num_frames, h, w), dtype=bool)
    mask[:, r0:r1, c0:c1] = True
    return mask


def word_tokens(tokenizer, prompt_ids: list[int], word: str) -> list[int]:
    """Positions in ``prompt_ids`` of the tokens of ``word`` (its first occurrence)."""
    word_ids = tokenizer(word.strip(), add_special_tokens=False)["input_ids"]
    if not word.strip() or not word_ids:
        raise InputError("the mask word is empty", field="--mask-word")
    n = len(word_ids)
    for i in range(len(prompt_ids) - n + 1):
        if list(prompt_ids[i: i + n]) == list(word_ids):
            return list(range(i, i + n))
    raise InputError(f"the word {word!r} is not in the source prompt", field="--mask-word")


def word_mask(maps, threshold: float = DEFAULT_WORD_THRESHOLD):
    """Threshold per-frame attention maps ``(F, h, w)`` (torch) after dividing each by its maximum."""
    peak = maps.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    return (maps / peak) > threshold


__all__ = [
    "DEFAULT_WORD_THRESHOLD",
    "box_mask",
    "load_mask_files",
    "parse_box",
    "word_mask",
    "word_tokens",
]
