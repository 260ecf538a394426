"""Settings of the synthetic world and the named presets of ``momentkit synth``.

Every field is a documented control; ``--set key=value`` on the command line overrides one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from momentkit.errors import InputError


@dataclass(frozen=True)
class SynthConfig:
    # what is generated
    # "grounding" (text queries), "detection" (action segments), "dense" (per frame) or "clips" (trimmed
    # single-action clips with clip-level labels only, for detection pretraining)
    task: str = "grounding"
    num_videos: dict | None = None  # videos per split, e.g. {"train": 500, "val": 100}
    queries_per_video: tuple[int, int] = (1, 2)  # grounding: inclusive range of queries per video
    # time
    duration: tuple[float, float] = (150.0, 150.0)  # video length range in seconds
    clip_len: float = 2.0  # seconds per feature step
    align_to_clips: bool = True  # event boundaries on the clip grid (QVHighlights windows are)
    event_len: tuple[float, float] = (4.0, 60.0)  # event length range, log-uniform, seconds
    gap_len: tuple[float, float] = (2.0, 20.0)  # background between events, seconds
    tracks: int = 1  # detection: parallel event tracks, so actions overlap when > 1
    # moments per query
    repeats: tuple[int, int] = (1, 1)  # how often the queried event occurs (multi-moment when > 1)
    specificity: tuple[int, ...] = (0,)  # 0 = full description, 1 = action + object, 2 = action only
    # difficulty
    distractor_prob: float = 0.5  # chance that another event differs from a queried one in one concept
    noise: float = 0.5  # per-clip feature noise (relative to the signal)
    drift: float = 0.3  # slowly varying (AR(1)) nuisance added to every clip
    text_noise: float = 0.5  # per-token noise on query features
    # features
    latent_dim: int = 48
    video_dims: tuple[int, ...] = (128, 128)  # one folder per entry, e.g. SlowFast + CLIP layout
    text_dim: int = 128
    layers: int = 0  # > 0: layered (K, T, D) video and (K, L, D) text features for side-tuning
    # None: query token features from the words' concepts; "minilm" (the offline all-MiniLM-L6-v2)
    # or any sentence-transformers name: that encoder's token embeddings of the query text instead
    text_encoder: str | None = None
    # saliency
    annotators: int = 3  # 0: no saliency in the annotation file (Charades-STA, TACoS style)
    # domain adaptation (detection)
    domains: int = 1  # 2: a labelled source and an unlabelled target domain with a controlled shift
    shift: float = 0.5  # strength of the target feature transform, 0 = none
    # vocabulary sizes (taken from the built-in word lists)
    num_actions: int = 16
    num_objects: int = 12
    num_attributes: int = 6
    num_places: int = 8

    def __post_init__(self) -> None:
        if self.task not in ("grounding", "detection", "dense", "clips", "classification"):
            raise InputError("task must be 'grounding', 'detection', 'dense', 'clips' or 'classification', got "
                             f"{self.task!r}", field="task")
        if self.clip_len <= 0:
            raise InputError("must be > 0", field="clip_len")
        if self.noise < 0 or self.text_noise < 0 or self.drift < 0:
            raise InputError("noise levels must be >= 0", field="noise")
        if not 0 <= self.distractor_prob <= 1:
            raise InputError("must be within [0, 1]", field="distractor_prob")
        if self.domains not in (1, 2):
            raise InputError("must be 1 or 2", field="domains")
        if any(s not in (0, 1, 2) for s in self.specificity):
            raise InputError("levels are 0, 1 or 2", field="specificity")
        if self.text_encoder is not None and self.layers:
            raise InputError("a sentence encoder gives single-layer text features; use layers=0",
                             field="text_encoder")

    def splits(self) -> dict:
        return dict(self.num_videos or {"train": 100, "val": 20})

    def to_dict(self) -> dict:
        return asdict(self)

    def override(self, assignments: list[str]) -> SynthConfig:
        """Apply ``key=value`` strings (values parsed as YAML: numbers, lists, dicts, booleans)."""
        import yaml

        known = {f.name: f for f in fields(self)}
        changes = {}
        for item in assignments:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep:
                raise InputError(f"expected key=value, got {item!r}", field="--set")
            if key not in known:
                raise InputError(f"unknown setting; known: {', '.join(sorted(known))}", field=key)
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                raise InputError(f"cannot parse value {raw!r}", field=key) from None
            current = getattr(self, key)
            if isinstance(current, tuple):
                value = tuple(value) if isinstance(value, list) else (value, value)
            elif isinstance(current, float) and isinstance(value, int):
                value = float(value)
            elif current is not None and not isinstance(value, type(current)):
                raise InputError(f"expected {type(current).__name__}, got {raw!r}", field=key)
            if isinstance(current, dict) and current:  # e.g. num_videos={train: 8, val: 4}
                kind = type(next(iter(current.values())))
                for k, v in value.items():
                    if not isinstance(v, kind) or isinstance(v, bool):
                        raise InputError(f"expected {kind.__name__} values, got {k}: {v!r} (YAML needs a space "
                                         "after the colon: {train: 8})", field=f"{key}.{k}")
            changes[key] = value
        return replace(self, **changes)


PRESETS: dict[str, tuple[str, SynthConfig]] = {
    "qvh-small": (
        "QVHighlights-like: 150 s videos, 2 s clips, SlowFast+CLIP-style video folders, "
        "saliency from 3 annotators, mostly single-moment queries",
        SynthConfig(num_videos={"train": 1000, "val": 150}, repeats=(1, 2)),
    ),
    "charades-small": (
        "Charades-STA-like: 20-45 s videos, 1 s clips, continuous windows, one moment per query, "
        "no saliency",
        SynthConfig(
            num_videos={"train": 600, "val": 150}, duration=(20.0, 45.0), clip_len=1.0,
            align_to_clips=False, event_len=(3.0, 15.0), gap_len=(1.0, 6.0), annotators=0,
            video_dims=(128,),
        ),
    ),
    "tacos-small": (
        "TACoS-like: long 240-420 s cooking-style videos, 2 s clips, many queries per video, "
        "no saliency",
        SynthConfig(
            num_videos={"train": 60, "val": 15}, queries_per_video=(8, 14), duration=(240.0, 420.0),
            align_to_clips=False, event_len=(4.0, 40.0), gap_len=(1.0, 8.0), annotators=0,
            video_dims=(128,),
        ),
    ),
    "multimoment-small": (
        "Search-query-like: under-specified queries (specificity levels 0-2) whose every matching "
        "event is a ground-truth moment",
        SynthConfig(
            num_videos={"train": 600, "val": 120}, repeats=(1, 3), specificity=(0, 1, 2),
            distractor_prob=0.3, annotators=0,
        ),
    ),
    "layered-small": (
        "qvh-small with K=4 layered video and text features for side-tuning",
        SynthConfig(num_videos={"train": 600, "val": 120}, repeats=(1, 2), layers=4, video_dims=(128,)),
    ),
    "tal-small": (
        "Temporal action localisation: 60-180 s videos, 1 s steps, 16 action classes, two "
        "overlapping tracks",
        SynthConfig(
            task="detection", num_videos={"train": 300, "val": 60}, duration=(60.0, 180.0),
            clip_len=1.0, align_to_clips=False, event_len=(2.0, 20.0), gap_len=(2.0, 30.0), tracks=2,
            annotators=0, video_dims=(128,), noise=0.9,
        ),
    ),
    "domain-shift-small": (
        "tal-small with a labelled source and an unlabelled target domain (other backgrounds "
        "and a feature transform)",
        SynthConfig(
            task="detection", num_videos={"train": 200, "val": 60}, duration=(60.0, 180.0),
            clip_len=1.0, align_to_clips=False, event_len=(2.0, 20.0), gap_len=(2.0, 30.0), tracks=2,
            annotators=0, video_dims=(128,), noise=0.9, domains=2,
        ),
    ),
    "dense-small": (
        "Dense per-frame detection: 64 s videos, 0.5 s steps, 20 classes, short actions (1-6 s) "
        "among long background on 4 overlapping tracks",
        SynthConfig(
            task="dense", num_videos={"train": 400, "val": 100}, duration=(64.0, 64.0), clip_len=0.5,
            align_to_clips=False, event_len=(1.0, 6.0), gap_len=(4.0, 30.0), tracks=4, annotators=0,
            video_dims=(128,), noise=2.0, num_actions=20,
        ),
    ),
    "dense-few": (
        "dense-small with 40 training videos (the downstream set of detection pretraining; same world, "
        "same validation videos)",
        SynthConfig(
            task="dense", num_videos={"train": 40, "val": 100}, duration=(64.0, 64.0), clip_len=0.5,
            align_to_clips=False, event_len=(1.0, 6.0), gap_len=(4.0, 30.0), tracks=4, annotators=0,
            video_dims=(128,), noise=2.0, num_actions=20,
        ),
    ),
    "pretrain-small": (
        "Detection pretraining: 2000 trimmed 8 s clips of one action each, clip-level labels only "
        "(Kinetics-style CSV), same world as dense-small / dense-few",
        SynthConfig(
            task="clips", num_videos={"train": 2000, "val": 200}, duration=(8.0, 8.0), clip_len=0.5,
            align_to_clips=False, annotators=0, video_dims=(128,), noise=2.0, num_actions=20,
        ),
    ),
    "recognition-small": (
        "Action recognition where a class is the order of two visual concepts ('opening then pouring'): "
        "per-frame embeddings and class / auxiliary texts in one CLIP-like space, 22 seen classes, 8 "
        "held-out compositions for zero-shot (synth/classification.py)",
        SynthConfig(
            task="classification", num_videos={"train": 440, "val": 220, "zeroshot": 160}, duration=(8.0, 8.0),
            clip_len=0.5, latent_dim=32, noise=2.5, drift=0.5, text_noise=0.3, num_actions=6, num_objects=6,
            num_places=4, annotators=0, video_dims=(32,),
        ),
    ),
}


def get_preset(name: str) -> SynthConfig:
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}", field="PRESET")
    return PRESETS[name][1]


def _video_dense(out, *, seed: int = 0, **options):
    from momentkit.synth.video_dense import generate_video_dense

    return generate_video_dense(out, seed=seed, **options)


def _video_clips(out, *, seed: int = 0, **options):
    from momentkit.synth.video_dense import generate_video_clips

    return generate_video_clips(out, seed=seed, **options)


def _video_moments(out, *, seed: int = 0, **options):
    from momentkit.synth.video_moments import generate_video_moments

    return generate_video_moments(out, seed=seed, **options)


# presets made of generated video files: name -> (description, generate(out, seed=, **options))
VIDEO_PRESETS = {
    "moments-video-small": (
        "Moment retrieval on raw frames: 160 + 32 MP4s (16-32 s, 4 fps, 64x64) of moving coloured shapes, "
        "one templated query per shape ('a red circle moves left'); `momentkit demo --video` trains on it",
        _video_moments,
    ),
    "dense-video-tiny": (
        "Raw-frame dense detection: 24 short MP4s (4-8 s, 8 fps, 64x64) of coloured shapes, 6 classes, "
        "overlapping per-frame labels",
        _video_dense,
    ),
    "pretrain-video-tiny": (
        "Raw-frame detection pretraining: 96 + 24 trimmed 2 s MP4 clips (8 fps, 64x64), one shape class "
        "each (the classes of dense-video-tiny), clip labels only",
        _video_clips,
    ),
}
