"""Volume augmentations for weakly-guided self-supervised detection pretraining.

Thesis 004 (chapter 4, Sec. 4.2 and its appendix 4.5.2-4.5.3). A classification clip carries one
clip label; every frame inherits it (frame-level pseudo labels). Three augmentations then create
action segments and multi-action frames, so that a model can be pretrained on per-frame detection:

* :func:`volume_freeze` -- ``VF(v) = concat(v[1:r-1], {v[r]}^m, v[r+1:n-m+1])``: frame ``r`` is
  repeated ``m`` times in place, the overflow at the end is discarded, the frozen frames are labelled
  background (the zero label).
* :func:`volume_mixup` -- ``VM(v1, v2)[t] = alpha[t] v1[t] + (1 - alpha[t]) v2[t - r]`` with the
  piecewise-linear seamless mask :func:`mixup_alpha`; labels mixed with the same weights.
* :func:`volume_cutmix` -- ``VC(v1, v2)[t] = M[t] * v1[t] + (1 - M[t]) * v2[t - r]`` with the spatial
  masks of :func:`cutmix_masks` (a vertical plane at ``w_t``): *transient window* (the plane moves
  with ``alpha[t]``; labels weighted by the mask area ``|M[t]|``) or *transient view* (a constant
  half-frame window per clip, the content sliding inside it; labels 0.5 / 0.5).

:class:`VolumeAugment` applies one of them per sample with configured probabilities.

Conventions (the choices where the thesis is silent or ambiguous are listed in each docstring):

* Clips are tensors with time along ``time_dim``: ``(T, C, H, W)`` (``time_dim=0``, the default),
  ``(C, T, H, W)`` (``time_dim=1``), or feature sequences ``(T, D)`` (Freeze and MixUp only). Any
  dtype: blending is done in floating point (float64 for float64 clips, float32 otherwise) and cast
  back, integer dtypes (``uint8`` ...) with :func:`torch.round` (half to even) and clamping to the
  dtype's range. The output has the input's length, dtype and layout; clip length never grows.
* Labels: a class index (with ``num_classes``), a one-hot / multi-hot vector ``(K,)`` replicated to
  every frame (the pseudo labels of Sec. 4.2.1), or frame labels ``(T, K)`` already. The result is
  always ``(T, K)`` float (float64 if a float64 label was given, float32 otherwise).
* Frame numbers ``t`` and the freeze position ``r`` are 1-based, as in the thesis' equations
  (``v[1:r-1]``); element ``i`` of a returned tensor is frame ``t = i + 1``. The MixUp/CutMix shift
  ``r`` is a frame offset (``v2[t - r]``), the same in either base.
* Randomness comes only from the ``generator`` argument (``None`` uses torch's global generator);
  every random quantity can also be fixed with an explicit argument (``r``, ``m``, ``n2``, ...).
* Bad user input raises :class:`momentkit.errors.InputError` naming the argument (``field``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

from momentkit.errors import InputError

Scenario = Literal["one-way", "round-trip"]
_SCENARIOS = ("one-way", "round-trip")

__all__ = [
    "VolumeAugment",
    "cutmix_masks",
    "frame_labels",
    "mixup_alpha",
    "transient_view_shifts",
    "volume_cutmix",
    "volume_freeze",
    "volume_mixup",
]


# ---------------------------------------------------------------------------------------------
# helpers


def _randint(lo: int, hi: int, generator: torch.Generator | None) -> int:
    """Uniform integer in ``[lo, hi]`` (both inclusive) from ``generator``."""
    return int(torch.randint(lo, hi + 1, (1,), generator=generator).item())


def _round_half_up(x: float) -> int:
    """The thesis' ``⌊x⌉``, "round to the nearest integer", with halves rounded up (not to even)."""
    return int(math.floor(x + 0.5))


def _as_clip(clip, name: str, time_dim: int) -> tuple[torch.Tensor, int]:
    """``clip`` as a tensor with a valid, non-negative ``time_dim``."""
    if not isinstance(clip, torch.Tensor):
        try:
            clip = torch.as_tensor(clip)
        except Exception as e:  # noqa: BLE001 - anything that is not array-like
            raise InputError(f"{name} must be a tensor, got {type(clip).__name__}", field=name) from e
    if clip.ndim == 0:
        raise InputError(f"{name} must have a time axis, got a scalar", field=name)
    if not isinstance(time_dim, int) or not -clip.ndim <= time_dim < clip.ndim:
        raise InputError(f"time_dim={time_dim!r} is not an axis of {name} with shape {tuple(clip.shape)}",
                         field="time_dim")
    return clip, time_dim % clip.ndim


def _check_pair(clip1: torch.Tensor, clip2: torch.Tensor, t1: int, t2: int) -> None:
    s1 = clip1.shape[:t1] + clip1.shape[t1 + 1:]
    s2 = clip2.shape[:t2] + clip2.shape[t2 + 1:]
    if clip1.ndim != clip2.ndim or s1 != s2:
        raise InputError(f"clip2 has shape {tuple(clip2.shape)}, clip1 {tuple(clip1.shape)}: they may only "
                         f"differ along time (time_dim={t1})", field="clip2")
    if clip1.dtype != clip2.dtype:
        raise InputError(f"clip2 has dtype {clip2.dtype}, clip1 {clip1.dtype}", field="clip2")


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _cast_back(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Floating result ``x`` in the clip's ``dtype``: integers rounded (half to even) and clamped."""
    if dtype.is_floating_point or dtype.is_complex:
        return x.to(dtype)
    if dtype == torch.bool:
        return torch.round(x).to(torch.bool)
    info = torch.iinfo(dtype)
    return torch.round(x).clamp_(info.min, info.max).to(dtype)


def _label_dtype(*labels) -> torch.dtype:
    for lab in labels:
        if isinstance(lab, torch.Tensor) and lab.dtype == torch.float64:
            return torch.float64
    return torch.float32


def frame_labels(label, n: int, *, num_classes: int | None = None, name: str = "label",
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Frame-level pseudo labels ``(n, K)`` (Sec. 4.2.1: the clip label replicated to every frame).

    ``label`` is a class index (``int``, numpy integer or 0-d integer tensor; needs ``num_classes``), a one-hot /
    multi-hot vector ``(K,)`` (any numeric or bool dtype), or frame labels ``(n, K)`` used as they are.
    """
    if isinstance(label, bool):
        raise InputError(f"{name} must be a class index or a label vector, got a bool", field=name)
    try:
        lab = torch.as_tensor(label)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{name} must be a class index, a (K,) or a (T, K) label tensor", field=name) from e
    if lab.ndim == 0:
        if lab.dtype.is_floating_point or lab.dtype.is_complex or lab.dtype == torch.bool:
            raise InputError(f"{name}={label!r} is neither a class index nor a label vector", field=name)
        idx = int(lab)
        if num_classes is None:
            raise InputError(f"{name} is a class index ({idx}): num_classes is needed", field="num_classes")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise InputError(f"num_classes must be a positive integer, got {num_classes!r}", field="num_classes")
        if not 0 <= idx < num_classes:
            raise InputError(f"{name}={idx} is not a class index in [0, {num_classes - 1}]", field=name)
        out = torch.zeros(n, num_classes, dtype=dtype, device=lab.device)
        out[:, idx] = 1
        return out
    if lab.ndim == 1:
        lab = lab.to(dtype).unsqueeze(0).expand(n, -1).clone()
    elif lab.ndim == 2:
        if lab.shape[0] != n:
            raise InputError(f"{name} has {lab.shape[0]} frame labels for a clip of {n} frames", field=name)
        lab = lab.to(dtype).clone()
    else:
        raise InputError(f"{name} must be a class index, a (K,) or a (T, K) label tensor, got shape "
                         f"{tuple(lab.shape)}", field=name)
    if lab.shape[1] == 0:
        raise InputError(f"{name} has no classes", field=name)
    if num_classes is not None and lab.shape[1] != num_classes:
        raise InputError(f"{name} has {lab.shape[1]} classes, num_classes={num_classes}", field=name)
    return lab


def _pair_labels(label1, label2, n1: int, n2: int, num_classes: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = _label_dtype(label1, label2)
    l1 = frame_labels(label1, n1, num_classes=num_classes, name="label1", dtype=dtype)
    l2 = frame_labels(label2, n2, num_classes=num_classes if num_classes is not None else l1.shape[1],
                      name="label2", dtype=dtype)
    return l1, l2


# ---------------------------------------------------------------------------------------------
# Volume Freeze


def volume_freeze(clip, label, *, r: int | None = None, m: int | None = None, num_classes: int | None = None,
                  generator: torch.Generator | None = None, time_dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Volume Freeze (Sec. 4.2.2, Fig. 4.4): freeze frame ``r`` for ``m`` frames, label them background.

    ``VF(v) = concat(v[1:r-1], {v[r]}^m, v[r+1:n-m+1])`` and
    ``VF(l) = concat(l[1:r-1], {0}^m, l[r+1:n-m+1])`` (1-based, inclusive slices), with
    ``r in [1, n-1]`` and ``m in [2, n-r+1]``. The output keeps the length ``n``: the last ``m - 1``
    frames of the input are discarded.

    Choices where the thesis leaves room:

    * ``r`` is the thesis' 1-based frame number: the frozen frame is ``clip[r - 1]`` in Python
      indexing (``r=1`` freezes the first frame). ``r=n`` is excluded as in the thesis.
    * The ``m`` frozen frames include frame ``r`` itself (``{v[r]}^m`` replaces ``v[r]``), so frame
      ``r``'s own label is zero too, exactly as ``VF(l)``.
    * When drawn, ``r`` is uniform in ``[1, n-1]`` (``[1, n-m+1]`` if ``m`` is fixed) and then ``m``
      uniform in ``[2, n-r+1]``. One frozen segment (the thesis' default; two gave +0.04 mAP only).
    * Works on any layout, features ``(T, D)`` included: it only re-indexes time, so the dtype is
      kept bit-exactly.

    Returns ``(clip, labels)``: the frozen clip in the input's layout and dtype, and ``labels (n, K)``.
    """
    clip, td = _as_clip(clip, "clip", time_dim)
    n = clip.shape[td]
    if n < 2:
        raise InputError(f"Volume Freeze needs a clip of at least 2 frames, got {n}", field="clip")
    labels = frame_labels(label, n, num_classes=num_classes, dtype=_label_dtype(label))
    for name, v in (("r", r), ("m", m)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise InputError(f"{name} must be an integer, got {v!r}", field=name)
    if m is not None and not 2 <= m <= n:
        raise InputError(f"m={m} frozen frames do not fit a clip of {n} frames (m in [2, {n}])", field="m")
    if r is None:
        r = _randint(1, n - 1 if m is None else min(n - 1, n - m + 1), generator)
    elif not 1 <= r <= n - 1:
        raise InputError(f"r={r} is not a frame number in [1, {n - 1}] (1-based, as in the thesis)", field="r")
    if m is None:
        m = _randint(2, n - r + 1, generator)
    elif m > n - r + 1:
        raise InputError(f"m={m} frozen frames from frame r={r} overflow a clip of {n} frames "
                         f"(m in [2, n-r+1] = [2, {n - r + 1}])", field="m")
    # 0-based sources of VF(v): v[1:r-1] -> 0..r-2, {v[r]}^m -> r-1, v[r+1:n-m+1] -> r..n-m
    idx = torch.tensor(list(range(0, r - 1)) + [r - 1] * m + list(range(r, n - m + 1)), device=clip.device)
    out = clip.index_select(td, idx)
    labels = labels.index_select(0, idx.to(labels.device))
    labels[r - 1:r - 1 + m] = 0  # {0}^m: the frozen segment is background
    return out, labels


# ---------------------------------------------------------------------------------------------
# Volume MixUp


def _resolve_scenario(n1: int, n2: int, r: int, scenario: str | None) -> Scenario:
    derived: Scenario = "one-way" if n2 + r >= n1 else "round-trip"
    if scenario is not None and scenario != derived:
        need = "n2 + r >= n1" if scenario == "one-way" else "n2 + r < n1"
        raise InputError(f"scenario={scenario!r} needs {need}, got n1={n1}, n2={n2}, r={r} "
                         f"(that is the {derived!r} scenario)", field="scenario")
    return derived


def mixup_alpha(n1: int, r: int, scenario: str | None = None, *, n2: int | None = None) -> torch.Tensor:
    """The seamless temporal alpha mask ``alpha[t]``, ``t = 1..n1``, as a float64 tensor ``(n1,)``.

    ``alpha[t] = T_[0,1]((n1 - t) / (n1 - r))``        if ``n2 + r >= n1`` (scenario 1, Clip1 -> Clip2),
    ``alpha[t] = T_[0,1](|n2 + 2r - 2t| / n2)``        otherwise (scenario 2, Clip1 -> Clip2 -> Clip1),

    with the truncation ``T_[0,1](x) = 1 if x >= 1, 0 if x < 0, x otherwise`` (appendix 4.5.2).
    Element ``i`` is ``alpha[t]`` at the 1-based frame ``t = i + 1``; clip 2 sits at ``t in [r+1, r+n2]``.

    ``scenario`` is ``"one-way"`` (scenario 1), ``"round-trip"`` (scenario 2) or ``None``: derived from
    ``n1, n2, r`` as in the thesis. ``n2`` (the length of clip 2) is needed for the round trip and for
    ``None``; a ``scenario`` that contradicts ``n1, n2, r`` raises.
    """
    for name, v in (("n1", n1), ("r", r), ("n2", n2)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise InputError(f"{name} must be an integer, got {v!r}", field=name)
    if n1 < 1:
        raise InputError(f"n1={n1}: the clip needs at least one frame", field="n1")
    if not 0 <= r <= n1 - 1:
        raise InputError(f"the shift r={r} must be in [0, n1-1] = [0, {n1 - 1}]", field="r")
    if scenario is not None and scenario not in _SCENARIOS:
        raise InputError(f"scenario must be 'one-way', 'round-trip' or None, got {scenario!r}", field="scenario")
    if n2 is not None and n2 < 1:
        raise InputError(f"n2={n2}: clip 2 needs at least one frame", field="n2")
    if n2 is None:
        if scenario != "one-way":
            raise InputError(f"scenario={scenario!r} needs the length n2 of clip 2", field="n2")
    else:
        scenario = _resolve_scenario(n1, n2, r, scenario)
    t = torch.arange(1, n1 + 1, dtype=torch.float64)
    if scenario == "one-way":
        x = (n1 - t) / (n1 - r)
    else:
        x = (n2 + 2 * r - 2 * t).abs() / n2
    return x.clamp(0.0, 1.0)  # T_[0,1]


def _sample_shift(n1: int, len2: int, r: int | None, scenario: str | None, n2: int | None,
                  generator: torch.Generator | None) -> tuple[int, int, Scenario]:
    """``(r, n2, scenario)`` for MixUp / transient-window CutMix, drawing what is not fixed."""
    for name, v in (("r", r), ("n2", n2)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise InputError(f"{name} must be an integer, got {v!r}", field=name)
    if scenario not in (None, "random", *_SCENARIOS):
        raise InputError(f"scenario must be 'one-way', 'round-trip', 'random' or None, got {scenario!r}",
                         field="scenario")
    if r is not None and not 0 <= r <= n1 - 1:
        raise InputError(f"the shift r={r} must be in [0, n1-1] = [0, {n1 - 1}]", field="r")
    if n2 is not None and not 1 <= n2 <= len2:
        raise InputError(f"n2={n2} frames of clip2 requested, it has {len2}", field="n2")
    if scenario == "random":
        scenario = _SCENARIOS[_randint(0, 1, generator)]
    if scenario == "round-trip":
        r_min = 0 if r is None else r
        if n2 is None:  # the whole clip 2 if it fits, else its first n2 frames, n2 drawn in [2, n1-1-r]
            hi = n1 - 1 - r_min
            if len2 <= hi:
                n2 = len2
            elif hi >= 2:
                n2 = _randint(2, hi, generator)
            else:
                raise InputError(f"the round trip needs n2 + r < n1 with n2 >= 2: impossible with n1={n1}"
                                 + ("" if r is None else f", r={r}"), field="scenario")
        if r is None:
            if n2 > n1 - 1:
                raise InputError(f"the round trip needs n2 + r < n1: n2={n2}, n1={n1}", field="n2")
            r = _randint(0, n1 - n2 - 1, generator)
    else:
        n2 = len2 if n2 is None else n2
        if r is None:
            lo = max(0, n1 - n2) if scenario == "one-way" else 0
            r = _randint(lo, n1 - 1, generator)
    return r, n2, _resolve_scenario(n1, n2, r, scenario)


def _aligned_clip2(c2: torch.Tensor, n1: int, r: int, n2: int) -> torch.Tensor:
    """Time-first clip 2 placed at frames ``r+1..r+n2`` of an ``n1``-frame timeline, zero-padded."""
    out = c2.new_zeros((n1, *c2.shape[1:]))
    stop = min(n1, r + n2)
    if stop > r:
        out[r:stop] = c2[:stop - r]
    return out


def volume_mixup(clip1, label1, clip2, label2, *, r: int | None = None, scenario: str | None = None,
                 n2: int | None = None, num_classes: int | None = None, generator: torch.Generator | None = None,
                 time_dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Volume MixUp (Sec. 4.2.2, Fig. 4.5, Fig. 4.7 left).

    ``VM(v1, v2)[t] = alpha[t] * v1[t] + (1 - alpha[t]) * v2[t - r]`` and
    ``VM(l1, l2)[t] = alpha[t] * l1[t] + (1 - alpha[t]) * l2[t - r]``, ``alpha`` from
    :func:`mixup_alpha`. Both clips are zero-padded in time; ``alpha`` is exactly 1 wherever clip 2
    is padding, so the padding never shows.

    Choices where the thesis leaves room:

    * The output has clip 1's length ``n1`` (frames ``t = 1..n1``): clip 1 is the host, so length
      never grows and each datapoint has the same number of frames as the baseline (Sec. 4.3). In
      scenario 1 the frames ``t > n1`` (the rest of clip 2) are discarded; ``alpha[n1] = 0``, so the
      last output frame is pure clip 2.
    * ``r`` is a non-negative shift in ``[0, n1-1]`` (clip 2 starts after clip 1's frame ``r``).
    * ``n2`` is the number of frames of clip 2 used, its first ``n2`` (default: all). The scenario
      follows from ``n1, n2, r`` as in the thesis (``scenario=None``). With equal clip lengths that is
      always scenario 1, so ``scenario`` can ask for one: ``"one-way"`` draws ``r`` in
      ``[max(0, n1-n2), n1-1]``; ``"round-trip"`` uses all of clip 2 if it fits (``len2 <= n1-1-r``),
      else its first ``n2`` frames with ``n2`` drawn uniformly in ``[2, n1-1-r]``, then ``r`` in
      ``[0, n1-n2-1]``; ``"random"`` picks one of the two with probability 1/2. When everything is
      drawn with ``scenario=None``, ``r`` is uniform in ``[0, n1-1]``. A fixed ``r``/``n2`` that
      contradicts a fixed scenario raises.
    * Works on features ``(T, D)`` as well (a per-frame convex combination; Manifold-MixUp-like,
      which the thesis found on par with input-level MixUp).

    ``clip2`` may have another length than ``clip1`` but the same other dimensions and dtype.
    Returns ``(clip, labels)`` of length ``n1``; with one-hot labels each row sums to 1.
    """
    clip1, t1 = _as_clip(clip1, "clip1", time_dim)
    clip2, t2 = _as_clip(clip2, "clip2", time_dim)
    _check_pair(clip1, clip2, t1, t2)
    n1, len2 = clip1.shape[t1], clip2.shape[t2]
    if n1 < 1 or len2 < 1:
        raise InputError("both clips need at least one frame", field="clip1" if n1 < 1 else "clip2")
    l1, l2 = _pair_labels(label1, label2, n1, len2, num_classes)
    r, n2, scen = _sample_shift(n1, len2, r, scenario, n2, generator)
    alpha = mixup_alpha(n1, r, scen, n2=n2)

    ct = _compute_dtype(clip1.dtype)
    v1 = clip1.movedim(t1, 0).to(ct)
    v2 = _aligned_clip2(clip2.movedim(t2, 0).to(ct), n1, r, n2)
    a = alpha.to(ct).to(v1.device).reshape(n1, *([1] * (v1.ndim - 1)))
    out = a * v1 + (1 - a) * v2
    out = _cast_back(out, clip1.dtype).movedim(0, t1)

    la = alpha.to(l1.dtype).to(l1.device).unsqueeze(1)
    labels = la * l1 + (1 - la) * _aligned_clip2(l2, n1, r, n2)
    return out, labels


# ---------------------------------------------------------------------------------------------
# Volume CutMix


def _column_mask(w: float, width: int, delta: float) -> torch.Tensor:
    """``M[:, j]`` of appendix 4.5.3 for a plane at ``w``, at the pixel centres ``x_j = j + 1/2``."""
    x = torch.arange(width, dtype=torch.float64) + 0.5
    if delta == 0:
        return (x < w).to(torch.float64)
    return ((w + delta - x) / (2 * delta)).clamp(0.0, 1.0)


def _check_delta(delta, width: int) -> float:
    if delta is None:
        return width / 16
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 <= delta <= width / 2:
        raise InputError(f"delta={delta!r} must be a number in [0, W/2] = [0, {width / 2}] pixels", field="delta")
    return float(delta)


def cutmix_masks(n1: int, width: int, *, mode: str = "view", r: int = 0, scenario: str | None = None,
                 n2: int | None = None, delta: float | None = None) -> torch.Tensor:
    """The CutMix spatial masks ``M[t][:, j]`` as a float64 tensor ``(n1, width)`` (rows ``t = 1..n1``).

    Every row of a frame's mask is the same (the windows are split by a vertical plane), so one
    column profile per frame is returned; broadcast it over the height. Appendix 4.5.3::

        M[t][:, j] = 1 if j < w_t - delta;  0 if j >= w_t + delta;  (w_t + delta - j) / (2 delta) otherwise
        w_t = ⌊W alpha[t]⌉ (transient window)  or  ⌊W / 2⌉ (transient view)

    ``|M[t]|`` (the area, the mean of the mask) weights the labels.

    Choices where the thesis leaves room:

    * ``⌊·⌉`` is "round to the nearest integer" as the text defines it (not floor, despite the
      notation), halves rounded up: ``W=10, alpha=0.25`` gives ``w_t = 3``.
    * The column coordinate ``j`` is taken at the pixel centres, ``x_j = j + 1/2`` for the 0-based
      column ``j`` (the thesis does not say 0- or 1-based; integer columns in either base bias the
      ramp by half a pixel). The ramp is then symmetric about ``w_t``, ``|M[t]| = w_t / W`` whenever
      it lies inside the frame, and the transient-view area is exactly 0.5 for an even ``W``.
      With ``delta = 0`` (a hard boundary) every reading agrees: ``M = 1`` on the ``w_t`` left columns.
    * ``delta`` is in pixels, default ``W / 16`` (the thesis: "a small value"), in ``[0, W/2]``.
    * Transient window: the formula applies in the overlapping region only (frames where both clips
      exist, ``t in [r+1, min(n1, r+n2)]``, "creating two windows in the overlapping region"); outside
      it only clip 1 exists and ``M[t] = 1``. ``alpha`` (and ``r, scenario, n2``) as in
      :func:`mixup_alpha`. Inside the overlap the formula is kept even where ``alpha`` is 0 or 1, so
      a sliver of clip 1 stays at the left edge there (``w_t = 0``, ``delta = 1``: ``M = 0.25`` in
      column 0, ``|M| = 0.25 / W``) and of clip 2 at the right edge where ``w_t = W``; the labels
      follow the area.
    * Transient view: the overlap is the whole clip (no shift, equal lengths), ``w = ⌊W/2⌉``,
      clip 1 on the left window, clip 2 on the right.
    """
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise InputError(f"width must be a positive integer, got {width!r}", field="width")
    delta = _check_delta(delta, width)
    if mode == "view":
        if isinstance(n1, bool) or not isinstance(n1, int) or n1 < 1:
            raise InputError(f"n1 must be a positive integer, got {n1!r}", field="n1")
        return _column_mask(_round_half_up(width / 2), width, delta).unsqueeze(0).repeat(n1, 1)
    if mode != "window":
        raise InputError(f"mode must be 'window' or 'view', got {mode!r}", field="mode")
    alpha = mixup_alpha(n1, r, scenario, n2=n2)
    if n2 is None:  # scenario 1 without n2: clip 2 reaches past n1
        n2 = n1 - r
    masks = torch.ones(n1, width, dtype=torch.float64)
    for i in range(r, min(n1, r + n2)):  # the overlapping region, 0-based
        masks[i] = _column_mask(_round_half_up(width * float(alpha[i])), width, delta)
    return masks


def transient_view_shifts(n: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal content shifts ``(d1, d2)`` (int64, ``(n,)``) of the transient view, in pixels.

    Clip 1 is seen through the left window ``[0, w)``, clip 2 through the right one ``[w, W)``,
    ``w = ⌊W/2⌉``. "We move each clip within the constant window from left-to-right, in time" so that
    each window covers the clip's whole width: with ``tau = (t-1)/(n-1)`` (0 for ``n = 1``)

        d1[t] = ⌊-(W - w)(1 - tau)⌉   (clip 1 starts showing its right part, ends at its left part),
        d2[t] = ⌊w tau⌉               (clip 2 starts at its right part, ends showing its left part),

    and frame ``t`` of clip ``i`` is displayed as ``v_i[t][..., clamp(x - d_i[t], 0, W-1)]``: the
    content moves right linearly in time; columns that fall outside the clip (only in the ``delta``
    ramp) repeat its edge column rather than zero padding, which the thesis avoids in this mode.
    """
    w = _round_half_up(width / 2)
    tau = [0.0] * n if n <= 1 else [i / (n - 1) for i in range(n)]
    d1 = torch.tensor([_round_half_up(-(width - w) * (1 - s)) for s in tau], dtype=torch.int64)
    d2 = torch.tensor([_round_half_up(w * s) for s in tau], dtype=torch.int64)
    return d1, d2


def _slide(v: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Time-first ``v (T, ..., W)`` with frame ``t`` moved right by ``d[t]`` pixels, edges repeated."""
    width = v.shape[-1]
    x = torch.arange(width)
    idx = (x.unsqueeze(0) - d.unsqueeze(1)).clamp(0, width - 1).to(v.device)  # (T, W)
    idx = idx.reshape(v.shape[0], *([1] * (v.ndim - 2)), width).expand_as(v)
    return torch.gather(v, -1, idx)


def volume_cutmix(clip1, label1, clip2, label2, *, mode: str = "view", r: int | None = None,
                  scenario: str | None = None, n2: int | None = None, delta: float | None = None,
                  num_classes: int | None = None, generator: torch.Generator | None = None,
                  time_dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Volume CutMix (Sec. 4.2.2, Fig. 4.6, Fig. 4.7 right, appendix 4.5.3).

    ``mode="window"`` (transient window)::

        VC(v1, v2)[t] = M[t] ⊙ v1[t] + (1 - M[t]) ⊙ v2[t - r]
        VC(l1, l2)[t] = |M[t]| l1[t] + (1 - |M[t]|) l2[t - r]

    with a random shift ``r`` and the scenarios, ``n2`` and defaults exactly as
    :func:`volume_mixup` (the plane moves with ``alpha[t]``; output length ``n1``).

    ``mode="view"`` (transient view, constant window; the default, +0.10 mAP over the window in the
    thesis' Tab. 4.4c)::

        VC(v1, v2)[t] = M ⊙ v1'[t] + (1 - M) ⊙ v2'[t]
        VC(l1, l2)[t] = 0.5 l1[t] + 0.5 l2[t]

    where ``v_i'`` is clip ``i`` with its content sliding left-to-right inside its half window
    (:func:`transient_view_shifts`); no shift, both clips must have the same length. The labels are
    0.5 / 0.5 as in the thesis, whatever the mask's area (exactly 0.5 for an even width only).

    The masks are :func:`cutmix_masks` (pixel centres, ``⌊·⌉`` rounding halves up, ``delta`` default
    ``W/16``; see there). The width is the clip's last dimension and the height the one before, so
    the time axis must be neither: ``(T, C, H, W)`` or ``(C, T, H, W)``. Feature sequences ``(T, D)``
    are refused: the masks are spatial, and a feature vector of a spatially cut frame is not the
    area-weighted mix of the two features (use :func:`volume_mixup` on features).
    """
    clip1, t1 = _as_clip(clip1, "clip1", time_dim)
    clip2, t2 = _as_clip(clip2, "clip2", time_dim)
    if clip1.ndim < 3 or t1 >= clip1.ndim - 2:
        raise InputError(f"Volume CutMix needs frames with a height and a width after the time axis, "
                         f"e.g. (T, C, H, W); got shape {tuple(clip1.shape)} with time_dim={time_dim} "
                         f"(use volume_mixup on feature sequences)", field="clip1")
    _check_pair(clip1, clip2, t1, t2)
    if mode not in ("window", "view"):
        raise InputError(f"mode must be 'window' or 'view', got {mode!r}", field="mode")
    n1, len2, width = clip1.shape[t1], clip2.shape[t2], clip1.shape[-1]
    if n1 < 1 or len2 < 1:
        raise InputError("both clips need at least one frame", field="clip1" if n1 < 1 else "clip2")
    l1, l2 = _pair_labels(label1, label2, n1, len2, num_classes)
    ct = _compute_dtype(clip1.dtype)
    v1 = clip1.movedim(t1, 0).to(ct)
    v2 = clip2.movedim(t2, 0).to(ct)

    if mode == "view":
        if len2 != n1:
            raise InputError(f"the transient view mixes clips of the same length: clip1 has {n1} frames, "
                             f"clip2 {len2}", field="clip2")
        for name, v in (("r", r), ("scenario", scenario), ("n2", n2)):
            if v is not None and not (name == "r" and v == 0) and not (name == "n2" and v == n1):
                raise InputError(f"{name}={v!r} does not apply to the transient view (no shift)", field=name)
        masks = cutmix_masks(n1, width, mode="view", delta=delta)
        d1, d2 = transient_view_shifts(n1, width)
        v1, v2 = _slide(v1, d1), _slide(v2, d2)
        labels = 0.5 * l1 + 0.5 * l2
    else:
        r, n2, scen = _sample_shift(n1, len2, r, scenario, n2, generator)
        masks = cutmix_masks(n1, width, mode="window", r=r, scenario=scen, n2=n2, delta=delta)
        v2 = _aligned_clip2(v2, n1, r, n2)
        area = masks.mean(dim=1).to(l1.dtype).to(l1.device).unsqueeze(1)  # |M[t]|
        labels = area * l1 + (1 - area) * _aligned_clip2(l2, n1, r, n2)

    m = masks.to(ct).to(v1.device).reshape(n1, *([1] * (v1.ndim - 2)), width)
    out = m * v1 + (1 - m) * v2
    return _cast_back(out, clip1.dtype).movedim(0, t1), labels


# ---------------------------------------------------------------------------------------------
# data-pipeline transform


class VolumeAugment:
    """One volume augmentation per sample, chosen with the configured probabilities.

    ``VolumeAugment(freeze=p1, mixup=p2, cutmix=p3)`` applies Volume Freeze with probability ``p1``,
    Volume MixUp with ``p2``, Volume CutMix with ``p3`` and nothing with ``1 - p1 - p2 - p3`` (the
    labels are then just the frame-level pseudo labels). One augmentation per sample, never several:
    the thesis found stacking them gives confusing inputs (Tab. 4.2a; its best results ensemble
    models trained with one augmentation each, e.g. ``VolumeAugment(freeze=1.0)``).

    * ``__call__(clip, label, clip2=None, label2=None)`` returns ``(clip, labels (T, K))``. MixUp and
      CutMix need a second sample (``clip2``, ``label2``), e.g. another random item of the dataset
      or of the batch; without one, a transform with ``mixup + cutmix > 0`` raises ``InputError``
      (always, not only when they are drawn).
    * :meth:`batch` applies it to a batch ``(B, ...)``, pairing each sample with another sample of
      the batch (the thesis augments "a batch of input clips"): use it in a ``collate_fn`` or on the
      device after loading.
    * ``cutmix_mode``: ``"view"`` (default), ``"window"`` or ``"random"`` (1/2 each);
      ``mixup_scenario`` (also used by the transient window): ``None`` (from the clip lengths and
      ``r``, as the thesis; always one-way for equal lengths), ``"one-way"``, ``"round-trip"`` or
      ``"random"``; ``delta``: CutMix's transition half-width in pixels (default ``W / 16``).
    * ``generator``: the default source of randomness (``None``: torch's global generator); a call's
      ``generator=`` overrides it.

    It only touches time (and the labels), so it composes with spatial transforms such as
    ``torchvision.transforms.v2`` (not a dependency of momentkit): run the spatial transforms on each
    clip first -- a ``(T, C, H, W)`` tensor is a batch of images to v2, or wrap it in
    ``tv_tensors.Video`` -- so that both clips of a pair have the same size (the thesis scales, crops
    to 224 x 224 and flips, then extends the labels and applies one volume augmentation), then call
    this transform; photometric transforms may also come after it. It is not a ``v2.Transform``
    because it needs a second sample and returns per-frame labels.
    """

    def __init__(self, freeze: float = 0.0, mixup: float = 0.0, cutmix: float = 0.0, *,
                 cutmix_mode: str = "view", mixup_scenario: str | None = None, delta: float | None = None,
                 num_classes: int | None = None, time_dim: int = 0, generator: torch.Generator | None = None) -> None:
        probs = {"freeze": freeze, "mixup": mixup, "cutmix": cutmix}
        for name, p in probs.items():
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
                raise InputError(f"{name}={p!r} must be a probability in [0, 1]", field=name)
        if sum(probs.values()) > 1 + 1e-9:
            raise InputError(f"freeze + mixup + cutmix = {sum(probs.values()):g} exceeds 1", field="cutmix")
        if cutmix_mode not in ("view", "window", "random"):
            raise InputError(f"cutmix_mode must be 'view', 'window' or 'random', got {cutmix_mode!r}",
                             field="cutmix_mode")
        if mixup_scenario not in (None, "random", *_SCENARIOS):
            raise InputError(f"mixup_scenario must be 'one-way', 'round-trip', 'random' or None, got "
                             f"{mixup_scenario!r}", field="mixup_scenario")
        self.freeze, self.mixup, self.cutmix = float(freeze), float(mixup), float(cutmix)
        self.cutmix_mode, self.mixup_scenario, self.delta = cutmix_mode, mixup_scenario, delta
        self.num_classes, self.time_dim, self.generator = num_classes, time_dim, generator

    def __repr__(self) -> str:
        return (f"VolumeAugment(freeze={self.freeze}, mixup={self.mixup}, cutmix={self.cutmix}, "
                f"cutmix_mode={self.cutmix_mode!r}, mixup_scenario={self.mixup_scenario!r})")

    @property
    def needs_pair(self) -> bool:
        """Whether a second sample must be passed (MixUp or CutMix can be drawn)."""
        return self.mixup > 0 or self.cutmix > 0

    def choose(self, generator: torch.Generator | None = None) -> str:
        """Draw ``"freeze"``, ``"mixup"``, ``"cutmix"`` or ``"none"`` with the configured probabilities."""
        u = float(torch.rand((), generator=(generator if generator is not None else self.generator)).item())
        for name, p in (("freeze", self.freeze), ("mixup", self.mixup), ("cutmix", self.cutmix)):
            if u < p:
                return name
            u -= p
        return "none"

    def apply(self, name: str, clip, label, clip2=None, label2=None, *,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the augmentation ``name`` (as returned by :meth:`choose`) with this transform's settings."""
        g = (generator if generator is not None else self.generator)
        kw = {"num_classes": self.num_classes, "generator": g, "time_dim": self.time_dim}
        if name == "none":
            c, td = _as_clip(clip, "clip", self.time_dim)
            return c, frame_labels(label, c.shape[td], num_classes=self.num_classes, dtype=_label_dtype(label))
        if name == "freeze":
            return volume_freeze(clip, label, **kw)
        if clip2 is None or label2 is None:
            raise InputError(f"{name} needs a second sample: pass clip2 and label2",
                             field="clip2" if clip2 is None else "label2")
        if name == "mixup":
            return volume_mixup(clip, label, clip2, label2, scenario=self.mixup_scenario, **kw)
        if name == "cutmix":
            mode = self.cutmix_mode
            if mode == "random":
                mode = ("view", "window")[_randint(0, 1, g)]
            extra = {"scenario": self.mixup_scenario} if mode == "window" else {}
            return volume_cutmix(clip, label, clip2, label2, mode=mode, delta=self.delta, **extra, **kw)
        raise InputError(f"unknown augmentation {name!r}: 'none', 'freeze', 'mixup' or 'cutmix'", field="name")

    def __call__(self, clip, label, clip2=None, label2=None, *,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.needs_pair and (clip2 is None or label2 is None):
            raise InputError("this VolumeAugment can draw MixUp or CutMix: pass a second sample (clip2, label2)",
                             field="clip2" if clip2 is None else "label2")
        return self.apply(self.choose(generator), clip, label, clip2, label2, generator=generator)

    def batch(self, clips: torch.Tensor, labels: torch.Tensor | Sequence, *,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch ``clips (B, ...)`` (each sample laid out as ``time_dim`` says).

        ``labels`` are ``(B,)`` class indices, ``(B, K)`` clip labels or ``(B, T, K)`` frame labels.
        Sample ``i`` is paired with sample ``(i + k) % B`` for one ``k`` drawn in ``[1, B-1]`` (itself
        when ``B = 1``). Returns ``(clips (B, ...), labels (B, T, K))``.
        """
        g = (generator if generator is not None else self.generator)
        if not isinstance(clips, torch.Tensor) or clips.ndim < 2 or len(clips) == 0:
            raise InputError("clips must be a non-empty batch tensor (B, ...)", field="clips")
        if len(labels) != len(clips):
            raise InputError(f"{len(labels)} labels for {len(clips)} clips", field="labels")
        b = len(clips)
        k = _randint(1, b - 1, g) if b > 1 else 0
        out_c, out_l = [], []
        for i in range(b):
            j = (i + k) % b
            c, lab = self(clips[i], labels[i], clips[j], labels[j], generator=g) if self.needs_pair \
                else self(clips[i], labels[i], generator=g)
            out_c.append(c)
            out_l.append(lab)
        return torch.stack(out_c), torch.stack(out_l)
