"""The latent world behind the synthetic benchmarks: concepts, their embeddings and the grammar.

Concepts of four kinds (actions, objects, attributes, places) get random unit embeddings in a
latent space. Video features and query token features are two unrelated random projections of that
space (plus noise), so a model has to learn to match text to clips; it cannot compare ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from momentkit.synth.config import SynthConfig

# (third person, -ing form)
ACTIONS = [
    ("opens", "opening"), ("closes", "closing"), ("washes", "washing"), ("cuts", "cutting"),
    ("picks up", "picking up"), ("puts down", "putting down"), ("throws", "throwing"),
    ("carries", "carrying"), ("cleans", "cleaning"), ("fills", "filling"), ("paints", "painting"),
    ("repairs", "repairing"), ("drops", "dropping"), ("pushes", "pushing"), ("shakes", "shaking"),
    ("holds", "holding"), ("turns on", "turning on"), ("turns off", "turning off"),
    ("pours", "pouring"), ("folds", "folding"),
]
OBJECTS = [
    "fridge", "door", "laptop", "cup", "bottle", "box", "bag", "book", "chair", "window", "pan",
    "knife", "towel", "phone", "lamp", "bowl", "bicycle", "ball", "jacket", "drawer", "plate",
    "guitar", "camera", "basket",
]
ATTRIBUTES = ["red", "blue", "green", "yellow", "black", "white", "wooden", "small", "large", "old"]
PLACES = [
    "kitchen", "living room", "office", "garage", "bathroom", "bedroom", "classroom", "workshop",
    "street", "garden", "beach", "park", "forest", "market", "parking lot", "stadium",
]
SUBJECTS = ["a person", "someone", "a man", "a woman", "the boy", "the girl"]
FUNCTION_WORDS = ["a", "the", "in", "is", "person", "someone", "man", "woman", "boy", "girl", "up",
                  "down", "on", "off", "something", "while", "an", "of"]


@dataclass(frozen=True)
class Event:
    """An event: action + object + attribute (indices into the vocabulary)."""

    action: int
    obj: int
    attr: int

    def matches(self, other: Event, level: int) -> bool:
        """Does ``other`` satisfy a description of this event at specificity ``level``?"""
        if self.action != other.action:
            return False
        if level >= 2:
            return True
        if self.obj != other.obj:
            return False
        return level >= 1 or self.attr == other.attr


class World:
    """Vocabulary, embeddings and projections; fully determined by the config and a seed."""

    def __init__(self, cfg: SynthConfig, seed: int) -> None:
        rng = np.random.default_rng([seed, 7])
        self.cfg = cfg
        d = cfg.latent_dim
        self.actions = ACTIONS[: cfg.num_actions]
        self.objects = OBJECTS[: cfg.num_objects]
        self.attributes = ATTRIBUTES[: cfg.num_attributes]
        self.places = PLACES[: cfg.num_places * cfg.domains]

        def unit(n: int) -> np.ndarray:
            x = rng.standard_normal((n, d))
            return x / np.linalg.norm(x, axis=1, keepdims=True)

        self.z_action = unit(len(self.actions))
        self.z_object = unit(len(self.objects))
        self.z_attr = unit(len(self.attributes))
        self.z_place = unit(len(self.places))
        self.z_word = unit(len(FUNCTION_WORDS))
        # how strongly each concept kind shows in a clip (actions dominate, attributes are subtle)
        self.weights = np.array([1.0, 0.7, 0.45])
        # video: one projection per feature folder; layered features: per-layer variants of one
        # projection whose layers weigh the concept kinds differently and carry their own noise
        self.video_proj = [rng.standard_normal((d, dim)) / np.sqrt(d) for dim in cfg.video_dims]
        k = max(cfg.layers, 1)
        self.layer_proj = [
            [p + 0.3 * rng.standard_normal(p.shape) / np.sqrt(d) for _ in range(k)] for p in self.video_proj
        ]
        self.layer_kind_weights = _layer_kind_weights(k)
        self.layer_noise = np.linspace(1.3, 0.9, k) if k > 1 else np.ones(1)
        self.text_proj = rng.standard_normal((d, cfg.text_dim)) / np.sqrt(d)
        self.text_layer_proj = [
            self.text_proj + 0.3 * rng.standard_normal(self.text_proj.shape) / np.sqrt(d) for _ in range(k)
        ]
        # target-domain feature transform: a partial random rotation, a rescale and an offset
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        self.shift_rot = (1 - cfg.shift) * np.eye(d) + cfg.shift * q
        self.shift_offset = cfg.shift * 0.5 * unit(1)[0]

    def event_latent(self, ev: Event, kind_weights: np.ndarray | None = None) -> np.ndarray:
        w = self.weights if kind_weights is None else self.weights * kind_weights
        return w[0] * self.z_action[ev.action] + w[1] * self.z_object[ev.obj] + w[2] * self.z_attr[ev.attr]

    def describe(self, ev: Event, level: int, rng: np.random.Generator, place: int | None = None):
        """A sentence for ``ev`` at specificity ``level`` and the latent of each of its words."""
        verb = self.actions[ev.action][0]
        obj = self.objects[ev.obj]
        attr = self.attributes[ev.attr]
        subject = SUBJECTS[rng.integers(len(SUBJECTS))]
        if level == 0:
            words = f"{subject} {verb} the {attr} {obj}"
            if place is not None and rng.random() < 0.5:
                words += f" in the {self.places[place]}"
        elif level == 1:
            words = f"{subject} {verb} a {obj}" if rng.random() < 0.5 else f"{self.actions[ev.action][1]} {obj}"
        else:
            words = f"{subject} {verb} something" if rng.random() < 0.5 else self.actions[ev.action][1]
        return words, self._word_latents(words)

    def _word_latents(self, sentence: str) -> np.ndarray:
        tokens = sentence.split()
        out = []
        i = 0
        verbs = {v.split()[0]: a for a, pair in enumerate(self.actions) for v in pair}
        objects = {o: j for j, o in enumerate(self.objects)}
        attrs = {a: j for j, a in enumerate(self.attributes)}
        places = {p.split()[0]: j for j, p in enumerate(self.places)}
        words = {w: j for j, w in enumerate(FUNCTION_WORDS)}
        while i < len(tokens):
            t = tokens[i]
            if t in verbs:
                out.append(self.z_action[verbs[t]])
            elif t in objects:
                out.append(self.z_object[objects[t]])
            elif t in attrs:
                out.append(self.z_attr[attrs[t]])
            elif t in places:
                out.append(0.5 * self.z_place[places[t]])
            else:
                out.append(0.3 * self.z_word[words.get(t, 0)])
            i += 1
        return np.stack(out)


def _layer_kind_weights(k: int) -> np.ndarray:
    """Per-layer weight of (action, object, attribute): early layers see objects and attributes
    better, late layers actions, so that several layers together carry more than any one."""
    if k == 1:
        return np.ones((1, 3))
    t = np.linspace(0.0, 1.0, k)[:, None]
    early = np.array([0.5, 1.2, 1.4])
    late = np.array([1.3, 0.8, 0.5])
    return (1 - t) * early + t * late
