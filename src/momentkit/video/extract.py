"""The feature extraction job behind ``momentkit extract``: videos (and queries) -> feature stores.

Writes the folders :class:`momentkit.data.features.NpzFolderStore` reads:

- ``OUT/{vid}.npz`` with ``features``: ``(T, D)`` (one row per clip of ``clip_len`` seconds) or,
  with ``layers``, ``(K, T, D)``; ``vid`` is the file name without its extension;
- ``TEXT_OUT/qid{qid}.npz`` with ``last_hidden_state`` ``(L, D)``, ``pooler_output`` ``(D',)`` and,
  with ``layers``, ``features`` ``(K, L, D)`` (TEXT_OUT defaults to ``OUT`` + ``_text``, as
  ``clip_features`` / ``clip_text_features`` are laid out);
- ``OUT/extract_info.json``: the extraction recipe (:func:`recipe_of`; backbone, model id or path,
  layers, pooling, fps, clip length, width, ``normalize: none``), written by rank 0, and the same with
  ``kind: text`` in ``TEXT_OUT``; training records it with the model so that ``momentkit predict``
  makes a video's features the same way (:mod:`momentkit.video.recipe`);
- ``OUT/extract_failed[.rankR].jsonl``: the videos that could not be read, one JSON object per line
  (``vid``, ``path``, ``error``); removed when a later run has no failure.

Clips: frames are sampled at ``fps`` (sample k at ``(k + 0.5) / fps`` s, see
:mod:`momentkit.video.decode`); sample k belongs to clip ``floor((k + 0.5) / (fps * clip_len))``,
so clip t covers ``[t * clip_len, (t + 1) * clip_len)`` seconds and a video of d seconds gives about
``d / clip_len`` rows (the last, partial clip is kept when a sample falls in it). ``fps`` defaults to
one frame per clip for frame-level backbones (CLIP; the frame at each clip's centre) and to
``frames_per_clip / clip_len`` for clip-level ones (InternVideo2). Frames are decoded in chunks and
embedded ``batch_size`` clips at a time, so memory does not grow with the length of the video
(only the output rows do).

Resumable: a video (query) whose ``.npz`` already exists and holds features of the expected shape is
skipped; every file is written under a temporary name (``.{name}.XXXXXXXX.tmp``) and renamed when
complete, so an interrupted run leaves no partial file under a final name; the temporary files of a
killed run are removed when the same rank's share is extracted again. A video that cannot be decoded
(missing, empty, corrupt, truncated) is reported and skipped; the others go on.

Sharding across processes, GPUs and nodes: rank r of a world of size W takes the videos ``i`` with
``i % W == r`` of the sorted list, and the batches of ``text_batch_size`` queries ``j`` with
``j % W == r`` of the sorted queries (so every query is embedded in the batch one process would put it
in, and the files are the same bytes whatever the number of processes); ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` come from the environment that ``torchrun`` sets, and ``--device auto`` picks
``cuda:LOCAL_RANK``. Each output file is written by one rank only, and no process group is needed (the
ranks never communicate)::

    # one machine, 8 GPUs
    torchrun --nproc_per_node 8 -m momentkit.cli.main extract --backbone internvideo2 \\
        --videos videos/ --out features/iv2 --layers 37 38 39 40 --queries train.jsonl
    # two machines (run on each, with --node_rank 0 and 1)
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --master_port 29500 --nproc_per_node 8 \\
        -m momentkit.cli.main extract --backbone clip --videos list.txt --out features/clip
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from momentkit.errors import InputError
from momentkit.io import atomic_write, save_npz, write_json
from momentkit.video.decode import DEFAULT_CHUNK_SIZE, iter_frames

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv",
                    ".3gp", ".ts", ".mts", ".ogv")
INFO_NAME = "extract_info.json"
DEFAULT_CLIP_LEN = 2.0
DEFAULT_BATCH_SIZE = 32


# ----------------------------------------------------------------------------- inputs
def list_videos(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Video files from a folder (its files with a video extension, sorted), a list file (one path
    per line, relative to the list's folder; blank lines and ``#`` comments skipped), a single video
    file, or a sequence of paths."""
    if isinstance(spec, (list, tuple)):
        return [Path(p) for p in spec]
    p = Path(spec)
    if p.is_dir():
        vids = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
        if not vids:
            raise InputError(f"no video files ({', '.join(VIDEO_EXTENSIONS[:5])}, ...) in this folder", path=p)
        return vids
    if not p.exists():
        raise InputError("no such video folder, list or file", path=p)
    if p.suffix.lower() in VIDEO_EXTENSIONS:
        return [p]
    out = []
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError("expected a folder, a video file or a text list of video paths", path=p) from None
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            q = Path(line)
            out.append(q if q.is_absolute() else p.parent / q)
    if not out:
        raise InputError("the video list is empty", path=p)
    return out


def video_id(path: str | os.PathLike) -> str:
    """The id a video's features are stored under: its file name without the extension."""
    return Path(path).stem


def read_queries(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``(qid, query)`` pairs (unique qids, in file order) of any grounding annotation file."""
    from momentkit.data.annotations import read_annotations

    seen: dict[str, str] = {}
    for s in read_annotations(path):
        if not hasattr(s, "query"):
            raise InputError("this annotation file has no queries (a detection format?)", path=path)
        seen.setdefault(str(s.qid), s.query)
    return list(seen.items())


def dist_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (torchrun)."""

    def get(name: str, default: int) -> int:
        value = os.environ.get(name, "")
        if value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise InputError(f"environment variable {name}={value!r} is not an integer", field=name) from None

    rank, world, local = get("RANK", 0), get("WORLD_SIZE", 1), get("LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"RANK={rank} is not within WORLD_SIZE={world}", field="RANK")
    return rank, world, local


def shard(items: Sequence, rank: int, world_size: int) -> list:
    """The items ``i`` with ``i % world_size == rank``."""
    return [x for i, x in enumerate(items) if i % world_size == rank]


def default_fps(backbone, clip_len: float) -> float:
    """One frame per clip for frame-level backbones; ``frames_per_clip`` per clip otherwise."""
    return (backbone.frames_per_clip or 1) / clip_len


# ----------------------------------------------------------------------------- one video
def clip_of(indices: np.ndarray, fps: float, clip_len: float) -> np.ndarray:
    """Clip number of each sample index: ``floor((k + 0.5) / (fps * clip_len))``."""
    return np.floor((np.asarray(indices, np.float64) + 0.5) / (fps * clip_len)).astype(np.int64)


def extract_video(
    backbone,
    path: str | os.PathLike,
    *,
    fps: float | None = None,
    clip_len: float = DEFAULT_CLIP_LEN,
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Per-clip features of one video: ``(T, D)``, or ``(K, T, D)`` for a layered backbone.

    ``on_progress``: called after each decoded chunk with the seconds of video read so far.
    Raises :class:`InputError` for a video that cannot be decoded.
    """
    import torch

    fps = default_fps(backbone, clip_len) if fps is None else float(fps)
    check_rates(fps, clip_len)
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}", field="batch_size")
    frames_buf: list[np.ndarray] = []
    clips_buf: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    first = 0  # first clip not yet embedded

    def embed(upto: int) -> None:
        """Embed the buffered clips ``first .. upto-1`` and drop their frames."""
        nonlocal first
        frames = np.concatenate(frames_buf)
        clips = np.concatenate(clips_buf)
        sel = clips < upto
        local = clips[sel] - first
        n = upto - first
        if local.size == 0 or np.unique(local).size != n:
            raise RuntimeError(f"clips {first}..{upto - 1} of {path} are not all sampled")  # pragma: no cover
        with torch.inference_mode():
            feats = backbone.encode_video(torch.from_numpy(frames[sel]), torch.from_numpy(local), n)
        rows.append(feats.float().cpu().numpy())
        frames_buf[:] = [frames[~sel]] if (~sel).any() else []
        clips_buf[:] = [clips[~sel]] if (~sel).any() else []
        first = upto

    last = -1
    for chunk in iter_frames(path, fps, size=backbone.frame_size, interpolation=backbone.interpolation,
                             chunk_size=chunk_size):
        clips = clip_of(chunk.indices, fps, clip_len)
        frames_buf.append(chunk.frames)
        clips_buf.append(clips)
        last = int(clips[-1])
        while last - first >= batch_size:  # clips before `last` are complete
            embed(first + batch_size)
        if on_progress is not None:
            on_progress(float((chunk.indices[-1] + 1) / fps))
    if last < 0:
        # shorter than one sample period: every decoded frame makes the single clip
        for chunk in iter_frames(path, None, size=backbone.frame_size, interpolation=backbone.interpolation,
                                 chunk_size=chunk_size):
            frames_buf.append(chunk.frames)
            clips_buf.append(np.zeros(len(chunk), np.int64))
        last = 0
    while first <= last:
        embed(min(first + batch_size, last + 1))
    out = np.concatenate(rows).astype(np.float32, copy=False)  # (T, D) or (T, K, D)
    return np.ascontiguousarray(out.transpose(1, 0, 2)) if out.ndim == 3 else out


def check_rates(fps: float, clip_len: float) -> None:
    if not clip_len > 0:
        raise InputError(f"clip length must be positive, got {clip_len}", field="clip_len")
    if not fps > 0:
        raise InputError(f"fps must be positive, got {fps}", field="fps")
    if fps * clip_len < 1 - 1e-9:
        raise InputError(f"fps {fps:g} gives less than one frame per clip of {clip_len:g} s "
                         f"(need fps >= {1 / clip_len:g})", field="fps")


# ----------------------------------------------------------------------------- the job
@dataclass
class ExtractReport:
    """What one rank did."""

    rank: int = 0
    world_size: int = 1
    written: list[str] = field(default_factory=list)  # video ids extracted now
    skipped: list[str] = field(default_factory=list)  # already present
    failed: dict[str, str] = field(default_factory=dict)  # vid -> error message
    texts_written: int = 0
    texts_skipped: int = 0

    def summary(self) -> str:
        where = f"rank {self.rank}/{self.world_size}: " if self.world_size > 1 else ""
        text = f", {self.texts_written} queries ({self.texts_skipped} already done)" \
            if self.texts_written or self.texts_skipped else ""
        return (f"{where}{len(self.written)} videos extracted, {len(self.skipped)} already done, "
                f"{len(self.failed)} failed{text}")


def _valid(path: Path, field_name: str, rank: int | None, dim: int | None, layers: int | None) -> bool:
    """Does ``path`` hold a readable array ``field_name`` of the expected rank/width/layers?"""
    if not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as npz:
            if field_name not in npz.files:
                return False
            arr = npz[field_name]
    except Exception:  # any damage means: extract again
        return False
    if rank is not None and arr.ndim != rank:
        return False
    if dim is not None and arr.shape[-1] != dim:
        return False
    if layers is not None and arr.shape[0] != layers:
        return False
    return arr.size > 0


def run_extraction(
    backbone,
    videos: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    fps: float | None = None,
    clip_len: float = DEFAULT_CLIP_LEN,
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    queries: Iterable[tuple[str | int, str]] | None = None,
    text_out: str | os.PathLike | None = None,
    text_batch_size: int = 64,
    rank: int | None = None,
    world_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    model_name: str | None = None,
) -> ExtractReport:
    """Extract this rank's share of ``videos`` (and ``queries``) into ``out`` (and ``text_out``)."""
    from tqdm import tqdm

    env_rank, env_world, _ = dist_env()
    rank = env_rank if rank is None else int(rank)
    world_size = env_world if world_size is None else int(world_size)
    if not 0 <= rank < world_size:
        raise InputError(f"rank {rank} is not within world size {world_size}", field="rank")
    fps = default_fps(backbone, clip_len) if fps is None else float(fps)
    check_rates(fps, clip_len)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = ExtractReport(rank=rank, world_size=world_size)
    write = log or (lambda msg: tqdm.write(msg, file=sys.stderr))

    paths = [Path(v) for v in videos]
    ids: dict[str, Path] = {}
    for p in paths:
        vid = video_id(p)
        if vid in ids and ids[vid] != p:
            raise InputError(f"two videos would be stored as '{vid}.npz': {ids[vid]} and {p}", path=p)
        ids[vid] = p
    info = recipe_of(backbone, fps=fps, clip_len=clip_len, model_name=model_name)
    _check_same_setup(out / INFO_NAME, info, overwrite)
    if rank == 0:
        _write_unless_same(out / INFO_NAME, info)

    expect_rank = 3 if backbone.layered else 2
    expect_layers = len(backbone.layers) if backbone.layered else None
    mine = shard(sorted(ids.items()), rank, world_size)
    remove_partial(out, {f"{vid}.npz" for vid, _ in mine} | {_failures_name(report)}
                   | ({INFO_NAME} if rank == 0 else set()))
    bar = tqdm(mine, desc=f"extract{f' [{rank}/{world_size}]' if world_size > 1 else ''}", unit="video",
               disable=not progress, position=rank if world_size > 1 else None, dynamic_ncols=True)
    for vid, path in bar:
        target = out / f"{vid}.npz"
        if not overwrite and _valid(target, "features", expect_rank, backbone.video_dim, expect_layers):
            report.skipped.append(vid)
            continue
        try:
            feats = extract_video(backbone, path, fps=fps, clip_len=clip_len, batch_size=batch_size,
                                  chunk_size=chunk_size)
        except InputError as e:
            report.failed[vid] = str(e)
            write(f"skipped {vid}: {e}")
            continue
        save_npz(target, features=feats)
        report.written.append(vid)
    bar.close()
    _write_failures(out, report, paths={v: str(p) for v, p in ids.items()})

    if queries is not None:
        text_out = Path(text_out) if text_out is not None else out.parent / f"{out.name}_text"
        _extract_texts(backbone, queries, text_out, report, text_batch_size, overwrite, progress, info=info)
    return report


def recipe_of(backbone, *, fps: float, clip_len: float, model_name: str | None = None) -> dict:
    """The extraction recipe written as ``extract_info.json`` into the video feature folder (and, with
    ``kind: text``, into the query folder; see :mod:`momentkit.video.recipe`): what made the features,
    so that a model trained on them can make them again from a video. ``model_path``: the absolute
    path of ``model`` when it is a local path; ``normalize: none``: rows are stored as the backbone
    gives them."""
    described = backbone.describe()
    model = model_name or described.get("model")
    local = model is not None and Path(str(model)).exists()
    try:
        dtype = str(backbone.dtype).replace("torch.", "")
    except (AttributeError, StopIteration):
        dtype = None
    info = {**described, "model": model, "fps": fps, "clip_len": clip_len,
            "features": "(K, T, D)" if backbone.layered else "(T, D)", "kind": "video", "normalize": "none",
            "model_path": str(Path(str(model)).resolve()) if local else None, "dtype": dtype,
            "recipe_version": 1}
    return json.loads(json.dumps(info))  # tuples -> lists, as they read back


# what must agree for features in one folder to belong together
SETUP_KEYS = ("backbone", "model", "layers", "pool", "frames_per_clip", "fps", "clip_len", "video_dim")
TEXT_SETUP_KEYS = ("backbone", "model", "text_layers")


def _check_same_setup(path: Path, info: dict, overwrite: bool, keys: Sequence[str] = SETUP_KEYS) -> None:
    """Refuse to mix features of another backbone/model/layers/rate into an existing folder."""
    if overwrite or not path.is_file():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    diff = [f"{k}: {old.get(k)!r} -> {info.get(k)!r}" for k in keys if old.get(k) != info.get(k)]
    if diff:
        raise InputError("this folder holds features extracted differently (" + "; ".join(diff)
                         + "); use another output folder or --overwrite", path=path.parent)


def _write_unless_same(path: Path, obj: dict) -> None:
    """``write_json`` unless ``path`` already holds ``obj`` (a resumed run leaves the recipe as it was)."""
    try:
        if json.loads(path.read_text(encoding="utf-8")) == obj:
            return
    except (OSError, ValueError):
        pass
    write_json(path, obj)


def remove_partial(folder: Path, names: set[str]) -> list[str]:
    """Delete the temporary files (``.{name}.XXXXXXXX.tmp``, see :func:`momentkit.io.atomic_write`) that a
    killed run left for the outputs ``names`` of ``folder``; return the names deleted. Only a rank's own
    outputs are given, so ranks at work beside it are not disturbed."""
    removed = []
    if not folder.is_dir():
        return removed
    for entry in os.scandir(folder):
        name = entry.name
        if name.startswith(".") and name.endswith(".tmp") and name[1:].rsplit(".", 2)[0] in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(name)
    return removed


def _failures_name(report: ExtractReport) -> str:
    return "extract_failed.jsonl" if report.world_size == 1 else f"extract_failed.rank{report.rank}.jsonl"


def _write_failures(out: Path, report: ExtractReport, paths: dict[str, str]) -> None:
    target = out / _failures_name(report)
    if not report.failed:
        if target.exists():
            target.unlink()
        return
    with atomic_write(target, "w", encoding="utf-8") as fh:
        for vid, msg in report.failed.items():
            fh.write(json.dumps({"vid": vid, "path": paths.get(vid), "error": msg}) + "\n")


def _extract_texts(backbone, queries, text_out: Path, report: ExtractReport, batch_size: int,
                   overwrite: bool, progress: bool, info: dict | None = None) -> None:
    """Embed this rank's batches of the sorted unique queries. The batches are those of one process
    (padding a query with others of another batch could change its last bits), and a batch with
    some queries already done is embedded whole, its missing queries written."""
    from tqdm import tqdm

    unique: dict[str, str] = {}
    for qid, text in queries:
        unique.setdefault(str(qid), str(text))
    items = sorted(unique.items())
    size = max(1, batch_size)
    mine = shard([items[i: i + size] for i in range(0, len(items), size)], report.rank, report.world_size)
    text_out.mkdir(parents=True, exist_ok=True)
    remove_partial(text_out, {f"qid{qid}.npz" for batch in mine for qid, _ in batch}
                   | ({INFO_NAME} if report.rank == 0 else set()))
    if info is not None:
        _check_same_setup(text_out / INFO_NAME, info, overwrite, keys=TEXT_SETUP_KEYS)
    if report.rank == 0 and info is not None:  # the recipe of the query features
        arrays = ["last_hidden_state", "pooler_output"] + (["features"] if backbone.layered else [])
        _write_unless_same(text_out / INFO_NAME, {**info, "kind": "text", "text_arrays": arrays})
    todo = []  # (batch, the qids of it to write)
    for batch in mine:
        missing = set()
        for qid, _ in batch:
            target = text_out / f"qid{qid}.npz"
            done = _valid(target, "pooler_output", 1, None, None) and (
                not backbone.layered or _valid(target, "features", 3, None, len(backbone.text_layers)))
            if overwrite or not done:
                missing.add(qid)
        report.texts_skipped += len(batch) - len(missing)
        if missing:
            todo.append((batch, missing))
    bar = tqdm(total=sum(len(m) for _, m in todo), desc="queries", unit="query", disable=not progress or not todo,
               dynamic_ncols=True)
    for batch, missing in todo:
        for (qid, _), row in zip(batch, backbone.encode_text([t for _, t in batch])):
            if qid in missing:
                save_npz(text_out / f"qid{qid}.npz", **{k: np.asarray(v, np.float32) for k, v in row.items()})
                report.texts_written += 1
        bar.update(len(missing))
    bar.close()


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CLIP_LEN",
    "ExtractReport",
    "INFO_NAME",
    "VIDEO_EXTENSIONS",
    "check_rates",
    "clip_of",
    "default_fps",
    "dist_env",
    "extract_video",
    "list_videos",
    "read_queries",
    "recipe_of",
    "remove_partial",
    "run_extraction",
    "shard",
    "video_id",
]
