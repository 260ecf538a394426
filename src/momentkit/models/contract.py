"""The model contract: what every registered model does, and the batch each task feeds it.

A model is an ``nn.Module`` with three methods (DETR's split of model, criterion and post-processor):

- ``forward(batch) -> outputs``: tensors only, no targets read;
- ``loss(outputs, batch) -> (total, terms)``: the weighted scalar to minimise and the detached value of
  every term under one name per term (``loss_<term>``; ``loss_<term>_<level>`` for earlier decoder
  layers / levels);
- ``postprocess(outputs, batch, **options) -> rows``: one plain ``dict`` per sample in the task's
  prediction-row format (below); ``options`` come from the task's ``eval`` section.

Optionally ``set_progress(fraction)``: the runner calls it before every training step with the fraction
of training done (``global_step / total steps``), for schedules inside the model (e.g. the gradient
reversal coefficient of domain alignment).

**Masks.** In every batch a mask is ``True`` (or 1) at a *valid* position and ``False`` at padding.
Attention layers take key-*padding* masks (``True`` = padded), so models convert once, at the
attention call, with ``~mask`` (see :mod:`momentkit.models.transformer`).

Batches are built by each task's data module (its collate function); they are documented here as
``TypedDict`` s so that a model author reads one place.
"""

from __future__ import annotations

from typing import Any, Protocol, TypedDict, runtime_checkable

import torch


class GroundingBatch(TypedDict, total=False):
    """Task ``grounding`` (moment retrieval + highlight detection), :func:`momentkit.data.datasets.collate_grounding`.

    ``video_feats (B, T, Dv)`` (or ``(B, K, T, Dv)`` layered; the TEF ``[t/T, (t+1)/T]`` already
    appended when ``data.use_tef``), ``video_mask (B, T)`` bool, ``text_feats (B, L, Dt)`` (or ``(B, K, L,
    Dt)``), ``text_mask (B, L)`` bool; targets: ``spans`` (B tensors ``(n_i, 2)``, normalised centre/width),
    ``saliency (B, T)``, ``saliency_pos_idx`` / ``saliency_neg_idx (B, P)`` long, ``saliency_valid (B,)``;
    ``meta``: B dicts with ``qid``, ``vid``, ``duration``, ``num_clips``, ``clip_len``, ``query``.

    Prediction row (QVHighlights JSON Lines): ``{"qid", "query", "vid", "pred_relevant_windows":
    [[start_s, end_s, score], ...], "pred_saliency_scores": [one per clip]}``.
    """

    video_feats: torch.Tensor
    video_mask: torch.Tensor
    text_feats: torch.Tensor
    text_mask: torch.Tensor
    spans: list[torch.Tensor]
    saliency: torch.Tensor
    saliency_pos_idx: torch.Tensor
    saliency_neg_idx: torch.Tensor
    saliency_valid: torch.Tensor
    meta: list[dict]


class DetectionBatch(TypedDict, total=False):
    """Task ``detection`` (temporal action localisation), :func:`momentkit.tal.data.collate_two_domain`.

    ``feats (B, T, D)``, ``mask (B, T)`` bool; targets: ``segments`` (B tensors ``(n_i, 2)`` in feature
    steps), ``labels`` (B tensors ``(n_i,)`` long class ids); ``domain (B,)`` long (0 source, 1 target;
    target rows carry no segments); ``meta``: B dicts with ``video``, ``duration``, ``stride_seconds``,
    ``offset_seconds``, ``crop_start``, ``num_steps`` (``seconds = (step + crop_start) * stride_seconds +
    offset_seconds``).

    Prediction row: ``{"video": id, "detections": [{"segment": [start_s, end_s], "label": class id,
    "score"}, ...]}``; the task turns class ids into names and writes ActivityNet JSON.
    """

    feats: torch.Tensor
    mask: torch.Tensor
    segments: list[torch.Tensor]
    labels: list[torch.Tensor]
    domain: torch.Tensor
    meta: list[dict]


class DenseBatch(TypedDict, total=False):
    """Task ``dense`` (per-frame multi-label detection), :func:`momentkit.data.dense.collate_dense`.

    ``feats (B, T, D)`` (feature input) or ``frames (B, 3, T, H, W)`` (raw frames, normalised), every item
    ``T`` frames; ``labels (B, T, K)`` float per-frame targets in [0, 1] (soft labels allowed); ``mask (B, T)``
    bool (False on the edge padding of a video's last window); ``meta``: B dicts with ``video``,
    ``duration``, ``frame_start`` (first frame of the item in the video's frame grid), ``num_valid``,
    ``num_frames`` (frames of the whole video on that grid; frame ``i`` at ``i * duration / num_frames``).

    Prediction row: ``{"video", "frame_start", "num_frames", "scores": (num_valid, K) probabilities}``;
    the task stitches a video's rows and writes the per-frame JSON and the Charades localize file.
    """

    feats: torch.Tensor
    frames: torch.Tensor
    labels: torch.Tensor
    mask: torch.Tensor
    meta: list[dict]


class ClassificationBatch(TypedDict, total=False):
    """Task ``classification``, :class:`momentkit.data.classification.Collate`.

    ``feats (B, V, T, D)``: ``T`` per-frame features of each of ``V`` views (one in training);
    ``labels (B, K)`` 0/1 over the batch's vocabulary; ``class_text (K, Dt)`` the L2-normalised class-text
    embeddings of that vocabulary (absent when the data names no text source); optional ``aux_text (M, Dt)``
    auxiliary texts and ``aux_groups (M,)`` long, the semantic group of each; ``multi_label`` bool;
    ``meta``: B dicts with ``video``, ``num_frames``.

    Prediction row: ``{"video", "scores": [K probabilities]}`` (softmax, or sigmoid for multi-label,
    averaged over the views).
    """

    feats: torch.Tensor
    labels: torch.Tensor
    class_text: torch.Tensor
    aux_text: torch.Tensor
    aux_groups: torch.Tensor
    multi_label: bool
    meta: list[dict]


@runtime_checkable
class Model(Protocol):
    """What the runner calls; see the module docstring."""

    def forward(self, batch: Any) -> dict[str, Any]: ...

    def loss(self, outputs: dict[str, Any], batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def postprocess(self, outputs: dict[str, Any], batch: Any, **options: Any) -> list[dict]: ...
