"""The diffusion models of video editing, loaded with diffusers from a Hugging Face id or a folder.

A Stable-Diffusion-layout model (a folder or repository with ``unet/``, ``vae/``, ``text_encoder/``,
``tokenizer/`` and ``scheduler/``, as ``StableDiffusionPipeline.save_pretrained`` writes it; default
``stable-diffusion-v1-5/stable-diffusion-v1-5``) gives the UNet, the VAE, the CLIP text encoder and
its tokenizer, and the noise schedule (from the scheduler config: only its betas and prediction
type are used; the samplers are :mod:`momentkit.edit.schedule`). FateZero's shape edits use
Tune-A-Video checkpoints, which have the same layout. A ControlNet (``ControlNetModel``) is loaded
from its own id or folder (defaults: ``lllyasviel/sd-controlnet-canny`` for edge control,
``lllyasviel/sd-controlnet-depth`` for depth).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from momentkit.edit.schedule import NoiseSchedule

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_CONTROLNETS = {"edge": "lllyasviel/sd-controlnet-canny", "depth": "lllyasviel/sd-controlnet-depth"}


def _load(loader, name: str | os.PathLike, what: str, **kwargs):
    from momentkit.video.backbones.clip import load_hf

    return load_hf(lambda n: loader(n, **kwargs), name, what)


@dataclass
class DiffusionModels:
    """The components one edit runs; ``controlnet`` is None for the inversion pipeline."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    schedule: NoiseSchedule
    controlnet: torch.nn.Module | None = None
    name: str = ""

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def vae_factor(self) -> int:
        """Pixels per latent cell."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def unet_multiple(self) -> int:
        """Latent sides must be multiples of this (the UNet downsamples between its blocks)."""
        return 2 ** (len(self.unet.config.block_out_channels) - 1)

    @property
    def pixel_multiple(self) -> int:
        return self.vae_factor * self.unet_multiple

    def to(self, device=None, dtype=None) -> DiffusionModels:
        for m in (self.unet, self.vae, self.text_encoder, self.controlnet):
            if m is not None:
                m.to(device=device, dtype=dtype)
        return self

    @classmethod
    def from_pretrained(cls, name: str | os.PathLike | None = None, *, controlnet: str | os.PathLike | None = None,
                        device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> DiffusionModels:
        """Load from a Hugging Face id or a local folder (Stable Diffusion layout) and, when given,
        a ControlNet. ``dtype``: float16 on GPU, float32 on CPU by default."""
        from diffusers import AutoencoderKL, ControlNetModel, DDPMScheduler, UNet2DConditionModel
        from transformers import AutoTokenizer, CLIPTextModel

        name = str(name or DEFAULT_MODEL)
        device = torch.device(device)
        if dtype is None:
            dtype = torch.float16 if device.type == "cuda" else torch.float32
        opts = {"torch_dtype": dtype, "low_cpu_mem_usage": False}
        unet = _load(UNet2DConditionModel.from_pretrained, name, "UNet", subfolder="unet", **opts)
        vae = _load(AutoencoderKL.from_pretrained, name, "VAE", subfolder="vae", **opts)
        text = _load(CLIPTextModel.from_pretrained, name, "text encoder", subfolder="text_encoder", dtype=dtype)
        tok = _load(AutoTokenizer.from_pretrained, name, "tokenizer", subfolder="tokenizer")
        sched_config = _load(DDPMScheduler.load_config, name, "scheduler config", subfolder="scheduler")
        cn = _load(ControlNetModel.from_pretrained, controlnet, "ControlNet", **opts) if controlnet else None
        models = cls(unet, vae, text, tok, NoiseSchedule.from_config(sched_config), cn, name)
        for m in (unet, vae, text, cn):
            if m is not None:
                m.eval().requires_grad_(False).to(device)
        return models


__all__ = ["DEFAULT_CONTROLNETS", "DEFAULT_MODEL", "DiffusionModels"]
