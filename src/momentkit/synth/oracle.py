"""A training-free baseline that knows the world's projections, to show each preset's headroom.

It maps clip features and the pooled query (or an action class) back into the latent space with the
pseudo-inverse of the generator's projections, scores every clip by cosine similarity, and turns
runs of high-scoring clips into windows (several thresholds, best run first). A trained model
should beat it: the oracle cannot tell a distractor that differs in one concept from the real event,
and it does not smooth noise over time.
"""

from __future__ import annotations

import numpy as np

from momentkit.synth.generate import Generator


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


def clip_latents(gen: Generator, feats: np.ndarray) -> np.ndarray:
    """(T, D) or (K, T, D) features of the first folder -> (T, d) latent estimates (last layer)."""
    world = gen.world
    if feats.ndim == 3:
        proj = world.layer_proj[0][-1]
        feats = feats[-1]
    else:
        proj = world.video_proj[0]
    return _unit(feats.astype(np.float64) @ np.linalg.pinv(proj))


def query_latent(gen: Generator, pooled: np.ndarray) -> np.ndarray:
    world = gen.world
    proj = world.text_layer_proj[-1] if pooled.ndim == 2 else world.text_proj
    vec = pooled[-1] if pooled.ndim == 2 else pooled
    return _unit(vec.astype(np.float64) @ np.linalg.pinv(proj))


def runs_to_windows(score: np.ndarray, clip_len: float, duration: float,
                    fractions=(0.4, 0.55, 0.7, 0.85), min_score: float | None = None) -> list[list[float]]:
    """Runs of clips above several thresholds between the min and max score -> [st, ed, score]."""
    lo, hi = float(score.min()), float(score.max())
    found = {}
    for frac in fractions:
        thr = lo + frac * (hi - lo) if min_score is None else max(min_score, lo + frac * (hi - lo))
        above = np.concatenate([[False], score >= thr, [False]])
        edges = np.flatnonzero(np.diff(above.astype(np.int8)))
        for s, e in zip(edges[::2], edges[1::2]):
            key = (int(s), int(e))
            if key not in found:
                found[key] = float(score[s:e].mean())
    windows = [[round(s * clip_len, 2), round(min(e * clip_len, duration), 2), round(v, 4)]
               for (s, e), v in found.items()]
    windows.sort(key=lambda w: -w[2])
    return windows[:10]


def grounding_predictions(gen: Generator, samples, rendered, texts) -> list[dict]:
    preds = []
    for s in samples:
        z = clip_latents(gen, rendered[s.vid].features[0])
        if gen.cfg.text_encoder is None:
            q = query_latent(gen, texts[s.qid][1])
        else:  # encoder features cannot be mapped back: the oracle reads the words' concepts,
            # with the same noise the pooled query features would carry
            lat = gen.query_latents[s.qid]
            noise = np.random.default_rng([gen.seed, 17, int(s.qid)]).standard_normal(lat.shape)
            q = _unit(lat + noise * gen.cfg.text_noise / np.sqrt(lat.size))
        sim = z @ q
        preds.append({
            "qid": s.qid, "query": s.query, "vid": s.vid,
            "pred_relevant_windows": runs_to_windows(sim, gen.cfg.clip_len, s.duration),
            "pred_saliency_scores": [round(float(v), 4) for v in sim],
        })
    return preds


def detection_predictions(gen: Generator, samples, rendered) -> dict:
    world = gen.world
    classes = _unit(world.z_action)
    results = {}
    for s in samples:
        z = clip_latents(gen, rendered[s.video].features[0])
        sims = z @ classes.T  # (T, C)
        dets = []
        for c in range(sims.shape[1]):
            for st, ed, score in runs_to_windows(sims[:, c], gen.cfg.clip_len, s.duration, min_score=0.3):
                dets.append({"segment": [st, ed], "label": world.actions[c][1], "score": score})
        results[s.video] = dets
    return results


def dense_predictions(gen: Generator, samples, rendered) -> dict:
    """Per-frame class scores: cosine of each step's latent estimate with every action's embedding."""
    classes = _unit(gen.world.z_action)
    return {s.video: (clip_latents(gen, rendered[s.video].features[0]) @ classes.T).round(4).tolist()
            for s in samples}
