"""Generate a synthetic benchmark: timelines of events, clip features, queries and annotations.

A video is a timeline of events over a background (its place). Clip features mix the active events'
embeddings (weighted by how much of the clip they cover and by an intensity profile), the
background, a slowly drifting nuisance and noise, then go through a random projection per feature
folder. Queries describe an event in words; their token features come from the words' concepts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from momentkit.data.records import DetectionSample, GroundingSample, Segment
from momentkit.io import save_npz
from momentkit.synth.config import SynthConfig
from momentkit.synth.world import Event, World


@dataclass
class Placed:
    start: float
    end: float
    event: Event


@dataclass
class RenderedVideo:
    vid: str
    duration: float
    latent: np.ndarray  # (T, d) clean-ish latent actually rendered (first layer view), for the oracle
    features: list[np.ndarray]  # one per video folder: (T, D) or (K, T, D)
    placed: list[Placed]


def _num_clips(duration: float, clip_len: float) -> int:
    return max(1, math.ceil(duration / clip_len - 1e-6))


def _slots(cfg: SynthConfig, rng: np.random.Generator, duration: float) -> list[tuple[float, float]]:
    """Free intervals for events on one track."""
    lo, hi = np.log(cfg.event_len[0]), np.log(cfg.event_len[1])
    out = []
    t = rng.uniform(0, cfg.gap_len[1])
    while True:
        length = float(np.exp(rng.uniform(lo, hi)))
        start = t
        if cfg.align_to_clips:
            start = math.ceil(start / cfg.clip_len - 1e-9) * cfg.clip_len
            length = max(1, round(length / cfg.clip_len)) * cfg.clip_len
        end = start + length
        if end > duration:
            break
        out.append((round(start, 2), round(end, 2)))
        t = end + rng.uniform(*cfg.gap_len)
    return out


def _random_event(world: World, rng: np.random.Generator) -> Event:
    return Event(
        int(rng.integers(len(world.actions))),
        int(rng.integers(len(world.objects))),
        int(rng.integers(len(world.attributes))),
    )


def _distractor(world: World, ev: Event, rng: np.random.Generator) -> Event:
    """The same event with exactly one concept changed."""
    which = rng.integers(3)
    sizes = (len(world.actions), len(world.objects), len(world.attributes))
    vals = [ev.action, ev.obj, ev.attr]
    vals[which] = int((vals[which] + 1 + rng.integers(sizes[which] - 1)) % sizes[which])
    return Event(*vals)


def _render(cfg: SynthConfig, world: World, rng: np.random.Generator, vid: str, duration: float,
            place: int, placed: list[Placed], target_domain: bool) -> RenderedVideo:
    T = _num_clips(duration, cfg.clip_len)
    d = cfg.latent_dim
    cl = cfg.clip_len
    starts = np.arange(T) * cl
    k = max(cfg.layers, 1)
    # coverage (T, E) and intensity profile per event
    if placed:
        s = np.array([p.start for p in placed])
        e = np.array([p.end for p in placed])
        cover = np.clip(np.minimum(starts[:, None] + cl, e) - np.maximum(starts[:, None], s), 0, None) / cl
        mid = (starts[:, None] + 0.5 * cl - s) / (e - s)
        intensity = 0.75 + 0.25 * np.sin(np.pi * np.clip(mid, 0, 1))
        weight = cover * intensity
    else:
        weight = np.zeros((T, 0))
    drift = np.zeros((T, d))
    rho = 0.9
    state = rng.standard_normal(d)
    for t in range(T):
        state = rho * state + math.sqrt(1 - rho**2) * rng.standard_normal(d)
        drift[t] = state
    drift *= cfg.drift / math.sqrt(d)
    shared_noise = rng.standard_normal((T, d)) * cfg.noise / math.sqrt(d)
    background = 0.8 * world.z_place[place]

    latents = []
    for layer in range(k):
        kind_w = world.layer_kind_weights[layer] if cfg.layers else None
        ev_lat = np.stack([world.event_latent(p.event, kind_w) for p in placed]) if placed else np.zeros((0, d))
        own = rng.standard_normal((T, d)) * cfg.noise / math.sqrt(d)
        noise = shared_noise if not cfg.layers else world.layer_noise[layer] * (0.6 * shared_noise + 0.8 * own)
        z = background + weight @ ev_lat + drift + noise
        if target_domain:
            z = z @ world.shift_rot + world.shift_offset
        latents.append(z)

    feats = []
    for f, projs in enumerate(world.layer_proj):
        per_layer = []
        for layer in range(k):
            x = latents[layer] @ projs[layer] if cfg.layers else latents[0] @ world.video_proj[f]
            x = x + 0.05 * rng.standard_normal(x.shape)
            per_layer.append(x.astype(np.float32))
        feats.append(np.stack(per_layer) if cfg.layers else per_layer[0])
    return RenderedVideo(vid, duration, latents[-1], feats, placed)


def _text_features(cfg: SynthConfig, world: World, rng: np.random.Generator, word_latents: np.ndarray):
    d = cfg.latent_dim
    k = max(cfg.layers, 1)
    tokens, pooled = [], []
    content = word_latents.mean(0)
    for layer in range(k):
        proj = world.text_layer_proj[layer] if cfg.layers else world.text_proj
        noisy = word_latents + rng.standard_normal(word_latents.shape) * cfg.text_noise / math.sqrt(d)
        tokens.append((noisy @ proj).astype(np.float32))
        pooled.append(((content + rng.standard_normal(d) * cfg.text_noise / math.sqrt(d)) @ proj).astype(np.float32))
    if cfg.layers:
        return np.stack(tokens), np.stack(pooled)
    return tokens[0], pooled[0]


def _saliency(cfg: SynthConfig, rng: np.random.Generator, windows, duration: float, ann_bias: np.ndarray):
    """QVHighlights-style ratings (0-4) from several annotators on the clips inside the windows."""
    cl = cfg.clip_len
    T = _num_clips(duration, cl)
    starts = np.arange(T) * cl
    rel = np.zeros(T, dtype=bool)
    base = np.zeros(T)
    for s, e in windows:
        cover = np.clip(np.minimum(starts + cl, e) - np.maximum(starts, s), 0, None) / cl
        mid = np.clip((starts + 0.5 * cl - s) / (e - s), 0, 1)
        rel |= cover > 0
        base = np.maximum(base, cover * (0.55 + 0.45 * np.sin(np.pi * mid)))
    ids = np.flatnonzero(rel)
    scores = 4 * base[ids, None] + ann_bias[None, :] + rng.normal(0, 0.7, (len(ids), len(ann_bias)))
    scores = np.clip(np.rint(scores), 0, 4).astype(int)
    return tuple(int(i) for i in ids), tuple(tuple(int(v) for v in row) for row in scores)


class Generator:
    """Writes one synthetic benchmark to a folder (see ``momentkit synth --help`` for the layout)."""

    def __init__(self, cfg: SynthConfig, seed: int = 0) -> None:
        self.cfg = cfg
        self.seed = seed
        self.world = World(cfg, seed)
        self.video_folders = (
            ["slowfast_features", "clip_features"] if len(cfg.video_dims) == 2 else
            [f"video_features_{i}" for i in range(len(cfg.video_dims))] if len(cfg.video_dims) > 2 else
            ["video_features"]
        )
        if cfg.layers:
            self.video_folders = [f"layered_{n}" for n in self.video_folders]
        self.text_folder = "layered_text_features" if cfg.layers else "text_features"
        self.query_latents: dict = {}  # qid -> mean latent of the query's words (for the oracle)
        self._encoder = None

    def _encode_text(self, samples) -> dict:
        """Token embeddings (L, D) and the normalised sentence embedding (D,) of each query text."""
        if self._encoder is None:
            from momentkit.searchq.grouping import load_encoder

            name = self.cfg.text_encoder
            self._encoder = load_encoder(None if name.lower() in ("minilm", "default") else name)
        texts = [s.query for s in samples]
        model = self._encoder.model
        tokens = model.encode(texts, output_value="token_embeddings", convert_to_numpy=False,
                              show_progress_bar=False, batch_size=64)
        pooled = self._encoder.encode(texts)
        return {s.qid: (np.asarray(t.cpu(), dtype=np.float32), pooled[i]) for i, (s, t) in enumerate(zip(samples, tokens))}

    # ------------------------------------------------------------------ grounding
    def grounding_split(self, split: str, n_videos: int, out: Path | None, split_index: int):
        cfg, world = self.cfg, self.world
        rng = np.random.default_rng([self.seed, 11, split_index])
        ann_bias = rng.normal(0, 0.3, cfg.annotators) if cfg.annotators else np.zeros(0)
        samples: list[GroundingSample] = []
        rendered: dict[str, RenderedVideo] = {}
        texts: dict = {}
        qid = split_index * 1_000_000
        for v in range(n_videos):
            vid = f"{split}_{v:05d}"
            duration = float(round(rng.uniform(*cfg.duration) / cfg.clip_len) * cfg.clip_len) \
                if cfg.align_to_clips else float(round(rng.uniform(*cfg.duration), 2))
            place = int(rng.integers(cfg.num_places))
            slots = _slots(cfg, rng, duration)
            if not slots:
                continue
            order = rng.permutation(len(slots))
            n_q = int(rng.integers(cfg.queries_per_video[0], cfg.queries_per_video[1] + 1))
            events: list[Event | None] = [None] * len(slots)
            queries = []
            used = 0
            for _ in range(n_q):
                r = int(rng.integers(cfg.repeats[0], cfg.repeats[1] + 1))
                if used + r > len(slots):
                    break
                ev = _random_event(world, rng)
                level = int(rng.choice(cfg.specificity))
                for j in order[used: used + r]:
                    events[j] = ev
                used += r
                queries.append((ev, level))
            if not queries:
                continue
            for j in order[used:]:
                for _attempt in range(20):
                    if rng.random() < cfg.distractor_prob:
                        cand = _distractor(world, queries[int(rng.integers(len(queries)))][0], rng)
                    else:
                        cand = _random_event(world, rng)
                    if not any(q.matches(cand, lvl) for q, lvl in queries):
                        break
                events[j] = cand
            placed = [Placed(s, e, ev) for (s, e), ev in zip(slots, events)]
            rendered[vid] = _render(cfg, world, rng, vid, duration, place, placed, False)
            for ev, level in queries:
                text, word_lat = world.describe(ev, level, rng, place)
                windows = tuple((p.start, p.end) for p in placed if ev.matches(p.event, level))
                clip_ids, scores = _saliency(cfg, rng, windows, duration, ann_bias) if cfg.annotators else ((), ())
                samples.append(GroundingSample(qid=qid, query=text, vid=vid, duration=duration,
                                               windows=windows, relevant_clip_ids=clip_ids,
                                               saliency_scores=scores))
                texts[qid] = _text_features(cfg, world, rng, word_lat)
                self.query_latents[qid] = word_lat.mean(0)
                qid += 1
        if cfg.text_encoder is not None and samples:
            texts = self._encode_text(samples)
        if out is not None:
            self._write_features(out, rendered, texts)
        return samples, rendered, texts

    # ------------------------------------------------------------------ detection
    def detection_split(self, split: str, n_videos: int, out: Path | None, split_index: int, domain: int = 0):
        cfg, world = self.cfg, self.world
        rng = np.random.default_rng([self.seed, 13, split_index, domain])
        samples: list[DetectionSample] = []
        rendered: dict[str, RenderedVideo] = {}
        prefix = ("src_" if domain == 0 else "tgt_") if cfg.domains == 2 else ""
        for v in range(n_videos):
            vid = f"{prefix}{split}_{v:05d}"
            duration = float(round(rng.uniform(*cfg.duration), 2))
            place = int(rng.integers(cfg.num_places)) + domain * cfg.num_places
            placed = []
            for _track in range(cfg.tracks):
                placed += [Placed(s, e, _random_event(world, rng)) for s, e in _slots(cfg, rng, duration)]
            placed.sort(key=lambda p: (p.start, p.end))
            rendered[vid] = _render(cfg, world, rng, vid, duration, place, placed, domain == 1)
            segs = tuple(Segment(p.start, p.end, world.actions[p.event.action][1], p.event.action) for p in placed)
            samples.append(DetectionSample(video=vid, duration=duration, segments=segs,
                                           fps=1.0 / cfg.clip_len,
                                           extra={"domain": "source" if domain == 0 else "target"}))
        if out is not None:
            self._write_features(out, rendered, {})
        return samples, rendered

    # ------------------------------------------------------------------ trimmed clips (clip labels)
    def clips_split(self, split: str, n_videos: int, out: Path | None, split_index: int):
        """Trimmed clips, each one event over its whole length (labels: the event's action)."""
        cfg, world = self.cfg, self.world
        rng = np.random.default_rng([self.seed, 19, split_index])
        samples: list[DetectionSample] = []
        rendered: dict[str, RenderedVideo] = {}
        for v in range(n_videos):
            vid = f"clip_{split}_{v:05d}"
            duration = float(round(rng.uniform(*cfg.duration), 2))
            place = int(rng.integers(cfg.num_places))
            ev = _random_event(world, rng)
            rendered[vid] = _render(cfg, world, rng, vid, duration, place, [Placed(0.0, duration, ev)], False)
            samples.append(DetectionSample(video=vid, duration=duration, segments=(
                Segment(0.0, duration, world.actions[ev.action][1], ev.action),), fps=1.0 / cfg.clip_len))
        if out is not None:
            self._write_features(out, rendered, {})
        return samples, rendered

    # ------------------------------------------------------------------ files
    def _write_features(self, out: Path, rendered: dict, texts: dict) -> None:
        for vid, r in rendered.items():
            for folder, x in zip(self.video_folders, r.features):
                save_npz(out / "features" / folder / f"{vid}.npz", features=x)
        for qid, (tok, pooled) in texts.items():
            path = out / "features" / self.text_folder / f"qid{qid}.npz"
            if self.cfg.layers:  # layered text: (K, L, D) under the name `features`
                save_npz(path, features=tok)
            else:
                save_npz(path, last_hidden_state=tok, pooler_output=pooled)
