"""Pre-extracted feature stores: one interface over npz folders, concatenations and packed files.

Every store maps a string key to one float32 array:

- video stores: key = video id (``vid``), array ``(T, D)`` (one row per clip) or, for layered
  features taken from K intermediate layers of a backbone (side-tuning), ``(K, T, D)``;
- text stores: key = query id (``str(qid)``), array ``(L, D)`` (one row per token), ``(K, L, D)`` for
  layered text, or ``(D,)`` for a pooled sentence vector.

Stores:

- :class:`NpzFolderStore` reads the layout Moment-DETR, QD-DETR, UniVTG and Lighthouse distribute:
  one ``{vid}.npz`` per video with the array ``features`` (e.g. ``slowfast_features/``,
  ``clip_features/``) and one ``qid{qid}.npz`` per query with ``last_hidden_state`` ``(L, D)`` and
  ``pooler_output`` ``(D,)`` (e.g. ``clip_text_features/``). Layered features use the array name
  ``features`` with rank 3, ``(K, T, D)`` for video and ``(K, L, D)`` for text, in the same file names.
- :class:`ConcatStore` combines several video stores per clip exactly as Moment-DETR's
  ``StartEndDataset._get_video_feat_by_vid``: each part is L2-normalised over the feature axis
  (``x / (||x|| + 1e-5)``), all parts are cut to the shortest T, then concatenated on the feature axis.
- :class:`PackedStore` reads one packed file written by :func:`pack_features`, so an epoch reads
  slices of a single memory-mapped file instead of opening thousands of small files.

:func:`open_store` picks the right store for a folder, a packed file, or a list of them (concatenated).

Packed file layout (little-endian; every array starts on a 64-byte boundary)::

    b"MKFEAT01"                       8-byte magic
    array bytes ...                   raw C-order float32 or float16, back to back
    index                             UTF-8 JSON: kind, field, dtype, dim, num_layers, and
                                      entries {key: [byte offset, shape]}
    trailer                           uint64 index offset, uint64 index length, b"MKFEATIX"

The file is written to a temporary sibling and renamed into place, so an interrupted pack leaves
nothing behind. Non-finite values are rejected while packing (also values that overflow float16),
so reading a packed file needs no finiteness check.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pickle
import struct
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from momentkit.errors import InputError
from momentkit.io import atomic_write

KINDS = ("video", "text")
PACK_DTYPES = ("float32", "float16")
L2_EPS = 1e-5  # Moment-DETR's l2_normalize_np_array

# Array names inside npz files and the ranks each may have.
FIELD_RANKS = {"features": (2, 3), "last_hidden_state": (2,), "pooler_output": (1,)}

_MAGIC = b"MKFEAT01"
_END_MAGIC = b"MKFEATIX"
_TRAILER = struct.Struct("<QQ8s")
_ALIGN = 64
_FORMAT = "momentkit.packed-features"
_VERSION = 1


def l2_normalize(x: np.ndarray, eps: float = L2_EPS) -> np.ndarray:
    """Divide by the L2 norm over the last axis plus ``eps`` (Moment-DETR's ``l2_normalize_np_array``)."""
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + eps)


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InputError(f"unknown feature kind {kind!r} (expected one of {', '.join(KINDS)})", field="kind")
    return kind


def _key_word(kind: str) -> str:
    return "video" if kind == "video" else "query"


# ----------------------------------------------------------------------------- interface
class FeatureStore(ABC):
    """Maps string keys (video ids or query ids) to float32 feature arrays.

    Attributes every store sets: ``kind`` (``"video"`` or ``"text"``), ``field`` (the npz array name
    the features come from), ``dim`` (width of the last axis), ``rank`` (2 for ``(T, D)``, 3 for
    layered ``(K, T, D)``, 1 for pooled text) and ``num_layers`` (K for layered features, else None).
    ``source`` names where the features come from, for messages.
    """

    kind: str
    field: str
    dim: int
    rank: int
    num_layers: int | None
    source: str

    _keys: list[str]  # every store lists its keys here, in a fixed order

    def keys(self) -> list[str]:
        """All keys, in a fixed (sorted) order."""
        return list(self._keys)

    @abstractmethod
    def get(self, key: str | int) -> np.ndarray:
        """The float32 array of ``key``; raises :class:`InputError` naming the key and the source."""

    @abstractmethod
    def __contains__(self, key: object) -> bool: ...

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    @property
    def layered(self) -> bool:
        return self.num_layers is not None

    def missing(self, keys: Iterable[str | int]) -> list[str]:
        """The keys of ``keys`` this store does not hold (as strings, in order, without repeats)."""
        out, seen = [], set()
        for k in map(str, keys):
            if k not in seen and k not in self:
                out.append(k)
            seen.add(k)
        return out

    def __repr__(self) -> str:
        shape = ("K=%d, " % self.num_layers if self.num_layers else "") + f"D={self.dim}"
        return f"{type(self).__name__}({self.source!r}, kind={self.kind}, {shape}, n={len(self)})"


# ----------------------------------------------------------------------------- npz folders
class NpzFolderStore(FeatureStore):
    """A folder of ``{vid}.npz`` (kind ``"video"``) or ``qid{qid}.npz`` (kind ``"text"``) files.

    ``field`` is the array read from each file: ``"features"`` for video; for text
    ``"last_hidden_state"`` (default when present), ``"pooler_output"`` or, for layered text,
    ``"features"``. The expected rank, width ``dim`` and ``num_layers`` default to those of the first
    file (sorted by name); every read checks them, and (``check_finite``) rejects NaN or inf.
    Arrays come back as float32, whatever the stored dtype.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        kind: str = "video",
        *,
        field: str | None = None,
        dim: int | None = None,
        num_layers: int | None = None,
        check_finite: bool = True,
    ) -> None:
        self.folder = Path(folder)
        self.kind = _check_kind(kind)
        self.source = str(self.folder)
        self.check_finite = check_finite
        if not self.folder.exists():
            raise InputError("feature folder not found", path=self.folder)
        if not self.folder.is_dir():
            raise InputError("expected a folder of .npz feature files, found a file", path=self.folder)
        self._prefix = "qid" if kind == "text" else ""
        names = sorted(
            e.name
            for e in os.scandir(self.folder)
            if e.name.endswith(".npz") and e.name.startswith(self._prefix) and e.is_file()
        )
        if not names:
            raise InputError(f"no {self._prefix}*.npz feature files in this folder", path=self.folder)
        self._keys = [n[len(self._prefix) : -len(".npz")] for n in names]
        self._keyset = frozenset(self._keys)

        # The first file fixes the field, rank and width unless the caller gave them.
        first = self.path_of(self._keys[0])
        with self._open(first, self._keys[0]) as npz:
            if field is None:
                field = "features"
                if kind == "text" and "last_hidden_state" in npz.files:
                    field = "last_hidden_state"
            arr = self._read(npz, field, first)
        if field not in FIELD_RANKS:
            raise InputError(f"unknown feature array name {field!r} (expected one of {', '.join(FIELD_RANKS)})",
                             field="field")
        self.field = field
        if arr.ndim not in FIELD_RANKS[field]:
            raise InputError(
                f"array '{field}' has shape {arr.shape}; expected rank "
                + " or ".join(map(str, FIELD_RANKS[field])),
                path=first,
            )
        self.rank = arr.ndim
        self.dim = int(dim) if dim is not None else int(arr.shape[-1])
        if num_layers is not None and self.rank != 3:
            raise InputError(f"num_layers={num_layers} given but the features are not layered "
                             f"(shape {arr.shape})", path=first)
        self.num_layers = (int(num_layers) if num_layers is not None else int(arr.shape[0])) if self.rank == 3 else None
        self._validate(arr, first)

    # -- helpers
    def path_of(self, key: str | int) -> Path:
        return self.folder / f"{self._prefix}{key}.npz"

    @contextlib.contextmanager
    def _open(self, path: Path, key: str) -> Iterator[np.lib.npyio.NpzFile]:
        # The file is opened here, not by np.load, which leaks it when the archive is damaged.
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            raise InputError(
                f"no features for {_key_word(self.kind)} '{key}': {path.name} is not in this folder",
                path=self.folder,
            ) from None
        with fh:
            try:
                obj = np.load(fh, allow_pickle=False)
            except (OSError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
                raise InputError(f"corrupt or unreadable .npz file ({type(e).__name__}: {e})", path=path) from None
            if not isinstance(obj, np.lib.npyio.NpzFile):
                raise InputError("not an .npz archive (a bare .npy array?)", path=path)
            with obj:
                yield obj

    @staticmethod
    def _read(npz, field: str, path: Path) -> np.ndarray:
        if field not in npz.files:
            raise InputError(f"no array '{field}' in this file (it has: {', '.join(npz.files) or 'nothing'})",
                             path=path, field=field)
        try:
            return npz[field]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
            raise InputError(f"corrupt .npz member '{field}' ({type(e).__name__}: {e})", path=path) from None

    def _validate(self, arr: np.ndarray, path: Path) -> np.ndarray:
        if arr.ndim != self.rank:
            raise InputError(f"array '{self.field}' has rank {arr.ndim} (shape {arr.shape}); "
                             f"expected rank {self.rank} like the rest of the folder", path=path)
        if arr.shape[-1] != self.dim:
            raise InputError(f"array '{self.field}' has width {arr.shape[-1]} (shape {arr.shape}); "
                             f"expected {self.dim}", path=path)
        if self.num_layers is not None and arr.shape[0] != self.num_layers:
            raise InputError(f"array '{self.field}' has {arr.shape[0]} layers (shape {arr.shape}); "
                             f"expected {self.num_layers}", path=path)
        if arr.size == 0:
            raise InputError(f"array '{self.field}' is empty (shape {arr.shape})", path=path)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise InputError(f"array '{self.field}' has dtype {arr.dtype}; expected floating point", path=path)
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if self.check_finite and not np.isfinite(arr).all():
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            raise InputError(f"array '{self.field}' holds {bad} NaN or infinite value(s)", path=path)
        return arr

    # -- interface
    def __contains__(self, key: object) -> bool:
        return str(key) in self._keyset

    def get(self, key: str | int) -> np.ndarray:
        key = str(key)
        path = self.path_of(key)
        with self._open(path, key) as npz:
            arr = self._read(npz, self.field, path)
        return self._validate(arr, path)


# ----------------------------------------------------------------------------- concatenation
class ConcatStore(FeatureStore):
    """Several stores of the same kind joined on the feature axis, clip by clip.

    As Moment-DETR does for ``v_feat_dirs``: each part is L2-normalised over its feature axis
    (``normalize=True``), every part is cut to the shortest length along the time axis (some
    extractors give one clip more than others), then the parts are concatenated. Layered parts
    ``(K, T, D_i)`` give ``(K, T, sum D_i)``; all parts must then have the same K. Keys are those
    every part holds.
    """

    def __init__(self, stores: Sequence[FeatureStore], *, normalize: bool = True, eps: float = L2_EPS) -> None:
        stores = list(stores)
        if not stores:
            raise InputError("no feature stores to concatenate", field="stores")
        first = stores[0]
        for s in stores[1:]:
            if s.kind != first.kind:
                raise InputError(f"cannot concatenate {first.kind} features ({first.source}) "
                                 f"with {s.kind} features", path=s.source)
            if s.rank != first.rank or s.num_layers != first.num_layers:
                raise InputError(
                    f"cannot concatenate features of rank {s.rank}"
                    + (f" with {s.num_layers} layers" if s.num_layers else "")
                    + f" with those of {first.source} (rank {first.rank}"
                    + (f", {first.num_layers} layers" if first.num_layers else "") + ")",
                    path=s.source,
                )
        self.stores = stores
        self.normalize = normalize
        self.eps = eps
        self.kind = first.kind
        self.field = "+".join(s.field for s in stores)
        self.rank = first.rank
        self.num_layers = first.num_layers
        self.dim = sum(s.dim for s in stores)
        self.source = " + ".join(s.source for s in stores)
        rest = [set(s.keys()) for s in stores[1:]]
        self._keys = [k for k in first.keys() if all(k in r for r in rest)]
        self._keyset = frozenset(self._keys)

    def __contains__(self, key: object) -> bool:
        return str(key) in self._keyset

    def get(self, key: str | int) -> np.ndarray:
        parts = [s.get(key) for s in self.stores]
        if self.normalize:
            parts = [l2_normalize(p, self.eps) for p in parts]
        if self.rank >= 2:
            n = min(p.shape[-2] for p in parts)
            parts = [p[..., :n, :] for p in parts]
        return np.concatenate(parts, axis=-1).astype(np.float32, copy=False)


# ----------------------------------------------------------------------------- packed file
@dataclass(frozen=True)
class PackInfo:
    """What :func:`pack_features` wrote."""

    path: Path
    count: int
    nbytes: int
    dtype: str
    kind: str
    field: str
    dim: int
    num_layers: int | None


class PackedStore(FeatureStore):
    """Reads a file written by :func:`pack_features` through one read-only numpy memmap.

    Arrays come back as fresh float32 copies (float16 packs are widened). The memmap opens on first
    use and is not pickled, so the store can be handed to DataLoader worker processes.
    """

    def __init__(self, path: str | os.PathLike, *, check_finite: bool = False) -> None:
        self.path = Path(path)
        self.source = str(self.path)
        self.check_finite = check_finite
        index = _read_pack_index(self.path)
        self.kind = index["kind"]
        self.field = index["field"]
        self.dtype = np.dtype(index["dtype"])
        self.dim = int(index["dim"])
        self.num_layers = index["num_layers"]
        self.rank = int(index["rank"])
        self._entries = {k: (int(off), tuple(shape)) for k, (off, shape) in index["entries"].items()}
        self._keys = list(self._entries)
        self._mm: np.memmap | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_mm"] = None
        return state

    def __contains__(self, key: object) -> bool:
        return str(key) in self._entries

    @property
    def nbytes(self) -> int:
        return self.path.stat().st_size

    def get(self, key: str | int) -> np.ndarray:
        key = str(key)
        try:
            offset, shape = self._entries[key]
        except KeyError:
            raise InputError(f"no features for {_key_word(self.kind)} '{key}' in this packed file",
                             path=self.path) from None
        if self._mm is None:
            self._mm = np.memmap(self.path, dtype=np.uint8, mode="r")
        count = int(np.prod(shape))
        view = self._mm[offset : offset + count * self.dtype.itemsize].view(self.dtype).reshape(shape)
        if self.dtype == np.float32:
            arr = np.array(view, dtype=np.float32)
        else:  # a table look-up widens float16 about twice as fast as astype
            arr = np.take(_float16_table(), view.view(np.uint16))
        if self.check_finite and not np.isfinite(arr).all():
            raise InputError(f"features of {_key_word(self.kind)} '{key}' hold NaN or infinite values",
                             path=self.path)
        return arr


@functools.cache
def _float16_table() -> np.ndarray:
    """float32 value of every float16 bit pattern (256 KiB)."""
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)


def _read_pack_index(path: Path) -> dict:
    if not path.exists():
        raise InputError("packed feature file not found", path=path)
    if path.is_dir():
        raise InputError("expected a packed feature file, found a folder", path=path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(len(_MAGIC))
        if head != _MAGIC:
            raise InputError("not a momentkit packed feature file (bad magic)", path=path)
        if size < len(_MAGIC) + _TRAILER.size:
            raise InputError("packed feature file is truncated", path=path)
        fh.seek(size - _TRAILER.size)
        index_off, index_len, end = _TRAILER.unpack(fh.read(_TRAILER.size))
        if end != _END_MAGIC or index_off + index_len + _TRAILER.size != size or index_off < len(_MAGIC):
            raise InputError("packed feature file is truncated or damaged (bad trailer)", path=path)
        fh.seek(index_off)
        raw = fh.read(index_len)
    try:
        index = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"packed feature file has a damaged index ({e})", path=path) from None
    if not isinstance(index, dict) or index.get("format") != _FORMAT:
        raise InputError("packed feature file has an unknown index format", path=path)
    if index.get("version") != _VERSION:
        raise InputError(f"packed feature file version {index.get('version')} is not supported "
                         f"(this momentkit reads version {_VERSION})", path=path)
    for name in ("kind", "field", "dtype", "dim", "rank", "num_layers", "entries"):
        if name not in index:
            raise InputError(f"packed feature index lacks '{name}'", path=path, field=name)
    if index["dtype"] not in PACK_DTYPES:
        raise InputError(f"packed dtype {index['dtype']!r} is not supported", path=path, field="dtype")
    itemsize = np.dtype(index["dtype"]).itemsize
    for key, entry in index["entries"].items():
        try:
            off, shape = entry
            end_byte = int(off) + int(np.prod(shape)) * itemsize
        except (TypeError, ValueError):
            raise InputError(f"packed feature index entry of '{key}' is malformed", path=path) from None
        if off < len(_MAGIC) or end_byte > index_off:
            raise InputError(f"packed features of '{key}' lie outside the data region (file damaged)",
                             path=path)
    return index


def pack_features(
    src: str | os.PathLike | FeatureStore,
    dst: str | os.PathLike,
    *,
    dtype: str = "float32",
    kind: str | None = None,
    field: str | None = None,
    progress: bool = False,
) -> PackInfo:
    """Write every array of ``src`` (a store, or a folder/packed file opened with :func:`open_store`)
    into the single packed file ``dst``, atomically. ``dtype="float16"`` halves the size; values that
    do not fit float16 are an :class:`InputError`. Returns what was written."""
    if dtype not in PACK_DTYPES:
        raise InputError(f"unsupported pack dtype {dtype!r} (expected one of {', '.join(PACK_DTYPES)})",
                         field="dtype")
    store = src if isinstance(src, FeatureStore) else open_store(src, kind=kind, field=field)
    dst = Path(dst)
    if dst.is_dir():
        raise InputError("destination is a folder; give a file name for the packed features", path=dst)
    np_dtype = np.dtype(dtype)
    keys = store.keys()
    entries: dict[str, list] = {}
    iterator: Iterable[str] = keys
    if progress:
        from tqdm import tqdm

        iterator = tqdm(keys, desc=f"packing {store.kind} features", unit="file", dynamic_ncols=True)
    with atomic_write(dst, "wb") as fh:
        os.fchmod(fh.fileno(), 0o666 & ~_umask())  # the temporary file is private; the pack is not
        fh.write(_MAGIC)
        pos = len(_MAGIC)
        for key in iterator:
            arr = store.get(key)
            with np.errstate(over="ignore"):
                out = np.ascontiguousarray(arr, dtype=np_dtype)
            if np_dtype != np.float32 and not np.isfinite(out).all():
                raise InputError(f"features of {_key_word(store.kind)} '{key}' exceed the float16 range; "
                                 "pack as float32", path=store.source)
            pad = -pos % _ALIGN
            fh.write(b"\0" * pad)
            pos += pad
            entries[key] = [pos, list(out.shape)]
            fh.write(memoryview(out).cast("B"))
            pos += out.nbytes
        index = {
            "format": _FORMAT,
            "version": _VERSION,
            "kind": store.kind,
            "field": store.field,
            "dtype": dtype,
            "dim": store.dim,
            "rank": store.rank,
            "num_layers": store.num_layers,
            "source": store.source,
            "entries": entries,
        }
        raw = json.dumps(index, separators=(",", ":")).encode("utf-8")
        fh.write(raw)
        fh.write(_TRAILER.pack(pos, len(raw), _END_MAGIC))
    return PackInfo(dst, len(entries), dst.stat().st_size, dtype, store.kind, store.field, store.dim,
                    store.num_layers)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------- opening
def detect_kind(folder: str | os.PathLike) -> str:
    """``"text"`` when every ``.npz`` of ``folder`` is named ``qid*.npz``, else ``"video"``."""
    names = [e.name for e in os.scandir(folder) if e.name.endswith(".npz")]
    return "text" if names and all(n.startswith("qid") for n in names) else "video"


def is_packed_file(path: str | os.PathLike) -> bool:
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        return fh.read(len(_MAGIC)) == _MAGIC


def open_store(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    kind: str | None = None,
    field: str | None = None,
    normalize: bool = True,
    **kwargs,
) -> FeatureStore:
    """Open a feature folder (:class:`NpzFolderStore`), a packed file (:class:`PackedStore`) or,
    given a list of paths, their :class:`ConcatStore` (L2-normalised per part when ``normalize``).

    ``kind`` defaults to what the folder looks like (``qid*.npz`` files: text) or what the packed
    file records; extra keyword arguments go to :class:`NpzFolderStore`.
    """
    if isinstance(path, (list, tuple)):
        return ConcatStore([open_store(p, kind=kind, field=field, **kwargs) for p in path], normalize=normalize)
    path = Path(path)
    if not path.exists():
        raise InputError("feature folder or packed file not found", path=path)
    if path.is_dir():
        return NpzFolderStore(path, kind or detect_kind(path), field=field, **kwargs)
    if is_packed_file(path):
        store = PackedStore(path)
        if kind is not None and store.kind != _check_kind(kind):
            raise InputError(f"packed file holds {store.kind} features, not {kind}", path=path)
        if field is not None and store.field != field:
            raise InputError(f"packed file holds array '{store.field}', not '{field}'", path=path)
        return store
    if path.suffix == ".npz":
        raise InputError("a single .npz file is not a feature store; give the folder that holds it", path=path)
    raise InputError("not a feature folder or a momentkit packed feature file", path=path)
