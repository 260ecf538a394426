"""Text-guided video editing: the inversion pipeline (FateZero style) and the ControlNet pipeline
(ControlVideo style), with the optimized baseline and Object-Centric Diffusion as switches.

**FateZero style** (``style="fatezero"``): the source frames are encoded by the VAE, DDIM-inverted with
the source prompt (no guidance) while the attention maps of the conditional branch are stored
(:mod:`momentkit.edit.attention`), then sampled back from the inverted noise with the target prompt
and classifier-free guidance, the stored maps fused into the first ``self_replace`` /
``cross_replace`` fraction of the steps.

**ControlVideo style** (``style="controlvideo"``): no inversion; sampling starts from Gaussian noise
(one draw shared by all frames, ``shared_noise``), every step conditioned by a ControlNet on control
images of the source frames (Canny edges or depth, :mod:`momentkit.edit.control`), with the target
prompt and guidance. The ControlNet's attention is inflated like the UNet's. ControlVideo's
interleaved-frame smoother and hierarchical sampler (long videos) are not implemented.

Both use cross-frame attention of a chosen span. The switches of chapter 6:

- *plain*: DDIM, 50 steps, dense cross-frame attention (:meth:`EditConfig.preset` ``"plain"``);
- *optimized* (Sec. 6.2.1): DPM-Solver++ 20 steps and token merging of keys/values with plans paired
  between inversion and generation and destinations resampled per temporal window (``"optimized"``);
- *Object-Centric Sampling* (``oc_sampling``, Algorithm 1, :mod:`momentkit.edit.oc_sampling`) and
  *Object-Centric ToMe* (``oc_tome``, eta-weighted similarity, :mod:`momentkit.edit.tome`), each on
  its own or both (``"ocd"``); both need a foreground mask.

Latents are sampled in float32 whatever the models' precision (float16 on GPU); each UNet call casts
its input. Frames must have sides that are multiples of :attr:`DiffusionModels.pixel_multiple` (64 for Stable
Diffusion); the command line resizes them. Latency is measured per phase (``mask``, ``control``,
``encode``, ``inversion``, ``generation``, ``decode``; GPU work is synchronised before each reading).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from momentkit.edit.attention import SPANS, AttentionStore, EditState, inflate, resize_mask, token_alignment
from momentkit.edit.masks import DEFAULT_WORD_THRESHOLD, word_mask, word_tokens
from momentkit.edit.models import DiffusionModels
from momentkit.edit.oc_sampling import (
    Box,
    OCSamplingConfig,
    OCTrace,
    evaluations,
    foreground_box,
    gather,
    invert_grid,
    object_centric_invert,
    object_centric_sample,
    oc_grids,
    run_grid,
)
from momentkit.edit.schedule import SAMPLERS, make_sampler, uniform_grid
from momentkit.edit.tome import ToMeConfig
from momentkit.errors import InputError

STYLES = ("fatezero", "controlvideo")
PRESETS = ("plain", "optimized", "ocd")


@dataclass(frozen=True)
class EditConfig:
    """All settings of one edit (see the module docstring and :meth:`preset`).

    ``sampler``/``steps``: generation sampler and number of steps (inversion uses DDIM on the same
    grid). ``attention``: cross-frame span. ``tome``: token merging (``ratio`` 0 = off).
    ``oc_sampling``: Object-Centric Sampling. ``oc_tome``/``eta``: Object-Centric ToMe (needs
    ``tome`` on). ``cross_replace``/``self_replace``: fractions of the diffusion time in which the
    inversion's maps are fused (FateZero style). ``store_max_tokens``: largest per-frame token count
    of a layer whose maps are stored (None: all layers but the full-latent-resolution ones).
    ``control``/``control_scale``: ControlNet conditioning (ControlVideo style). ``shared_noise``: one
    initial noise for all frames (ControlVideo style).
    """

    style: str = "fatezero"
    sampler: str = "dpm++"
    steps: int = 20
    attention: str = "dense"
    guidance_scale: float = 7.5
    tome: ToMeConfig = field(default_factory=ToMeConfig)
    oc_sampling: OCSamplingConfig = field(default_factory=OCSamplingConfig)
    oc_tome: bool = False
    eta: float = 0.5
    cross_replace: float = 0.8
    self_replace: float = 0.6
    store_max_tokens: int | None = None
    control: str = "edge"
    control_scale: float = 1.0
    shared_noise: bool = True
    tome_controlnet: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise InputError(f"unknown pipeline style {self.style!r} (expected one of {', '.join(STYLES)})",
                             field="style")
        if self.sampler not in SAMPLERS:
            raise InputError(f"unknown sampler {self.sampler!r} (expected one of {', '.join(SAMPLERS)})",
                             field="sampler")
        if self.attention not in SPANS:
            raise InputError(f"unknown attention span {self.attention!r} (expected one of {', '.join(SPANS)})",
                             field="attention")
        if self.steps < 1:
            raise InputError(f"steps must be at least 1, got {self.steps}", field="steps")
        if not 0.0 <= self.eta <= 1.0:
            raise InputError(f"eta must be in [0, 1], got {self.eta}", field="eta")
        if self.oc_tome and not self.tome.enabled:
            raise InputError("Object-Centric ToMe needs token merging (a ToMe ratio above 0)", field="oc_tome")
        if self.style == "controlvideo" and self.oc_sampling.enabled and self.oc_sampling.skip_background:
            raise InputError("the ControlNet pipeline has no inverted background to keep: phi must be finite",
                             field="phi")

    @property
    def needs_mask(self) -> bool:
        return self.oc_sampling.enabled or self.oc_tome

    @classmethod
    def preset(cls, name: str, style: str = "fatezero", **overrides) -> EditConfig:
        """``plain`` (DDIM 50, dense cross-frame attention), ``optimized`` (DPM-Solver++ 20, ToMe 0.75
        with stride (2, 2, 2), paired, resampled) or ``ocd`` (optimized + Object-Centric Sampling +
        Object-Centric ToMe); ``overrides`` replace fields."""
        if name == "plain":
            base = cls(style=style, sampler="ddim", steps=50)
        elif name in ("optimized", "ocd"):
            base = cls(style=style, sampler="dpm++", steps=20, tome=ToMeConfig(ratio=0.75))
            if name == "ocd":
                base = replace(base, oc_sampling=OCSamplingConfig(enabled=True), oc_tome=True)
        else:
            raise InputError(f"unknown preset {name!r} (expected one of {', '.join(PRESETS)})", field="preset")
        return replace(base, **overrides) if overrides else base

    def describe(self) -> dict:
        d = asdict(self)
        d["oc_sampling"]["phi"] = "inf" if math.isinf(self.oc_sampling.phi) else self.oc_sampling.phi
        return d


@dataclass
class WordMask:
    """Foreground = the cross-attention map of ``word`` (of the source prompt) above ``threshold``."""

    word: str
    threshold: float = DEFAULT_WORD_THRESHOLD
    time: float = 0.5  # fraction of T at which the source latents are noised for the probe pass


@dataclass
class EditResult:
    """Edited frames ``(F, H, W, 3)`` uint8, the inputs they came from, and what it cost (``latency``:
    wall-clock seconds per phase; ``cpu_time``: the process's CPU seconds per phase)."""

    frames: np.ndarray
    source: np.ndarray
    mask: np.ndarray | None
    latency: dict[str, float]
    evaluations: dict[str, int]
    config: EditConfig
    box: Box | None = None
    traces: dict[str, OCTrace] = field(default_factory=dict)
    attention_store_bytes: int = 0
    tokens: dict[str, tuple[int, int]] = field(default_factory=dict)
    control: np.ndarray | None = None
    cpu_time: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        return {"latency_s": {k: round(v, 4) for k, v in self.latency.items()},
                "cpu_time_s": {k: round(v, 4) for k, v in self.cpu_time.items()},
                "unet_evaluations": self.evaluations, "attention_store_bytes": self.attention_store_bytes,
                "foreground_box": None if self.box is None else asdict(self.box),
                "config": self.config.describe()}


class Progress:
    """Progress over UNet evaluations: ``start(phase, total)``, ``tick()``, ``close()``."""

    def start(self, phase: str, total: int) -> None:
        pass

    def tick(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Clock:
    """Wall-clock seconds per phase (what a user waits) and the process's CPU seconds (all threads;
    on a shared CPU the stabler measure of the work done, since waiting for a core is not counted)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times: dict[str, float] = {}
        self.cpu_times: dict[str, float] = {}

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def phase(self, name: str):
        clock = self

        class _Phase:
            def __enter__(self):
                clock._sync()
                self.t0, self.c0 = time.perf_counter(), time.process_time()

            def __exit__(self, *exc):
                clock._sync()
                clock.times[name] = clock.times.get(name, 0.0) + time.perf_counter() - self.t0
                clock.cpu_times[name] = clock.cpu_times.get(name, 0.0) + time.process_time() - self.c0

        return _Phase()


class VideoEditor:
    """Edits a short clip with a Stable Diffusion model inflated to video (see the module docstring).

    >>> editor = VideoEditor(DiffusionModels.from_pretrained("stable-diffusion-v1-5/stable-diffusion-v1-5"))
    >>> result = editor.edit(frames, "a silver jeep", "a Porsche car", EditConfig.preset("ocd"),
    ...                      mask=WordMask("jeep"))
    """

    def __init__(self, models: DiffusionModels) -> None:
        self.models = models
        self.state = EditState()
        inflate(models.unet, self.state)
        if models.controlnet is not None:
            inflate(models.controlnet, self.state, controlnet=True)

    # ------------------------------------------------------------------ pieces
    @torch.no_grad()
    def encode_text(self, prompt: str) -> tuple[torch.Tensor, list[int]]:
        tok = self.models.tokenizer
        limit = int(self.models.text_encoder.config.max_position_embeddings)
        length = min(int(getattr(tok, "model_max_length", limit) or limit), limit)
        ids = tok(prompt, padding="max_length", max_length=length, truncation=True,
                  return_tensors="pt")["input_ids"]
        emb = self.models.text_encoder(ids.to(self.models.device))[0]
        return emb.to(self.models.dtype), ids[0].tolist()

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray, batch: int = 8) -> torch.Tensor:
        vae = self.models.vae
        x = torch.as_tensor(frames).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        out = []
        for i in range(0, x.shape[0], batch):
            chunk = x[i: i + batch].to(self.models.device, self.models.dtype)
            out.append(vae.encode(chunk).latent_dist.mean)
        return torch.cat(out) * vae.config.scaling_factor

    @torch.no_grad()
    def decode_latents(self, z: torch.Tensor, batch: int = 8) -> np.ndarray:
        vae = self.models.vae
        out = []
        for i in range(0, z.shape[0], batch):
            img = vae.decode(z[i: i + batch].to(self.models.dtype) / vae.config.scaling_factor).sample
            out.append(((img.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu())
        return torch.cat(out).numpy()

    def check_frames(self, frames: np.ndarray) -> None:
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise InputError(f"expected frames (F, H, W, 3), got shape {frames.shape}", field="frames")
        m = self.models.pixel_multiple
        h, w = frames.shape[1:3]
        if h % m or w % m:
            raise InputError(f"frame size {w}x{h} is not a multiple of {m} (the model's downsampling)",
                             field="size")

    @torch.no_grad()
    def word_mask(self, z0: torch.Tensor, prompt: str, spec: WordMask) -> torch.Tensor:
        """``(F, h, w)`` bool latent-resolution mask from one UNet pass on the source latents noised to
        ``spec.time * T`` with the source prompt (cross-attention maps of the word's tokens, averaged
        over heads and layers of at most ``store_max_tokens`` tokens per frame)."""
        emb, ids = self.encode_text(prompt)
        tokens = word_tokens(self.models.tokenizer, ids, spec.word)
        sched = self.models.schedule
        t = max(1, min(sched.T, int(round(spec.time * sched.T))))
        a = sched.alpha_bar(t)
        g = torch.Generator().manual_seed(1234)
        noise = torch.randn(z0.shape, generator=g).to(z0)
        zt = math.sqrt(a) * z0 + math.sqrt(1 - a) * noise
        st = self.state
        st.mode, st.region, st.t, st.cfg = "probe", "joint", t, False
        st.latent_hw = tuple(z0.shape[-2:])
        st.probe_tokens, st.probe_sum, st.probe_count = tokens, None, 0
        try:
            self.models.unet(zt.to(self.models.dtype), sched.model_timestep(t),
                             encoder_hidden_states=emb.expand(z0.shape[0], -1, -1))
            if st.probe_sum is None:
                raise InputError("the model has no text cross-attention layer small enough to give a word mask",
                                 field="--mask-word")
            maps = st.probe_sum / st.probe_count
        finally:
            st.mode, st.probe_tokens, st.probe_sum, st.probe_count = "plain", [], None, 0
        return word_mask(maps, spec.threshold)

    # ------------------------------------------------------------------ the edit
    @torch.no_grad()
    def edit(self, frames: np.ndarray, source: str, target: str, config: EditConfig, *,
             mask: np.ndarray | WordMask | None = None, control: torch.Tensor | None = None,
             depth=None, progress: Progress | None = None) -> EditResult:
        """Edit ``frames`` ``(F, H, W, 3)`` uint8 from ``source`` to ``target`` prompt.

        ``mask``: ``(F, H, W)`` bool foreground, or a :class:`WordMask`; required when
        ``config.needs_mask``; also used by FateZero-style attention blending when given.
        ``control``: precomputed ``(F, 3, H, W)`` control images (ControlVideo style; default:
        computed from the frames as ``config.control`` says, ``depth`` the depth estimator).
        """
        frames = np.asarray(frames)
        self.check_frames(frames)
        progress = progress or Progress()
        m = self.models
        if config.style == "controlvideo" and m.controlnet is None:
            raise InputError("the ControlNet pipeline needs a ControlNet", field="controlnet")
        if config.needs_mask and mask is None:
            raise InputError("Object-Centric Sampling and Object-Centric ToMe need a foreground mask "
                             "(a mask file, a box or a word)", field="mask")
        clock = _Clock(m.device)
        F_ = frames.shape[0]
        T, N = m.schedule.T, config.steps
        if N > T:
            raise InputError(f"steps must be at most {T}, got {N}", field="steps")

        fatezero = config.style == "fatezero"
        with clock.phase("encode"):  # the ControlNet pipeline needs the source latents only for a word mask
            z0 = self.encode_frames(frames).float() if (fatezero or isinstance(mask, WordMask)) else None
            src_emb, src_ids = self.encode_text(source)
            tgt_emb, tgt_ids = self.encode_text(target)
            unc_emb, _ = self.encode_text("")
        h, w = frames.shape[1] // m.vae_factor, frames.shape[2] // m.vae_factor
        latent_shape = (F_, int(m.unet.config.in_channels), h, w)
        st = self.state
        store_max = config.store_max_tokens if config.store_max_tokens is not None else max(1, (h * w) // 4)
        st.num_frames, st.span, st.tome, st.plans, st.store = F_, config.attention, ToMeConfig(), {}, None
        st.store_max_tokens, st.T = store_max, T

        # ---- foreground mask at latent resolution
        latent_mask = None
        pixel_mask = None
        if isinstance(mask, WordMask):
            with clock.phase("mask"):
                latent_mask = self.word_mask(z0, source, mask)
            pixel_mask = torch.nn.functional.interpolate(latent_mask.float()[:, None], size=frames.shape[1:3],
                                                         mode="nearest")[:, 0].bool().cpu().numpy()
            if not pixel_mask.any():
                raise InputError(f"the cross-attention map of {mask.word!r} is empty at threshold "
                                 f"{mask.threshold}", field="--mask-threshold")
        elif mask is not None:
            pixel_mask = np.asarray(mask, dtype=bool)
            if pixel_mask.shape != frames.shape[:3]:
                raise InputError(f"mask shape {pixel_mask.shape} does not match the frames {frames.shape[:3]}",
                                 field="mask")
            if not pixel_mask.any():
                raise InputError("the foreground mask is empty", field="mask")
            latent_mask = resize_mask(torch.from_numpy(pixel_mask), (h, w))
        if latent_mask is not None:
            latent_mask = latent_mask.to(m.device)

        # ---- Object-Centric Sampling geometry
        ocs = config.oc_sampling
        box, full = None, True
        if ocs.enabled:
            box = foreground_box(latent_mask.cpu(), m.unet_multiple)
            full = box.covers(h, w)
            grids = oc_grids(T, N, ocs.gamma, ocs.phi)
        grid = uniform_grid(T, N)

        # ---- processors' state
        tome = replace(config.tome, eta=config.eta if config.oc_tome else 1.0, seed=config.seed)
        store = AttentionStore() if fatezero else None
        st.num_frames, st.span, st.tome, st.plans, st.store = F_, config.attention, tome, {}, store
        st.store_max_tokens, st.T = store_max, T
        st.self_replace = config.self_replace if fatezero else 0.0
        st.cross_replace = config.cross_replace if fatezero else 0.0
        st.tome_controlnet = config.tome_controlnet
        st.token_map = token_alignment(src_ids, tgt_ids)
        st.tokens_seen = {}

        def region_mask(region: str) -> torch.Tensor | None:
            if latent_mask is None:
                return None
            return gather(latent_mask, box) if region == "fg" else latent_mask

        control_px = None
        if config.style == "controlvideo":
            with clock.phase("control"):
                if control is None:
                    from momentkit.edit.control import control_images

                    control = control_images(torch.from_numpy(frames), config.control, depth)
            control_px = control.to(m.device, m.dtype)

        def setup(x: torch.Tensor, t: int, region: str, mode: str, cfg: bool) -> None:
            st.mode, st.region, st.t, st.cfg = mode, region, t, cfg
            st.latent_hw = tuple(x.shape[-2:])
            st.fg = region_mask(region)

        def invert_fn(x: torch.Tensor, t: int, region: str) -> torch.Tensor:
            setup(x, t, region, "invert", False)
            return m.unet(x.to(m.dtype), m.schedule.model_timestep(t),
                          encoder_hidden_states=src_emb.expand(F_, -1, -1)).sample.float()

        cfg = config.guidance_scale != 1.0

        def generate_fn(x: torch.Tensor, t: int, region: str) -> torch.Tensor:
            setup(x, t, region, "generate", cfg)
            x = x.to(m.dtype)
            xin = torch.cat([x, x]) if cfg else x
            emb = torch.cat([unc_emb.expand(F_, -1, -1), tgt_emb.expand(F_, -1, -1)]) if cfg \
                else tgt_emb.expand(F_, -1, -1)
            timestep = m.schedule.model_timestep(t)
            extra = {}
            if control_px is not None:
                cond = control_px
                if region == "fg":
                    cond = gather(cond, box.scaled(m.vae_factor))
                cond = torch.cat([cond, cond]) if cfg else cond
                down, mid = m.controlnet(xin, timestep, encoder_hidden_states=emb, controlnet_cond=cond,
                                         conditioning_scale=config.control_scale, return_dict=False)
                extra = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
            out = m.unet(xin, timestep, encoder_hidden_states=emb, **extra).sample.float()
            if not cfg:
                return out
            u, c = out.chunk(2)
            return u + config.guidance_scale * (c - u)

        new_sampler = lambda: make_sampler(config.sampler, m.schedule)  # noqa: E731
        traces: dict[str, OCTrace] = {}
        counts: dict[str, int] = {}
        if ocs.enabled:
            nf, nb, nj = evaluations(grids, full_frame=full)
        try:
            # ---- inversion (FateZero style)
            z_fg = z_bg = zT = None
            if fatezero:
                total = (nf + nb + nj) if ocs.enabled else N
                progress.start("inversion", total)
                with clock.phase("inversion"):
                    if ocs.enabled:
                        z_fg, z_bg, traces["inversion"] = object_centric_invert(
                            z0, box, grids, invert_fn, m.schedule, full_frame=full, tick=progress.tick)
                    else:
                        zT = invert_grid(z0, grid, invert_fn, m.schedule, "joint", tick=progress.tick)
                progress.close()
                counts["inversion"] = total
            else:
                g = torch.Generator().manual_seed(config.seed)
                shape = (1 if config.shared_noise else F_, *latent_shape[1:])
                zT = torch.randn(shape, generator=g).expand(F_, -1, -1, -1).contiguous().to(m.device)
                if ocs.enabled:
                    z_fg, z_bg = (zT if full else gather(zT, box).contiguous()), zT
            # ---- generation
            total = (nf + nb + nj) if ocs.enabled else N
            progress.start("generation", total)
            with clock.phase("generation"):
                if ocs.enabled:
                    z, traces["generation"] = object_centric_sample(
                        z_fg, z_bg, box, grids, generate_fn, new_sampler, full_frame=full,
                        normalize_fg=ocs.normalize, tick=progress.tick)
                else:
                    z = run_grid(zT, grid, generate_fn, new_sampler(), "joint", tick=progress.tick)
            progress.close()
            counts["generation"] = total
        finally:
            st.mode, st.fg = "plain", None
        with clock.phase("decode"):
            out = self.decode_latents(z)
        result = EditResult(out, frames, pixel_mask, clock.times, counts, config, box if ocs.enabled else None,
                            traces, store.nbytes if store is not None else 0, dict(st.tokens_seen),
                            None if control is None else control.float().cpu().numpy(), clock.cpu_times)
        if store is not None:
            store.clear()
        st.plans = {}
        return result


__all__ = ["EditConfig", "EditResult", "PRESETS", "Progress", "STYLES", "VideoEditor", "WordMask"]
