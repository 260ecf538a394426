"""X3D backbone (Feichtenhofer, "X3D: Expanding Architectures for Efficient Video Recognition",
CVPR 2020) laid out for dense, per-frame prediction as in Coarse-Fine Networks (Kahatapitiya &
Ryoo, CVPR 2021, Table 3.1 of the thesis): no temporal stride anywhere, so every stage keeps the
number of frames it is given, and the head pools space only and predicts logits for every frame.

Layout of :func:`x3d_m` (input frames sampled at a stride of 10 by the data pipeline; shapes for a
``T x 224^2`` clip)::

    stage  filters                                                  output
    stem   1x3x3 conv, 24, spatial stride 2; kx1x1 depthwise conv    24 x T x 112^2
    res2   [1x1x1, 54;  3x3x3 depthwise, 54;  1x1x1, 24]  x 3        24 x T x 56^2
    res3   [1x1x1, 108; 3x3x3 depthwise, 108; 1x1x1, 48]  x 5        48 x T x 28^2
    res4   [1x1x1, 216; 3x3x3 depthwise, 216; 1x1x1, 96]  x 11       96 x T x 14^2
    res5   [1x1x1, 432; 3x3x3 depthwise, 432; 1x1x1, 192] x 7       192 x T x 7^2
    conv5  1x1x1, 432 (BN, ReLU)                                   432 x T x 7^2
    pool5  spatial average                                         432 x T
    fc1    1x1x1, 2048 (ReLU), dropout                            2048 x T
    fc2    linear, #classes                                       (B, T, #classes)

Each residual stage downsamples space by 2 in its first block (depthwise conv and shortcut).
Blocks use BatchNorm, ReLU after the first 1x1x1 conv and after the residual sum, swish after the
depthwise conv, and Squeeze-Excitation (ratio 1/16, reduced width rounded to a multiple of 8 as in
the reference code) after the depthwise conv's BN of every other block (the 1st, 3rd, ...). SE
pools over the whole input clip (time included), as X3D does: it is the one operation through
which a frame's output depends on frames outside the convolutions' temporal receptive field.

The stem's depthwise temporal kernel is 5 (:attr:`X3DConfig.stem_temporal_kernel`), as in the X3D
reference implementations and their Kinetics checkpoints; the paper's table writes ``3 x 1``.

Structure for callers (Coarse-Fine inserts Grid Pool after res2 and reads every stage for fusion)::

    x = model.stem(x)                   # (B, C, T, H, W) -> (B, 24, T, H/2, W/2)
    for stage in model.stages:          # res2..res5, each (B, C_in, T, h, w) -> (B, C_out, T, h/2, w/2)
        x = stage(x)
    logits = model.head(x)              # (B, 192, T, h, w) -> (B, T, K)

Weights load with :func:`load_x3d_weights` from a state dict of this module or from pytorchvideo's
``x3d_m`` (``pytorchvideo/models/x3d.py``; the Kinetics-400 ``X3D_M.pyth`` of its model zoo holds
``{"model_state": ...}`` with ``blocks.0`` stem, ``blocks.1-4`` stages, ``blocks.5`` head).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from momentkit.errors import InputError


# ----------------------------------------------------------------------------- config
@dataclass
class X3DConfig:
    """Every size of the network. Defaults are X3D-M (Coarse-Fine Table 3.1).

    ``num_classes=None`` builds no ``fc2``: the head then returns the ``head_channels`` features
    of every frame. ``spatial_strides`` is the spatial stride of the first block of each stage
    (temporal stride is always 1).
    """

    in_channels: int = 3
    stem_channels: int = 24
    stem_temporal_kernel: int = 5
    stage_out: tuple[int, ...] = (24, 48, 96, 192)
    stage_inner: tuple[int, ...] = (54, 108, 216, 432)
    stage_blocks: tuple[int, ...] = (3, 5, 11, 7)
    spatial_strides: tuple[int, ...] = (2, 2, 2, 2)
    block_kernel: tuple[int, int, int] = (3, 3, 3)
    se_ratio: float = 0.0625
    conv5_channels: int = 432
    head_channels: int = 2048
    dropout: float = 0.5
    num_classes: int | None = None
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1

    def __post_init__(self) -> None:
        for name in ("stage_out", "stage_inner", "stage_blocks", "spatial_strides", "block_kernel"):
            setattr(self, name, tuple(int(v) for v in getattr(self, name)))
        n = len(self.stage_out)
        if not n or any(len(getattr(self, k)) != n for k in ("stage_inner", "stage_blocks", "spatial_strides")):
            raise InputError(f"stage_out, stage_inner, stage_blocks and spatial_strides need the same "
                             f"(non-zero) length, got {self.stage_out}, {self.stage_inner}, "
                             f"{self.stage_blocks}, {self.spatial_strides}", field="stage_out")
        positive = dict(in_channels=self.in_channels, stem_channels=self.stem_channels,
                        conv5_channels=self.conv5_channels, head_channels=self.head_channels)
        for name, value in positive.items():
            if value < 1:
                raise InputError(f"must be >= 1, got {value}", field=name)
        for name in ("stage_out", "stage_inner", "stage_blocks", "spatial_strides"):
            if min(getattr(self, name)) < 1:
                raise InputError(f"every entry must be >= 1, got {getattr(self, name)}", field=name)
        if len(self.block_kernel) != 3 or any(k < 1 or k % 2 == 0 for k in self.block_kernel):
            raise InputError(f"must be three odd sizes, got {self.block_kernel}", field="block_kernel")
        if self.stem_temporal_kernel < 1 or self.stem_temporal_kernel % 2 == 0:
            raise InputError(f"must be odd, got {self.stem_temporal_kernel}", field="stem_temporal_kernel")
        if self.se_ratio < 0:
            raise InputError(f"must be >= 0, got {self.se_ratio}", field="se_ratio")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"must be in [0, 1), got {self.dropout}", field="dropout")
        if self.num_classes is not None and self.num_classes < 1:
            raise InputError(f"must be >= 1 or None, got {self.num_classes}", field="num_classes")

    @property
    def spatial_stride(self) -> int:
        """Total spatial downsampling from input to the last stage (32 for X3D-M)."""
        s = 2
        for v in self.spatial_strides:
            s *= v
        return s

    def to_dict(self) -> dict:
        return asdict(self)


def x3d_m(**overrides) -> X3DConfig:
    """X3D-M as in Coarse-Fine Networks (Table 3.1): about 3.8M parameters with 400 classes."""
    return X3DConfig(**overrides)


def x3d_tiny(**overrides) -> X3DConfig:
    """A small X3D of the same architecture for tests: 4 stages of 1 block, widths 8-32."""
    base = dict(stem_channels=8, stage_out=(8, 16, 24, 32), stage_inner=(18, 36, 54, 72),
                stage_blocks=(1, 1, 1, 1), conv5_channels=72, head_channels=64)
    base.update(overrides)
    return X3DConfig(**base)


def round_width(width: float, multiplier: float, min_width: int = 8, divisor: int = 8) -> int:
    """``width * multiplier`` rounded to a multiple of ``divisor`` (at least ``min_width``), never
    more than 10% below the exact value: the X3D rule for the Squeeze-Excitation width."""
    width *= multiplier
    out = max(min_width, int(width + divisor / 2) // divisor * divisor)
    if out < 0.9 * width:
        out += divisor
    return int(out)


# ----------------------------------------------------------------------------- layers
class Swish(nn.Module):
    """``x * sigmoid(x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class SqueezeExcite(nn.Module):
    """Channel gating from the spatio-temporal mean: ``x * sigmoid(fc2(relu(fc1(mean(x)))))``.
    ``(B, C, T, H, W) -> (B, C, T, H, W)``."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv3d(channels, reduced, 1, bias=True)
        self.fc2 = nn.Conv3d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3, 4), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


def _bn(channels: int, cfg: X3DConfig) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=cfg.bn_eps, momentum=cfg.bn_momentum)


class X3DStem(nn.Module):
    """``conv1``: 1x3x3 conv (spatial stride 2), kx1x1 depthwise temporal conv, BN, ReLU.
    ``(B, in_channels, T, H, W) -> (B, stem_channels, T, ceil(H/2), ceil(W/2))``."""

    def __init__(self, cfg: X3DConfig) -> None:
        super().__init__()
        c, k = cfg.stem_channels, cfg.stem_temporal_kernel
        self.conv_s = nn.Conv3d(cfg.in_channels, c, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False)
        self.conv_t = nn.Conv3d(c, c, (k, 1, 1), padding=(k // 2, 0, 0), groups=c, bias=False)
        self.bn = _bn(c, cfg)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv_t(self.conv_s(x))))


class X3DBlock(nn.Module):
    """Residual bottleneck: 1x1x1 conv, BN, ReLU; 3x3x3 depthwise conv (spatial ``stride``), BN,
    [SE], swish; 1x1x1 conv, BN; plus the shortcut (1x1x1 conv when the width or the resolution
    changes, with BN when the width changes, as in the reference code); ReLU.
    ``(B, dim_in, T, H, W) -> (B, dim_out, T, ceil(H/stride), ceil(W/stride))``."""

    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, stride: int, se_reduced: int | None,
                 cfg: X3DConfig) -> None:
        super().__init__()
        kt, kh, kw = cfg.block_kernel
        if dim_in != dim_out or stride > 1:
            self.shortcut = nn.Conv3d(dim_in, dim_out, 1, stride=(1, stride, stride), bias=False)
        else:
            self.shortcut = None
        self.shortcut_bn = _bn(dim_out, cfg) if dim_in != dim_out else None
        self.conv_a = nn.Conv3d(dim_in, dim_inner, 1, bias=False)
        self.bn_a = _bn(dim_inner, cfg)
        self.conv_b = nn.Conv3d(dim_inner, dim_inner, (kt, kh, kw), stride=(1, stride, stride),
                                padding=(kt // 2, kh // 2, kw // 2), groups=dim_inner, bias=False)
        self.bn_b = _bn(dim_inner, cfg)
        self.se = SqueezeExcite(dim_inner, se_reduced) if se_reduced else None
        self.swish = Swish()
        self.conv_c = nn.Conv3d(dim_inner, dim_out, 1, bias=False)
        self.bn_c = _bn(dim_out, cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn_a(self.conv_a(x)), inplace=True)
        y = self.bn_b(self.conv_b(y))
        if self.se is not None:
            y = self.se(y)
        y = self.bn_c(self.conv_c(self.swish(y)))
        if self.shortcut is not None:
            x = self.shortcut(x)
            if self.shortcut_bn is not None:
                x = self.shortcut_bn(x)
        return F.relu(x + y, inplace=True)


class X3DHead(nn.Module):
    """conv5 (1x1x1, BN, ReLU), spatial average pool, fc1 (1x1x1, ReLU), dropout, fc2.

    ``forward``: ``(B, C, T, h, w) -> (B, T, num_classes)`` logits, or ``(B, T, head_channels)``
    when the config has no classes; ``embed`` always gives the ``(B, T, head_channels)`` features.
    """

    def __init__(self, dim_in: int, cfg: X3DConfig) -> None:
        super().__init__()
        self.conv5 = nn.Conv3d(dim_in, cfg.conv5_channels, 1, bias=False)
        self.bn5 = _bn(cfg.conv5_channels, cfg)
        self.fc1 = nn.Conv3d(cfg.conv5_channels, cfg.head_channels, 1, bias=False)
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc2 = nn.Linear(cfg.head_channels, cfg.num_classes) if cfg.num_classes else None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn5(self.conv5(x)), inplace=True)
        x = x.mean(dim=(3, 4), keepdim=True)  # (B, C5, T, 1, 1)
        x = F.relu(self.fc1(x), inplace=True)
        return x.flatten(2).transpose(1, 2)  # (B, T, head_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        if self.fc2 is None:
            return x
        return self.fc2(self.dropout(x))


class X3D(nn.Module):
    """X3D with per-frame outputs and no temporal striding (see the module docstring).

    - ``stem``: ``(B, in_channels, T, H, W) -> (B, stem_channels, T, H/2, W/2)``
    - ``stages`` (``nn.ModuleList`` of ``nn.Sequential`` of :class:`X3DBlock`, res2..res5): stage
      ``i`` maps ``(B, C_{i-1}, T, h, w) -> (B, stage_out[i], T, h/s_i, w/s_i)``
    - ``head``: ``(B, stage_out[-1], T, h, w) -> (B, T, K)``
    - ``forward``: ``(B, C, T, H, W) -> (B, T, K)`` (``K = head_channels`` without classes)

    Sizes divide with rounding up (``ceil``), as strided 3x3 convolutions with padding 1 do.
    """

    def __init__(self, config: X3DConfig | None = None, **overrides) -> None:
        super().__init__()
        if config is None:
            config = X3DConfig(**overrides)
        elif overrides:
            config = X3DConfig(**{**config.to_dict(), **overrides})
        self.config = cfg = config
        self.stem = X3DStem(cfg)
        stages = []
        dim_in = cfg.stem_channels
        for out, inner, depth, stride in zip(cfg.stage_out, cfg.stage_inner, cfg.stage_blocks, cfg.spatial_strides):
            blocks = []
            for j in range(depth):
                se = round_width(inner, cfg.se_ratio) if cfg.se_ratio > 0 and j % 2 == 0 else None
                blocks.append(X3DBlock(dim_in if j == 0 else out, inner, out, stride if j == 0 else 1, se, cfg))
            stages.append(nn.Sequential(*blocks))
            dim_in = out
        self.stages = nn.ModuleList(stages)
        self.head = X3DHead(dim_in, cfg)
        self.reset_parameters()

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """Output channels of each stage (res2..res5)."""
        return self.config.stage_out

    def reset_parameters(self) -> None:
        """He (fan-out) init for convolutions, BN to identity except the last BN of each residual
        branch (zero, so every block starts as its shortcut), small normal init for fc2."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, X3DBlock):
                nn.init.zeros_(m.bn_c.weight)

    def forward_features(self, x: torch.Tensor, return_stages: bool = True
                         ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(B, C, T, H, W)`` -> ``(last stage output (B, stage_out[-1], T, H/32, W/32), outputs)``
        where ``outputs`` lists every stage's output (res2..res5) when ``return_stages``, else is
        empty."""
        _check_input(x, self.config)
        x = self.stem(x)
        outs: list[torch.Tensor] = []
        for stage in self.stages:
            x = stage(x)
            if return_stages:
                outs.append(x)
        return x, outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> per-frame logits ``(B, T, K)``."""
        x, _ = self.forward_features(x, return_stages=False)
        return self.head(x)


def _check_input(x: torch.Tensor, cfg: X3DConfig) -> None:
    if x.dim() != 5 or x.shape[1] != cfg.in_channels:
        raise InputError(f"expected a (B, {cfg.in_channels}, T, H, W) tensor, got {tuple(x.shape)}")


# ----------------------------------------------------------------------------- checkpoints
_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

# our key (after the stage/block prefix) -> pytorchvideo's key (after "blocks.{i}.res_blocks.{j}.")
_BLOCK_TO_PV = {
    "shortcut.weight": "branch1_conv.weight",
    "conv_a.weight": "branch2.conv_a.weight",
    "conv_b.weight": "branch2.conv_b.weight",
    "conv_c.weight": "branch2.conv_c.weight",
    "se.fc1.weight": "branch2.norm_b.1.block.0.weight",
    "se.fc1.bias": "branch2.norm_b.1.block.0.bias",
    "se.fc2.weight": "branch2.norm_b.1.block.2.weight",
    "se.fc2.bias": "branch2.norm_b.1.block.2.bias",
}
for _k in _BN_KEYS:
    _BLOCK_TO_PV[f"shortcut_bn.{_k}"] = f"branch1_norm.{_k}"
    _BLOCK_TO_PV[f"bn_a.{_k}"] = f"branch2.norm_a.{_k}"
    _BLOCK_TO_PV[f"bn_b.{_k}"] = f"branch2.norm_b.0.{_k}"
    _BLOCK_TO_PV[f"bn_c.{_k}"] = f"branch2.norm_c.{_k}"


def _other_to_pv(num_stages: int) -> dict[str, str]:
    head = f"blocks.{num_stages + 1}"
    # pytorchvideo's stem is a Conv2plus1d whose "conv_t" holds the spatial 1x3x3 conv and whose
    # "conv_xy" holds the depthwise temporal one (the spatial conv runs first).
    m = {"stem.conv_s.weight": "blocks.0.conv.conv_t.weight",
         "stem.conv_t.weight": "blocks.0.conv.conv_xy.weight",
         "head.conv5.weight": f"{head}.pool.pre_conv.weight",
         "head.fc1.weight": f"{head}.pool.post_conv.weight",
         "head.fc2.weight": f"{head}.proj.weight",
         "head.fc2.bias": f"{head}.proj.bias"}
    for k in _BN_KEYS:
        m[f"stem.bn.{k}"] = f"blocks.0.norm.{k}"
        m[f"head.bn5.{k}"] = f"{head}.pool.pre_norm.{k}"
    return m


_STAGE_KEY = re.compile(r"stages\.(\d+)\.(\d+)\.(.+)")


def pytorchvideo_key(key: str, num_stages: int = 4) -> str:
    """pytorchvideo's name (``create_x3d`` / hub ``x3d_m``) of one of our state-dict keys."""
    m = _STAGE_KEY.fullmatch(key)
    if m:
        i, j, rest = m.groups()
        if rest in _BLOCK_TO_PV:
            return f"blocks.{int(i) + 1}.res_blocks.{j}.{_BLOCK_TO_PV[rest]}"
    else:
        other = _other_to_pv(num_stages)
        if key in other:
            return other[key]
    raise KeyError(f"no pytorchvideo name for {key!r}")


def pytorchvideo_key_map(model: X3D) -> dict[str, str]:
    """``{pytorchvideo key: our key}`` for every entry of ``model.state_dict()``."""
    n = len(model.stages)
    return {pytorchvideo_key(k, n): k for k in model.state_dict()}


def to_pytorchvideo_state_dict(model: X3D) -> dict[str, torch.Tensor]:
    """``model``'s state dict under pytorchvideo's names (what its ``x3d_m`` would save)."""
    n = len(model.stages)
    return {pytorchvideo_key(k, n): v for k, v in model.state_dict().items()}


@dataclass
class X3DLoadReport:
    """What :func:`load_x3d_weights` did. ``layout``: "momentkit" or "pytorchvideo". ``loaded`` and
    ``missing`` use this module's names; ``unexpected`` the checkpoint's names; ``skipped`` are
    our keys left untouched because of ``skip=``. Missing ``num_batches_tracked`` counters are not
    listed (checkpoints often leave them out)."""

    source: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every tensor of the model came from the checkpoint."""
        return not self.missing and not self.skipped

    def __str__(self) -> str:
        text = (f"{self.source} ({self.layout} layout): {len(self.loaded)} loaded, {len(self.missing)} missing, "
                f"{len(self.unexpected)} unexpected, {len(self.skipped)} skipped")
        for name in ("missing", "unexpected"):
            keys = getattr(self, name)
            if keys:
                text += f"\n  {name}: " + ", ".join(keys[:8]) + (" ..." if len(keys) > 8 else "")
        return text


def _unwrap(obj, where) -> dict:
    for key in ("model_state", "state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            return _unwrap(obj[key], where)
    if not isinstance(obj, dict):
        raise InputError(f"expected a state dict, found {type(obj).__name__}", path=where)
    return obj


def read_x3d_state_dict(path: str | os.PathLike, *, weights_only: bool = True) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or torch checkpoint, unwrapped from ``{"model_state": ...}``
    (pytorchvideo / PySlowFast), ``{"state_dict": ...}`` or ``{"model": ...}``, with any
    ``module.`` (DataParallel) prefix removed."""
    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint file not found", path=path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=weights_only)
    except Exception as e:  # pickle, zip and safetensors errors share no base class
        hint = ("; it holds objects other than tensors: re-save its state dict, or pass weights_only=False "
                "if you trust the file") if "weights_only" in str(e) else ""
        first = (str(e).splitlines() or [""])[0][:200]
        raise InputError(f"cannot read checkpoint ({type(e).__name__}: {first}){hint}", path=path) from None
    sd = _unwrap(obj, path)
    return {(k[len("module."):] if k.startswith("module.") else k): v
            for k, v in sd.items() if torch.is_tensor(v)}


def load_x3d_weights(model: X3D, source: str | os.PathLike | Mapping[str, torch.Tensor], *,
                     skip: Iterable[str] = (), weights_only: bool = True) -> X3DLoadReport:
    """Copy weights from ``source`` (a checkpoint path or a state dict) into ``model``.

    The layout is detected from the names: this module's own (``stem.``, ``stages.``, ``head.``),
    or pytorchvideo's ``x3d_m`` (``blocks.0`` ... ``blocks.5``, e.g. Kinetics-400 ``X3D_M.pyth``).
    Every tensor whose name maps onto the model must have the model's shape, else
    :class:`~momentkit.errors.InputError` names the parameter and both shapes and nothing is
    copied. ``skip``: prefixes of our keys to leave as they are, e.g. ``("head.fc2",)`` to keep a
    fresh classifier when the checkpoint has another number of classes (with ``num_classes=None``
    there is no ``fc2`` and the checkpoint's classifier is simply reported as unexpected).
    """
    if isinstance(source, Mapping):
        where, path = "<state dict>", None
        sd = {k: v for k, v in source.items() if torch.is_tensor(v)}
    else:
        where = path = str(source)
        sd = read_x3d_state_dict(source, weights_only=weights_only)
    if not sd:
        raise InputError("the checkpoint holds no tensors", path=path)
    own = model.state_dict()
    if any(k.startswith("blocks.") for k in sd):
        layout, names = "pytorchvideo", pytorchvideo_key_map(model)
    else:
        layout, names = "momentkit", {k: k for k in own}
    skip = tuple(skip)
    report = X3DLoadReport(source=where, layout=layout)
    to_load: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        ours = names.get(key)
        if ours is None:
            report.unexpected.append(key)
            continue
        if skip and ours.startswith(skip):
            continue
        target = own[ours]
        if tuple(value.shape) != tuple(target.shape):
            shown = key if key == ours else f"{key} (our {ours})"
            raise InputError(f"shape mismatch for {shown}: checkpoint {tuple(value.shape)}, "
                             f"model {tuple(target.shape)}", path=path)
        to_load[ours] = value
    result = model.load_state_dict(to_load, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    report.loaded = [k for k in own if k in to_load]
    report.skipped = [k for k in own if skip and k.startswith(skip)]
    report.missing = [k for k in own if k not in to_load and k not in report.skipped
                      and not k.endswith("num_batches_tracked")]
    return report


__all__ = [
    "SqueezeExcite",
    "Swish",
    "X3D",
    "X3DBlock",
    "X3DConfig",
    "X3DHead",
    "X3DLoadReport",
    "X3DStem",
    "load_x3d_weights",
    "pytorchvideo_key",
    "pytorchvideo_key_map",
    "read_x3d_state_dict",
    "round_width",
    "to_pytorchvideo_state_dict",
    "x3d_m",
    "x3d_tiny",
]
