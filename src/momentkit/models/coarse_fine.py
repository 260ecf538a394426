"""Coarse-Fine Networks (thesis 004, chapter 3) for dense per-frame activity detection.

Two streams over the same input of ``T`` frames (feature sequences ``(B, T, D)`` or raw frames
``(B, 3, T, H, W)``), each a stem and ``S`` stages of residual blocks with no temporal stride:

- **Fine**: every stage at full temporal resolution ``T``; its stage outputs are the fine abstraction
  levels the fusion reads.
- **Coarse**: stage 0 (``res2``) at ``T``, then a temporal pool to ``N = alpha * T`` frames
  (:class:`momentkit.ops.grid_pool.TemporalPool`: the learnable **Grid Pool**, or striding / max /
  average at the same ``alpha``), the remaining stages at ``N``, each followed by a
  **Multi-stage Fusion** connection (:class:`momentkit.ops.fusion.MultiStageFusion`); its per-frame
  logits ``(B, N, K)`` go back to ``T`` frames through **Grid Unpool** (the inverse of the pool's
  grid; plain interpolation for the fixed pools).
- Output: the mean of the two streams' logits (``output: mean``; the thesis trains each stream with
  its own classifier and does not say how the two are read at the end -- averaging keeps both
  classifiers in use) or the Coarse stream's alone (``output: coarse``).

Variants are configuration (registered names with presets, see the bottom of the module):
``coarse_fine`` (Grid Pool + multi-stage fusion), ``coarse_only``, ``fine_only``, ``fine_fine`` (no
pool in the Coarse stream, fusion kept), ``slowfast_det`` (strided Coarse stream, same-level fusion
with direct frame correspondence, no fusion mask: the thesis's SlowFast-style two-stream baseline).
Fusion modes: ``late`` (one connection before the logits, reading the last fine level), ``same``
(after every Coarse stage, reading the fine stage of the same depth), ``multi`` (after every Coarse
stage, reading every fine level), ``none``.

Streams on features (``input: features``): a point-wise stem ``D -> hidden_dim``, then stages of
X3D-style bottleneck blocks on time (point-wise expand, depth-wise temporal conv, point-wise
project, BatchNorm, residual), then the head of X3D (point-wise ``head_dim`` + ReLU, dropout 0.5,
classifier). On frames (``input: frames``): :class:`momentkit.models.x3d.X3D` (sizes from ``x3d``),
Grid Pool after ``res2`` as in the thesis.

Loss: the average of the per-frame sigmoid BCE and the video-level BCE of the temporal max
(``video_loss_weight``, 0.5 = the thesis's "average of classification and localization loss").
Batches: :class:`momentkit.models.contract.DenseBatch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from momentkit.errors import InputError
from momentkit.models.losses import frame_bce_loss, video_bce_loss
from momentkit.models.registry import register_model

POOLS = ("grid", "stride", "max", "avg", "none")
FUSIONS = ("multi", "same", "late", "none")


@dataclass
class CoarseFineConfig:
    input_dim: int = 0  # feature width (filled from the data); 3 for raw frames
    num_classes: int = 0  # filled from the data
    frames: int = 0  # frames per item (filled from the data; 0 = not checked)
    input: str = "features"  # "features" (B, T, D) or "frames" (B, 3, T, H, W)
    coarse: bool = True  # build the Coarse stream
    fine: bool = True  # build the Fine stream
    pool: str = "grid"  # Coarse stream's temporal pool: grid | stride | max | avg | none
    alpha: float = 0.25  # Coarse frames per input frame
    fusion: str = "multi"  # multi | same | late | none
    calibration: str = "gaussian"  # fine-to-coarse correspondence: gaussian | direct
    fusion_mask: bool = True  # the sigmoid filter on the fine features
    sigma_fraction: float = 0.125  # Gaussian sigma = sigma_fraction * T'
    output: str = "mean"  # mean of both streams' logits | coarse
    # feature streams
    hidden_dim: int = 128
    stage_blocks: list[int] = field(default_factory=lambda: [1, 2, 2, 1])  # res2..res5
    expansion: float = 2.25
    kernel_size: int = 3
    head_dim: int = 256
    dropout: float = 0.5
    # raw-frame streams: X3D sizes (momentkit.models.x3d.X3DConfig fields), preset "m" or "tiny",
    # "weights": a local X3D checkpoint (momentkit or pytorchvideo layout) loaded into both streams
    x3d: dict = field(default_factory=lambda: {"preset": "tiny"})
    video_loss_weight: float = 0.5
    # detection pretraining, manifold variant: with this probability per training batch, Volume MixUp
    # of the hidden features after a random stage of the Fine stream (or the only stream) with another
    # sample of the batch, the per-frame targets mixed alike (thesis 004, Sec. 4.3 / Tab. 4.4b)
    manifold_mixup: float = 0.0

    def __post_init__(self) -> None:
        choices = {"input": ("features", "frames"), "pool": POOLS, "fusion": FUSIONS,
                   "calibration": ("gaussian", "direct"), "output": ("mean", "coarse")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise InputError(f"expected one of {', '.join(allowed)}, got {getattr(self, key)!r}",
                                 field=f"model.{key}")
        if not (self.coarse or self.fine):
            raise InputError("build at least one stream", field="model.coarse")
        if self.fusion != "none" and not (self.coarse and self.fine):
            raise InputError("fusion needs both streams (set fusion: none for a single stream)", field="model.fusion")
        if not 0 < self.alpha <= 1:
            raise InputError(f"must be in (0, 1], got {self.alpha}", field="model.alpha")
        stride = round(1 / self.alpha)
        if self.coarse and self.pool != "none" and self.frames and self.frames % stride:
            raise InputError(f"{self.frames} frames per item cannot be pooled by the Coarse stream's stride {stride} "
                             f"(alpha {self.alpha:g}): use a multiple of {stride} (data.frames)", field="data.frames")
        if len(self.stage_blocks) < 2 or any(b < 1 for b in self.stage_blocks):
            raise InputError("give at least two stages of at least one block", field="model.stage_blocks")
        if not 0 <= self.manifold_mixup <= 1:
            raise InputError(f"must be a probability in [0, 1], got {self.manifold_mixup}", field="model.manifold_mixup")
        if self.manifold_mixup and self.coarse and self.fine:
            raise InputError("manifold MixUp pretrains one stream (fine_only or coarse_only)", field="model.manifold_mixup")
        if not 0 <= self.video_loss_weight <= 1:
            raise InputError(f"must be in [0, 1], got {self.video_loss_weight}", field="model.video_loss_weight")


# ----------------------------------------------------------------------------- feature streams
class TemporalBottleneck(nn.Module):
    """X3D's bottleneck on time: ``(B, T, C) -> (B, T, C)``: point-wise expand, depth-wise temporal conv,
    point-wise project, BatchNorm after each, ReLU / SiLU, residual."""

    def __init__(self, channels: int, expansion: float = 2.25, kernel_size: int = 3) -> None:
        super().__init__()
        inner = max(1, round(channels * expansion))
        self.body = nn.Sequential(
            nn.Conv1d(channels, inner, 1, bias=False), nn.BatchNorm1d(inner), nn.ReLU(inplace=True),
            nn.Conv1d(inner, inner, kernel_size, padding=kernel_size // 2, groups=inner, bias=False),
            nn.BatchNorm1d(inner), nn.SiLU(inplace=True),
            nn.Conv1d(inner, channels, 1, bias=False), nn.BatchNorm1d(channels),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.transpose(1, 2)
        return self.act(y + self.body(y)).transpose(1, 2)


class FrameHead(nn.Module):
    """Per-frame classifier: ``(B, T, C) -> (B, T, K)`` (X3D's conv5 / fc1 / dropout / fc2 on time)."""

    def __init__(self, channels: int, head_dim: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Sequential(nn.Linear(channels, head_dim), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.fc2 = nn.Linear(head_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


class FeatureStream(nn.Module):
    """``(B, T, D)`` -> stage outputs ``(B, T_l, C)``; ``stem``, ``stages`` and ``head`` are separate so the
    Coarse stream can pool between stage 0 and stage 1 and fuse after each later stage."""

    video = False

    def __init__(self, cfg: CoarseFineConfig) -> None:
        super().__init__()
        c = cfg.hidden_dim
        self.stem = nn.Sequential(nn.Linear(cfg.input_dim, c), nn.LayerNorm(c), nn.ReLU(inplace=True))
        self.stages = nn.ModuleList(
            nn.Sequential(*[TemporalBottleneck(c, cfg.expansion, cfg.kernel_size) for _ in range(n)])
            for n in cfg.stage_blocks)
        self.channels = [c] * len(cfg.stage_blocks)
        self.head = FrameHead(c, cfg.head_dim, cfg.num_classes, cfg.dropout)


class FrameStream(nn.Module):
    """Raw frames ``(B, 3, T, H, W)`` through X3D: stage outputs ``(B, C_l, T, H_l, W_l)``; the head pools
    space and classifies every frame."""

    video = True

    def __init__(self, cfg: CoarseFineConfig) -> None:
        super().__init__()
        from momentkit.models import x3d

        opts = dict(cfg.x3d)
        preset = opts.pop("preset", "tiny")
        weights = opts.pop("weights", None)
        if preset not in ("m", "tiny"):
            raise InputError(f"expected 'm' or 'tiny', got {preset!r}", field="model.x3d.preset")
        try:
            conf = (x3d.x3d_m if preset == "m" else x3d.x3d_tiny)(num_classes=cfg.num_classes, dropout=cfg.dropout,
                                                                  **opts)
        except TypeError as e:
            raise InputError(f"unknown X3D option ({e})", field="model.x3d") from None
        net = x3d.X3D(conf)
        if weights:  # e.g. Kinetics-400 X3D-M (pytorchvideo layout); the classifier stays new
            x3d.load_x3d_weights(net, weights, skip=("head.fc2",))
        self.stem, self.stages, self.head = net.stem, net.stages, net.head
        self.channels = list(conf.stage_out)


def _stream(cfg: CoarseFineConfig) -> nn.Module:
    return FeatureStream(cfg) if cfg.input == "features" else FrameStream(cfg)


# ----------------------------------------------------------------------------- the model
class CoarseFine(nn.Module):
    """See the module docstring. ``forward(batch) -> {"logits" (B, T, K), "locations" (B, N) | None,
    "confidences" (B, N) | None}``."""

    def __init__(self, cfg: CoarseFineConfig) -> None:
        super().__init__()
        from momentkit.ops.fusion import MultiStageFusion
        from momentkit.ops.grid_pool import TemporalPool

        if cfg.input_dim < 1 or cfg.num_classes < 1:
            raise InputError("input_dim and num_classes must be set (they come from the data)", field="model.input_dim")
        self.cfg = cfg
        self.coarse = _stream(cfg) if cfg.coarse else None
        self.fine = _stream(cfg) if cfg.fine else None
        video = cfg.input == "frames"
        self.pool = None
        if self.coarse is not None and cfg.pool != "none":
            self.pool = TemporalPool(cfg.pool, self.coarse.channels[0], cfg.alpha, video=video)
        self.fusion = nn.ModuleDict()
        if cfg.fusion != "none":
            stages = len(cfg.stage_blocks) if not video else len(self.coarse.channels)
            positions = [stages - 1] if cfg.fusion == "late" else list(range(1, stages))
            for pos in positions:
                levels = list(range(stages)) if cfg.fusion == "multi" else [stages - 1 if cfg.fusion == "late" else pos]
                self.fusion[str(pos)] = MultiStageFusion(
                    self.fine.channels, self.coarse.channels[pos], levels=levels, calibration=cfg.calibration,
                    sigma_fraction=cfg.sigma_fraction, mask=cfg.fusion_mask, video=video)

    def _input(self, batch: dict) -> torch.Tensor:
        key = "feats" if self.cfg.input == "features" else "frames"
        if key not in batch:
            raise InputError(f"the model reads {self.cfg.input} (batch key '{key}'); the data gives "
                             f"{', '.join(k for k in ('feats', 'frames') if k in batch) or 'neither'}",
                             field="model.input")
        return batch[key]

    def _manifold(self, batch: dict) -> tuple[int | None, torch.Generator | None]:
        """The stage after which this training batch is mixed (None: not mixed)."""
        if not (self.training and self.cfg.manifold_mixup > 0 and "labels" in batch):
            return None, None
        g = torch.Generator().manual_seed(int(torch.randint(2**62, ())))  # from the runner's per-step seed
        if float(torch.rand((), generator=g)) >= self.cfg.manifold_mixup:
            return None, None
        if self.fine is None:  # Coarse-only: before the pool, where features and targets share the time axis
            return 0, g
        return int(torch.randint(len(self.fine.stages), (), generator=g)), g

    @staticmethod
    def _mix(h: torch.Tensor, labels: torch.Tensor, g: torch.Generator, time_dim: int):
        """Volume MixUp of every sample's hidden features with sample ``(i + k) % B`` of the batch."""
        from momentkit.ops.volume import volume_mixup

        b = len(h)
        k = int(torch.randint(1, b, (), generator=g)) if b > 1 else 0
        out_h, out_l = [], []
        for i in range(b):
            j = (i + k) % b
            hi, li = volume_mixup(h[i], labels[i], h[j], labels[j], generator=g, time_dim=time_dim)
            out_h.append(hi.to(h.dtype))
            out_l.append(li.to(labels.dtype))
        return torch.stack(out_h), torch.stack(out_l)

    def forward(self, batch: dict) -> dict:
        from momentkit.ops.grid_pool import grid_unpool

        x = self._input(batch)
        time_dim = 2 if self.cfg.input == "frames" else 1
        length = x.shape[time_dim]
        mix_at, g = self._manifold(batch)
        mixed_labels = None
        fine_levels = []
        if self.fine is not None:
            h = self.fine.stem(x)
            for depth, stage in enumerate(self.fine.stages):
                h = stage(h)
                if depth == mix_at:
                    h, mixed_labels = self._mix(h, batch["labels"], g, time_dim - 1)
                fine_levels.append(h)
        logits, locations, confidences = [], None, None
        if self.coarse is not None:
            h = self.coarse.stages[0](self.coarse.stem(x))
            if self.fine is None and mix_at == 0:
                h, mixed_labels = self._mix(h, batch["labels"], g, time_dim - 1)
            if self.pool is not None:
                pooled = self.pool(h)
                h, locations, confidences = pooled.pooled, pooled.locations, pooled.confidences
            else:
                locations = torch.arange(length, device=x.device, dtype=h.dtype).expand(x.shape[0], length)
            for pos in range(1, len(self.coarse.stages)):
                h = self.coarse.stages[pos](h)
                if str(pos) in self.fusion:
                    h = self.fusion[str(pos)](h, fine_levels, locations)
            coarse_logits = self.coarse.head(h)
            if self.pool is not None:
                coarse_logits = grid_unpool(coarse_logits, locations, length, dim=1)
            logits.append(coarse_logits)
        if self.fine is not None and (self.coarse is None or self.cfg.output == "mean"):
            logits.append(self.fine.head(fine_levels[-1]))
        out = torch.stack(logits).mean(0) if len(logits) > 1 else logits[0]
        result = {"logits": out, "locations": locations, "confidences": confidences}
        if mixed_labels is not None:
            result["labels"] = mixed_labels  # the targets of the mixed batch
        return result

    def loss(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, mask = outputs["logits"], batch["mask"]
        labels = outputs.get("labels", batch["labels"]).to(logits.dtype)
        frame = frame_bce_loss(logits, labels, mask)
        video = video_bce_loss(logits, labels, mask)
        w = self.cfg.video_loss_weight
        total = (1 - w) * frame + w * video
        return total, {"loss_frame": frame.detach(), "loss_video": video.detach()}

    @torch.no_grad()
    def postprocess(self, outputs: dict, batch: dict, **_) -> list[dict]:
        """One row per item: ``{"video", "frame_start", "num_frames", "scores": [[K] per valid frame]}``."""
        probs = outputs["logits"].float().sigmoid().cpu()
        rows = []
        for i, meta in enumerate(batch["meta"]):
            n = int(meta["num_valid"])
            rows.append({"video": meta["video"], "frame_start": int(meta["frame_start"]),
                         "num_frames": int(meta["num_frames"]), "scores": probs[i, :n].numpy()})
        return rows


# ----------------------------------------------------------------------------- registered variants
VARIANTS = {
    "coarse_fine": {},
    "coarse_only": {"fine": False, "fusion": "none", "output": "coarse"},
    "fine_only": {"coarse": False, "fusion": "none", "pool": "none"},
    "fine_fine": {"pool": "none"},
    "slowfast_det": {"pool": "stride", "fusion": "same", "calibration": "direct", "fusion_mask": False},
}


def _factory(name: str):
    def build(**options) -> CoarseFine:
        from momentkit.models.registry import model_config

        return CoarseFine(model_config(name, options))

    build.__name__ = name
    build.__doc__ = f"Coarse-Fine Networks, variant {name!r}: {VARIANTS[name] or 'Grid Pool + multi-stage fusion'}."
    return build


for _name, _preset in VARIANTS.items():
    register_model(_name, config=CoarseFineConfig, task="dense", presets=_preset)(_factory(_name))

