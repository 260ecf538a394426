"""A synthetic action-recognition benchmark where a class is the *order* of two visual concepts.

The world (:class:`RecognitionWorld`) has ``num_actions`` visual concepts (``opening``, ``closing``, ...),
``num_objects`` objects and ``num_places`` places, each a random unit vector of a ``latent_dim``-wide
joint space, as an image-text model's (CLIP's) embeddings are. A class is an ordered pair of distinct
concepts, named ``"<a> then <b>"`` (``"opening then pouring"``): its videos show concept ``a`` first and
``b`` after a random switch point (35-65 % of the video), so mean-pooled frames cannot tell
``a then b`` from ``b then a``: temporal modelling is needed.

Embeddings (one space, like CLIP's; a fixed "modality gap" offset per modality):

- frame ``t``: ``normalise(z_concept(t) + 0.6 z_object + 0.5 z_place + drift_t + noise_t + gap_img)`` with
  a one-frame soft switch between the concepts, the video's object the typical object of ``a`` or of
  ``b`` (equally likely: no order cue), a random place, AR(1) drift (``drift``) and white noise
  (``noise``), both relative to the unit signal;
- text: ``normalise(sum_i w_i z_word_i + text_noise * eps + gap_txt)``, one draw per text; a class name
  weighs its first concept 1.0 and its second 0.8 (a text encoder knows a little about word order,
  not much), an auxiliary text (an object or a place name) is its own concept.

Held-out classes are new compositions of seen concepts: a quarter of the unordered concept pairs
(both orders) never occur in training; every concept still does, in other pairs. Splits of
``annotations/labels.csv`` (the Kinetics-style CSV of ``clips-csv``: ``video,label,duration,split``):
``train`` and ``val`` over the seen classes, ``zeroshot`` over the held-out ones (``num_videos`` gives
the videos per split, spread evenly over the split's classes).

Files::

    annotations/labels.csv               video,label,duration,split
    annotations/classes_seen.txt         the training vocabulary (one class per line)
    annotations/classes_heldout.txt      the zero-shot vocabulary
    annotations/aux_texts.yaml           {object: [...], place: [...]} auxiliary texts
    features/frame_features/<vid>.npz    per-frame embeddings (N, latent_dim), N = duration / clip_len
    features/class_text.npz             text embeddings: names, embeddings (classes, concepts, aux texts)

Training-free oracles (``synth.json``), top-1 / top-5 on ``val`` and ``zeroshot``: ``clip zero-shot``
(cosine of the mean-pooled frames with the class-name embeddings, what CLIP does) and ``temporal oracle``
(knows the generator: the best switch point, the first part's mean frame against the embedding of
concept ``a``'s name plus the second part's against ``b``'s).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from momentkit.synth.config import SynthConfig
from momentkit.synth.world import ACTIONS, OBJECTS, PLACES

SPLITS = ("train", "val", "zeroshot")
HELDOUT_FRACTION = 0.25


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class RecognitionWorld:
    """Concepts, classes, held-out compositions and the two "encoders" (see the module docstring)."""

    def __init__(self, cfg: SynthConfig, seed: int) -> None:
        rng = np.random.default_rng([seed, 23])
        d = cfg.latent_dim
        self.cfg = cfg
        self.concepts = [ing for _, ing in ACTIONS[: cfg.num_actions]]
        self.objects = OBJECTS[: cfg.num_objects]
        self.places = PLACES[: cfg.num_places]
        self.z_concept = _unit(rng, len(self.concepts), d)
        self.z_object = _unit(rng, len(self.objects), d)
        self.z_place = _unit(rng, len(self.places), d)
        self.gap_img = 0.5 * _unit(rng, 1, d)[0]
        self.gap_txt = 0.5 * _unit(rng, 1, d)[0]
        self.typical_object = rng.integers(len(self.objects), size=len(self.concepts))
        c = len(self.concepts)
        pairs = [(a, b) for a in range(c) for b in range(a + 1, c)]
        n_out = max(1, round(HELDOUT_FRACTION * len(pairs)))
        for _ in range(100):  # every concept must stay in some seen class
            held = {pairs[i] for i in rng.choice(len(pairs), n_out, replace=False)}
            seen_concepts = {x for p in pairs if p not in held for x in p}
            if len(seen_concepts) == c:
                break
        self.seen = [(a, b) for a in range(c) for b in range(c) if a != b and (min(a, b), max(a, b)) not in held]
        self.heldout = [(a, b) for a in range(c) for b in range(c) if a != b and (min(a, b), max(a, b)) in held]
        self._text_rng = np.random.default_rng([seed, 29])
        self.text: dict[str, np.ndarray] = {}
        for i, name in enumerate(self.concepts):
            self._embed(name, [(1.0, self.z_concept[i])])
        for pair in self.seen + self.heldout:
            a, b = pair
            self._embed(self.name(pair), [(1.0, self.z_concept[a]), (0.8, self.z_concept[b])])
        for i, name in enumerate(self.objects):
            self._embed(name, [(1.0, self.z_object[i])])
        for i, name in enumerate(self.places):
            self._embed(name, [(1.0, self.z_place[i])])

    def name(self, pair: tuple[int, int]) -> str:
        return f"{self.concepts[pair[0]]} then {self.concepts[pair[1]]}"

    def _embed(self, text: str, words) -> None:
        d = self.cfg.latent_dim
        x = sum(w * z for w, z in words) + self.cfg.text_noise * self._text_rng.standard_normal(d) / math.sqrt(d)
        self.text[text] = _normalise(x + self.gap_txt).astype(np.float32)

    def render(self, pair: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """Per-frame embeddings ``(N, D)`` of one video of class ``pair``."""
        cfg = self.cfg
        d = cfg.latent_dim
        n = max(2, round(cfg.duration[0] / cfg.clip_len))
        switch = rng.uniform(0.35, 0.65) * n
        t = np.arange(n) + 0.5
        second = 1.0 / (1.0 + np.exp(-(t - switch) * 2.0))  # a one-frame soft switch
        a, b = pair
        concept = (1 - second)[:, None] * self.z_concept[a] + second[:, None] * self.z_concept[b]
        obj = self.typical_object[a] if rng.random() < 0.5 else self.typical_object[b]
        place = rng.integers(len(self.places))
        drift = np.zeros((n, d))
        state = rng.standard_normal(d)
        for i in range(n):
            state = 0.9 * state + math.sqrt(1 - 0.81) * rng.standard_normal(d)
            drift[i] = state
        x = (concept + 0.6 * self.z_object[obj] + 0.5 * self.z_place[place]
             + cfg.drift * drift / math.sqrt(d) + cfg.noise * rng.standard_normal((n, d)) / math.sqrt(d))
        return _normalise(x + self.gap_img).astype(np.float32)


def _split_pairs(world: RecognitionWorld, split: str):
    return world.heldout if split == "zeroshot" else world.seen


def oracle_scores(world: RecognitionWorld, feats: np.ndarray, pairs) -> dict[str, np.ndarray]:
    """Training-free scores ``(K,)`` of one video for the classes ``pairs`` (see the module docstring)."""
    names = np.stack([world.text[world.name(p)] for p in pairs])
    clip = _normalise(feats.mean(0)) @ names.T
    concept = np.stack([world.text[c] for c in world.concepts])
    n = len(feats)
    best = np.full(len(pairs), -np.inf)
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    for s in range(1, n):
        first = _normalise(feats[:s].mean(0)) @ concept.T
        second = _normalise(feats[s:].mean(0)) @ concept.T
        best = np.maximum(best, (s * first[a] + (n - s) * second[b]) / n)
    return {"clip zero-shot": clip, "temporal oracle": best}


def generate_classification(cfg: SynthConfig, out: str | Path, seed: int = 0) -> dict:
    """Write the benchmark (see the module docstring); returns the summary parts ``splits``, ``oracle`` and
    the paths a config names."""
    import csv

    import yaml

    from momentkit.data.class_text import save_text_file
    from momentkit.io import atomic_write, save_npz
    from momentkit.metrics.classification import classification_metrics

    out = Path(out)
    world = RecognitionWorld(cfg, seed)
    counts = cfg.splits()
    rows, splits, oracle = [], {}, {}
    duration = float(round(max(2, round(cfg.duration[0] / cfg.clip_len)) * cfg.clip_len, 6))
    for si, split in enumerate(SPLITS):
        n_videos = int(counts.get(split, 0))
        if n_videos <= 0:
            continue
        rng = np.random.default_rng([seed, 31, si])
        pairs = _split_pairs(world, split)
        scores: dict[str, list] = {}
        labels = []
        for v in range(n_videos):
            k = v % len(pairs)
            vid = f"{split}_{v:05d}"
            feats = world.render(pairs[k], rng)
            save_npz(out / "features" / "frame_features" / f"{vid}.npz", features=feats)
            rows.append((vid, world.name(pairs[k]), duration, split))
            if split != "train":
                for key, s in oracle_scores(world, feats, pairs).items():
                    scores.setdefault(key, []).append(s)
                labels.append(k)
        splits[split] = {"videos": n_videos, "classes": len(pairs),
                         "videos_per_class": round(n_videos / len(pairs), 2), "frames": round(duration / cfg.clip_len)}
        if split != "train":
            onehot = np.eye(len(pairs))[labels]
            for key, s in scores.items():
                m = classification_metrics(np.stack(s), onehot)
                oracle[f"{split} ({key})"] = {"top1": m["top1"], "top5": m["top5"]}
    path = out / "annotations" / "labels.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["video", "label", "duration", "split"])
        w.writerows(rows)
    for name, pairs in (("classes_seen.txt", world.seen), ("classes_heldout.txt", world.heldout)):
        with atomic_write(out / "annotations" / name) as fh:
            fh.write("".join(world.name(p) + "\n" for p in pairs))
    with atomic_write(out / "annotations" / "aux_texts.yaml") as fh:
        yaml.safe_dump({"object": list(world.objects), "place": list(world.places)}, fh, sort_keys=False)
    names = list(world.text)
    save_text_file(out / "features" / "class_text.npz", names, np.stack([world.text[n] for n in names]))
    return {"splits": splits, "oracle": oracle, "video_features": ["features/frame_features"],
            "class_text": "features/class_text.npz"}
