"""Control signals computed from the source frames for the ControlNet pipeline (ControlVideo style).

- ``edge``: Canny edges in torch (no OpenCV): grey level, 5x5 Gaussian blur (sigma 1.4), Sobel
  gradients, non-maximum suppression along the gradient direction quantised to 0/45/90/135 degrees,
  double threshold (``low`` 100, ``high`` 200 on the 0-255 scale of the L2 gradient magnitude, the
  thresholds ControlNet's Canny annotator uses) and hysteresis (weak pixels connected to strong
  ones, 8-neighbourhood, iterated to convergence). White edges on black, as ControlNet-canny expects.
- ``depth``: a monocular depth model loaded by name through transformers
  (``AutoModelForDepthEstimation``, default ``Intel/dpt-hybrid-midas``, the MiDaS model ControlNet's
  depth annotator uses), its relative depth rescaled to [0, 1] over the whole video (one scale for all
  frames keeps the control consistent in time).

Control images are ``(F, 3, H, W)`` float in [0, 1] at the working resolution.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F

from momentkit.errors import InputError

CONTROLS = ("edge", "depth")
DEFAULT_DEPTH_MODEL = "Intel/dpt-hybrid-midas"


def _gaussian_kernel(size: int = 5, sigma: float = 1.4) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def canny(frames: torch.Tensor, low: float = 100.0, high: float = 200.0) -> torch.Tensor:
    """Canny edges of ``frames`` ``(F, H, W, 3)`` uint8 (or float 0-255) -> ``(F, H, W)`` bool."""
    x = torch.as_tensor(frames).float()
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected (F, H, W, 3) frames, got {tuple(x.shape)}")
    grey = (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[:, None]  # (F, 1, H, W)
    grey = F.conv2d(F.pad(grey, (2, 2, 2, 2), mode="replicate"), _gaussian_kernel())
    sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])[None, None]
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, sobel_x)
    gy = F.conv2d(padded, sobel_x.transpose(-1, -2))
    mag = torch.sqrt(gx**2 + gy**2)[:, 0]
    angle = torch.rad2deg(torch.atan2(gy, gx))[:, 0] % 180.0
    sector = (((angle + 22.5) // 45.0) % 4).long()  # 0: horizontal gradient, 1: 45, 2: vertical, 3: 135
    m = F.pad(mag, (1, 1, 1, 1))
    hgt, wid = mag.shape[-2:]

    def shifted(dy: int, dx: int) -> torch.Tensor:
        return m[:, 1 + dy: 1 + dy + hgt, 1 + dx: 1 + dx + wid]

    # neighbours along the gradient direction (image rows grow downwards: +y is down)
    pairs = {0: ((0, 1), (0, -1)), 1: ((1, 1), (-1, -1)), 2: ((1, 0), (-1, 0)), 3: ((1, -1), (-1, 1))}
    keep = torch.zeros_like(mag, dtype=torch.bool)
    for s, (a, b) in pairs.items():
        local = (mag >= shifted(*a)) & (mag >= shifted(*b))
        keep |= (sector == s) & local
    nms = mag * keep
    strong = nms >= high
    weak = nms >= low
    while True:
        grown = weak & (F.max_pool2d(strong.float()[:, None], 3, stride=1, padding=1)[:, 0] > 0)
        if torch.equal(grown, strong):
            return strong
        strong = grown


def edge_control(frames) -> torch.Tensor:
    """``(F, 3, H, W)`` float control images: Canny edges as white on black."""
    edges = canny(torch.as_tensor(frames)).float()
    return edges[:, None].expand(-1, 3, -1, -1).contiguous()


class DepthEstimator:
    """A transformers depth model (DPT / MiDaS family) loaded from a Hugging Face id or a folder."""

    def __init__(self, model, processor) -> None:
        self.model = model.eval()
        self.processor = processor

    @classmethod
    def from_pretrained(cls, name: str | None = None, device="cpu") -> DepthEstimator:
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        from momentkit.video.backbones.clip import load_hf

        name = name or DEFAULT_DEPTH_MODEL
        model = load_hf(AutoModelForDepthEstimation.from_pretrained, name, "depth model").to(device)
        processor = load_hf(AutoImageProcessor.from_pretrained, name, "depth model's image processor")
        return cls(model, processor)

    @torch.no_grad()
    def __call__(self, frames) -> torch.Tensor:
        """Relative depth ``(F, H, W)`` in [0, 1] (near = 1) for ``(F, H, W, 3)`` uint8 frames."""
        frames = torch.as_tensor(frames)
        h, w = frames.shape[1:3]
        inputs = self.processor(images=list(frames.numpy()), return_tensors="pt")
        device = next(self.model.parameters()).device
        depth = self.model(pixel_values=inputs["pixel_values"].to(device)).predicted_depth
        depth = F.interpolate(depth[:, None].float(), size=(h, w), mode="bicubic", align_corners=False)[:, 0]
        lo, hi = depth.min(), depth.max()
        return ((depth - lo) / (hi - lo).clamp_min(1e-8)).cpu()


def control_images(frames, kind: str = "edge", depth: DepthEstimator | None = None) -> torch.Tensor:
    """Control images of the source frames for ControlNet, ``(F, 3, H, W)`` in [0, 1]."""
    if kind == "edge":
        return edge_control(frames)
    if kind == "depth":
        if depth is None:
            raise InputError("depth control needs a depth model", field="--depth-model")
        d = depth(frames)
        return d[:, None].expand(-1, 3, -1, -1).contiguous()
    raise InputError(f"unknown control {kind!r} (expected one of {', '.join(CONTROLS)})", field="--control")


__all__ = ["CONTROLS", "DEFAULT_DEPTH_MODEL", "DepthEstimator", "canny", "control_images", "edge_control"]
