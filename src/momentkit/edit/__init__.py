"""Fast text-guided video editing on diffusers: Object-Centric Diffusion (thesis chapter 6).

One concept per module:

- :mod:`~momentkit.edit.models`: the diffusion models (UNet, VAE, CLIP text encoder, ControlNet) from a
  Hugging Face id or a folder;
- :mod:`~momentkit.edit.attention`: the UNet inflated to video through diffusers attention processors
  (cross-frame attention of span self / sparse / dense, FateZero-style attention storing and fusion);
- :mod:`~momentkit.edit.schedule`: noise schedule, DDIM and DPM-Solver++ samplers, DDIM inversion;
- :mod:`~momentkit.edit.tome`: token merging with paired plans, per-window destinations and
  Object-Centric ToMe;
- :mod:`~momentkit.edit.oc_sampling`: Object-Centric Sampling (Algorithm 1) and its inversion mirror;
- :mod:`~momentkit.edit.masks`: foreground masks from files, a box or a word's cross-attention;
- :mod:`~momentkit.edit.control`: edge (Canny, torch) and depth control images;
- :mod:`~momentkit.edit.pipeline`: :class:`VideoEditor`, :class:`EditConfig` and its presets
  (``plain``, ``optimized``, ``ocd``);
- :mod:`~momentkit.edit.metrics`: CLIP-score and temporal consistency;
- :mod:`~momentkit.edit.video_io`: reading the clip, writing the MP4 and the strip PNG;
- :mod:`~momentkit.edit.testing`: tiny random models saved like downloaded ones, SD-1.5 configs.

``momentkit edit`` is the command line; ``docs/editing.md`` the guide.
"""

from momentkit.edit.pipeline import EditConfig, EditResult, VideoEditor, WordMask

__all__ = ["EditConfig", "EditResult", "VideoEditor", "WordMask"]
