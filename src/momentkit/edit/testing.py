"""Tiny randomly initialised diffusion models saved like downloaded ones, for tests and examples.

:func:`tiny_sd` builds one in memory; :func:`make_tiny_sd` writes a Stable-Diffusion-layout folder
(``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``) and, with ``controlnet=True``,
a ``controlnet/`` folder inside it; both load with
:meth:`momentkit.edit.models.DiffusionModels.from_pretrained`. The VAE halves the resolution once and
the UNet once, so frame sides must be multiples of 4; the tokenizer is the offline character-level CLIP
tokenizer of :mod:`momentkit.video.testing`.

:func:`sd15_unet_config` is the published Stable Diffusion 1.5 UNet configuration (860M parameters),
for speed measurements on a randomly initialised model (compute does not depend on weight values).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


def tiny_unet_config(**overrides) -> dict:
    cfg = dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
               down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
               up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
               attention_head_dim=2, norm_num_groups=8)
    cfg.update(overrides)
    return cfg


def sd15_unet_config() -> dict:
    """The UNet configuration of Stable Diffusion 1.5 (``unet/config.json`` of the published model)."""
    return dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                block_out_channels=(320, 640, 1280, 1280),
                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                  "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, act_fn="silu",
                center_input_sample=False, downsample_padding=1, flip_sin_to_cos=True, freq_shift=0,
                mid_block_scale_factor=1, norm_eps=1e-5)


def sd15_controlnet_config() -> dict:
    """The configuration of the Stable Diffusion 1.5 ControlNets (canny, depth, ...)."""
    unet = sd15_unet_config()
    return dict(in_channels=4, block_out_channels=unet["block_out_channels"],
                down_block_types=unet["down_block_types"], layers_per_block=2, cross_attention_dim=768,
                attention_head_dim=8, norm_num_groups=32, conditioning_embedding_out_channels=(16, 32, 96, 256))


def sd15_scheduler_config() -> dict:
    return dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                prediction_type="epsilon", clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def tiny_sd(*, seed: int = 0, controlnet: bool = False):
    """A tiny random :class:`~momentkit.edit.models.DiffusionModels` built in memory (float32, CPU)."""
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from momentkit.edit.models import DiffusionModels
    from momentkit.edit.schedule import NoiseSchedule
    from momentkit.video.testing import tiny_clip_tokenizer

    torch.manual_seed(seed)
    tok = tiny_clip_tokenizer()
    tok.model_max_length = 16
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16,
                                        bos_token_id=0, eos_token_id=1, pad_token_id=1))
    unet = UNet2DConditionModel(**tiny_unet_config())
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        layers_per_block=1, norm_num_groups=8, sample_size=32)
    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16)) if controlnet else None
    for m in (text, unet, vae, cn):
        if m is not None:
            m.eval().requires_grad_(False)
    sched = DDIMScheduler(**sd15_scheduler_config())
    return DiffusionModels(unet, vae, text, tok, NoiseSchedule.from_config(sched.config), cn, "tiny")


def make_tiny_sd(folder: str | os.PathLike, *, seed: int = 0, controlnet: bool = False) -> Path:
    """Save a tiny random Stable-Diffusion-layout model to ``folder`` (and ``folder/controlnet``)."""
    from diffusers import DDIMScheduler

    folder = Path(folder)
    m = tiny_sd(seed=seed, controlnet=controlnet)
    m.unet.save_pretrained(folder / "unet")
    m.vae.save_pretrained(folder / "vae")
    m.text_encoder.save_pretrained(folder / "text_encoder")
    m.tokenizer.save_pretrained(folder / "tokenizer")
    DDIMScheduler(**sd15_scheduler_config()).save_pretrained(folder / "scheduler")
    if controlnet:
        m.controlnet.save_pretrained(folder / "controlnet")
    return folder


__all__ = ["make_tiny_sd", "tiny_sd", "sd15_controlnet_config", "sd15_scheduler_config", "sd15_unet_config",
           "tiny_unet_config"]
