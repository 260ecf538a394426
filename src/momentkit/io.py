"""Small file helpers shared by every reader and writer.

- :func:`atomic_write` writes to a temporary file in the target folder and renames it into place,
  so an interrupted run never leaves a half-written file behind.
- :func:`iter_jsonl` / :func:`read_json` parse with errors that name the file and line.
- :func:`check_output` refuses an output location that cannot be written, before any work starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from momentkit.errors import InputError


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


# mkstemp creates owner-only files; give finished files the permissions open() would give
_FILE_MODE = _umask_mode()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it to ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, _FILE_MODE)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_save(path: str | os.PathLike, save_fn) -> None:
    """Call ``save_fn(tmp_path)`` then rename the result onto ``path`` (for numpy/torch savers)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _FILE_MODE)
    try:
        save_fn(tmp)
        os.chmod(tmp, _FILE_MODE)  # some savers (safetensors) replace the file and its permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_output(path: str | os.PathLike, kind: str = "file", *, option: str | None = None) -> Path:
    """Refuse an output location that cannot be written, before any work starts; creates nothing.

    ``kind="file"``: ``path`` must not be a folder; ``kind="dir"``: it must not be a file. The
    nearest existing folder on the way (``path`` itself for an existing folder) must be writable,
    tested by creating and removing a temporary file there, and no file may stand where a folder
    is needed. The :class:`InputError` names ``option`` (e.g. ``--out``) and the path.
    """
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', got {kind!r}")
    if not str(path).strip():
        raise InputError(f"expected a {'file' if kind == 'file' else 'folder'} name, got an empty one",
                         field=option)
    target = Path(path)
    try:
        if kind == "file" and target.is_dir():
            raise InputError("is a folder; expected a file name", path=target, field=option)
        if kind == "file" and str(path).endswith(("/", os.sep)):
            raise InputError("ends with a slash, which names a folder; expected a file name", path=path,
                             field=option)
        if kind == "dir" and target.exists() and not target.is_dir():
            raise InputError("is a file; expected a folder", path=target, field=option)
        _check_writable_folder(target if kind == "dir" else target.parent, target, option)
    except PermissionError as e:  # a folder on the way that cannot even be looked into
        raise InputError(f"cannot be written ({e.strerror})", path=target, field=option) from None
    return target


def _check_writable_folder(folder: Path, target: Path, option: str | None) -> None:
    """The nearest existing ancestor of ``folder`` (or itself) must be a writable folder."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"cannot be created: {existing} is a file, not a folder", path=target, field=option)
    try:
        fd, probe = tempfile.mkstemp(prefix=".momentkit-write-test.", dir=existing)
    except OSError as e:
        raise InputError(f"cannot be written: cannot create a file in {existing} ({e.strerror})",
                         path=target, field=option) from None
    os.close(fd)
    os.unlink(probe)


def existing_file(value: str | os.PathLike, field: str | None = None) -> Path:
    """``value`` as the path of a file that exists, else an :class:`InputError` naming it (and ``field``)."""
    path = Path(value)
    if not path.exists():
        raise InputError("file not found", path=path, field=field)
    if path.is_dir():
        raise InputError("expected a file, found a folder", path=path, field=field)
    return path


def _require_file(path: Path) -> None:
    existing_file(path)


def _numbered_lines(fh, path: Path) -> Iterator[tuple[int, str]]:
    lineno = 0
    try:
        for lineno, line in enumerate(fh, start=1):
            yield lineno, line
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=path, line=lineno + 1) from None


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for every non-blank line of a JSON Lines file."""
    path = Path(path)
    _require_file(path)
    seen = False
    with open(path, encoding="utf-8") as fh:
        for lineno, line in _numbered_lines(fh, path):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"malformed JSON ({e.msg} at column {e.colno})", path=path, line=lineno) from None
            if not isinstance(obj, dict):
                raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=lineno)
            seen = True
            yield lineno, obj
    if not seen:
        raise InputError("file is empty", path=path)


def read_json(path: str | os.PathLike) -> Any:
    """Parse a whole JSON file; errors name the file, line and column."""
    path = Path(path)
    _require_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (byte {e.start})", path=path) from None
    if not text.strip():
        raise InputError("file is empty", path=path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"malformed JSON ({e.msg} at column {e.colno})", path=path, line=e.lineno) from None


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Write dicts as JSON Lines, atomically."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row))
            fh.write("\n")


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write one JSON document, atomically."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=indent)
        fh.write("\n")


def save_npz(path: str | os.PathLike, compress: bool = False, **arrays: Any) -> None:
    """Write arrays as a ``.npz`` readable by ``np.load``, atomically and byte-for-byte reproducibly.

    ``np.savez`` stamps each member with the current time, so two identical runs give different
    bytes; here every member carries a fixed timestamp and the arrays are written in the order given.
    """
    import zipfile

    import numpy as np

    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_write(path, "wb") as fh:
        with zipfile.ZipFile(fh, mode="w", compression=compression, allowZip64=True) as zf:
            for name, value in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = compression
                with zf.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
