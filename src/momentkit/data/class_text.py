"""Text embeddings of class names and auxiliary texts, from a text-embedding file or a CLIP text encoder.

Two sources, the same output (one L2-normalised row per text):

- a **text-embedding file** (``.npz`` with ``names`` (N,) strings and ``embeddings`` (N, D) float32;
  :func:`save_text_file` writes one): rows are looked up by name (the synthetic presets ship one);
- a **CLIP model** (Hugging Face id or local folder, :class:`momentkit.video.backbones.clip.CLIPBackbone`):
  each text is put into every prompt template (``"a photo of {}."`` by default, the thesis's template;
  a template file holds one template per line with ``{}`` for the class, ``#`` comments), every prompt
  embedded in CLIP's joint space (``text_projection`` of the end token), normalised, averaged over the
  templates and normalised again (CLIP's prompt ensembling). With ``readable_names`` class ids become
  words first (``ApplyEyeMakeup`` -> ``apply eye makeup``).

CLIP embeddings are cached per vocabulary: one ``.npz`` per (model, templates, set of texts) in
``cache_dir`` (default ``$XDG_CACHE_HOME/momentkit/class_text``), named by a hash of the three, so a run, its
``momentkit test`` and ``momentkit classify`` embed a vocabulary once.

Auxiliary texts (:func:`read_aux_texts`): a YAML mapping ``group: [text, ...]`` (the thesis's semantic
categories: objects, places, people counts, ...).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from momentkit.errors import InputError

DEFAULT_TEMPLATES = ("a photo of {}.",)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "momentkit" / "class_text"


def read_templates(path: str | os.PathLike | None) -> list[str]:
    """Prompt templates of a file (see the module docstring); the default for None."""
    if path is None:
        return list(DEFAULT_TEMPLATES)
    from momentkit.io import existing_file

    path = existing_file(path)
    out = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.count("{}") != 1:
            raise InputError("a template holds '{}' once (where the class name goes)", path=path, line=line_no)
        out.append(line)
    if not out:
        raise InputError("no template in the file", path=path)
    return out


def read_aux_texts(path: str | os.PathLike) -> dict[str, list[str]]:
    """``{group: [texts]}`` of a YAML file (at least one group, every group at least one text)."""
    from momentkit.config import load_yaml

    data = load_yaml(path)
    if not isinstance(data, dict) or not data:
        raise InputError("expected a mapping of groups to lists of texts", path=path)
    out = {}
    for group, texts in data.items():
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise InputError("expected a non-empty list of texts", path=path, field=str(group))
        out[str(group)] = [t.strip() for t in texts]
    return out


def save_text_file(path: str | os.PathLike, names: Sequence[str], embeddings: np.ndarray) -> Path:
    from momentkit.io import save_npz

    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim != 2 or len(emb) != len(names):
        raise ValueError("one embedding row per name")
    path = Path(path)
    save_npz(path, names=np.asarray(list(names), dtype=str), embeddings=emb)
    return path


def load_text_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{name: embedding}`` of a text-embedding file."""
    from momentkit.io import existing_file

    path = existing_file(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            names, emb = z["names"], z["embeddings"]
    except (KeyError, ValueError, OSError) as e:
        raise InputError(f"not a text-embedding file (npz with 'names' and 'embeddings'): {e}", path=path) from None
    if emb.ndim != 2 or len(names) != len(emb):
        raise InputError(f"expected one (D,) embedding per name, got {emb.shape} for {len(names)} names", path=path)
    if not np.all(np.isfinite(emb)):
        raise InputError("non-finite embedding values", path=path)
    return {str(n): emb[i].astype(np.float32) for i, n in enumerate(names)}


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def embed_texts(texts: Sequence[str], *, text_file: str | os.PathLike | None = None,
                text_model: str | os.PathLike | None = None, templates: Sequence[str] = DEFAULT_TEMPLATES,
                readable_names: bool = False, cache_dir: str | os.PathLike | None = None,
                device: str = "cpu", backbone=None, field: str = "data.class_text") -> np.ndarray:
    """``(len(texts), D)`` float32 L2-normalised embeddings (see the module docstring).

    ``backbone``: an already loaded :class:`CLIPBackbone` (then ``text_model`` only names it in the cache).
    """
    texts = list(texts)
    if text_file is not None:
        table = load_text_file(text_file)
        missing = [t for t in texts if t not in table]
        if missing:
            shown = ", ".join(repr(t) for t in missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise InputError(f"{len(missing)} texts have no embedding ({shown})", path=text_file, field=field)
        return _normalize(np.stack([table[t] for t in texts])).astype(np.float32) if texts else np.zeros((0, 0))
    if text_model is None and backbone is None:
        raise InputError("give a text-embedding file or a CLIP model for the class texts", field=field)
    from momentkit.data.classification import readable

    templates = list(templates)
    words = [readable(t) if readable_names else t for t in texts]
    model_name = str(text_model or getattr(backbone.model.config, "_name_or_path", "clip"))
    key = hashlib.sha1(json.dumps([model_name, templates, sorted(set(words))]).encode()).hexdigest()[:20]
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cached = cache / f"{key}.npz"
    if cached.is_file():
        table = load_text_file(cached)
        if all(w in table for w in words):
            return np.stack([table[w] for w in words]).astype(np.float32)
    if backbone is None:
        from momentkit.video.backbones.clip import CLIPBackbone

        backbone = CLIPBackbone.from_pretrained(text_model, device=device)
    prompts = [t.format(w) for w in words for t in templates]
    rows = []
    for i in range(0, len(prompts), 256):
        rows += [r["pooler_output"] for r in backbone.encode_text(prompts[i: i + 256])]
    emb = _normalize(np.stack(rows).reshape(len(words), len(templates), -1))
    emb = _normalize(emb.mean(1)).astype(np.float32)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        save_text_file(cached, words, emb)
    except OSError:  # a read-only cache only costs the embedding again next time
        pass
    return emb
