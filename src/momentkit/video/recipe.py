"""Feature recipes: how a model's input features were made, so that prediction can make them again.

A *folder recipe* is what ``momentkit extract`` writes next to the features it extracts
(``extract_info.json`` in the video folder and in the query folder): backbone name, model id or path
(``model_path``: its absolute form when it was a local path), vision and text layers, token pooling,
frames per clip, ``fps``, ``clip_len``, feature width, layout and ``normalize: none`` (features are
stored as the backbone gives them). :func:`read_recipe` reads it from a feature folder or a packed
feature file; folders written by ``momentkit synth`` read as ``{"source": "synthetic"}``, folders of
unknown origin (downloaded features) as ``None``.

A *run recipe* (:func:`run_recipe`) is what a trained model needs of its inputs, built from the
training config's data section while the feature folders still exist, and stored with the model::

    {"version": 1,
     "video": [part, ...],          # one per data.video_features entry, in concatenation order
     "video_normalize": "l2" | "none",
     "text": part | None,           # data.text_features
     "text_field": "last_hidden_state",
     "text_normalize": "l2"}

Each ``part`` is ``{"path": ..., "source": "extract" | "synthetic" | "unknown", ...folder recipe}``.
``video_normalize: l2``: with several sources, each is L2-normalised over its feature axis
(``x / (||x|| + 1e-5)``), all are cut to the shortest and concatenated in list order, as
:class:`momentkit.data.features.ConcatStore` does in training; one source is used as stored. Query
tokens are always L2-normalised (:func:`momentkit.data.inputs.text_inputs`).

The run stores it as ``recipe.json`` beside ``config.yaml``, as the ``recipe`` entry (JSON) of the
``model.safetensors`` metadata and as ``checkpoint["recipe"]`` of Lightning checkpoints;
:func:`load_run_recipe` reads it back from any of them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from momentkit.errors import InputError

RECIPE_VERSION = 1
FOLDER_RECIPE = "extract_info.json"  # written by momentkit extract into each feature folder
RUN_RECIPE = "recipe.json"  # written by momentkit train into the run folder
RECIPE_KEY = "recipe"  # model.safetensors metadata key / Lightning checkpoint key
SOURCES = ("extract", "synthetic", "unknown")
SYNTH_MARKER = "synth.json"  # momentkit synth writes OUT/synth.json and OUT/features/<name>/


# ----------------------------------------------------------------------------- feature folders
def read_recipe(path: str | os.PathLike) -> dict | None:
    """The recipe of a feature folder or packed feature file: the folder recipe of ``momentkit extract``
    (with ``source: extract``), ``{"source": "synthetic"}`` for the folders of ``momentkit synth``, or
    None when nothing says how the features were made."""
    p = Path(path)
    if p.is_file():
        return _packed_recipe(p)
    info = p / FOLDER_RECIPE
    if info.is_file():
        try:
            recipe = json.loads(info.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise InputError(f"cannot read the extraction recipe ({type(e).__name__}: {e})", path=info) from None
        if not isinstance(recipe, dict) or "backbone" not in recipe:
            raise InputError("the extraction recipe is not a mapping with a 'backbone'", path=info)
        return {"source": "extract", **recipe}
    for parent in (p.parent, p.parent.parent):
        if (parent / SYNTH_MARKER).is_file():
            return {"source": "synthetic", "synth": str(parent / SYNTH_MARKER)}
    return None


def _packed_recipe(path: Path) -> dict | None:
    from momentkit.data.features import _read_pack_index, is_packed_file

    if not is_packed_file(path):
        return None
    index = _read_pack_index(path)
    if isinstance(index.get(RECIPE_KEY), dict):
        return {"source": "extract", **index[RECIPE_KEY]}
    source = index.get("source")
    if isinstance(source, str) and " + " not in source and Path(source).is_dir():
        return read_recipe(source)  # the folder it was packed from, when it is still there
    return None


def _part(path: str | os.PathLike) -> dict:
    recipe = read_recipe(path)
    if recipe is None:
        return {"path": str(path), "source": "unknown"}
    return {"path": str(path), **recipe}


def run_recipe(data: Any) -> dict | None:
    """The run recipe of a training config's data section (see the module docstring); None for a data
    section without ``video_features`` (tasks that do not predict from raw video). Call it while the
    feature folders exist (when training starts)."""
    video = getattr(data, "video_features", None)
    if not video:
        return None
    video = [video] if isinstance(video, (str, os.PathLike)) else list(video)
    recipe: dict[str, Any] = {"version": RECIPE_VERSION, "video": [_part(p) for p in video],
                              "video_normalize": "l2" if len(video) > 1 else "none",
                              "text": None, "text_field": None, "text_normalize": "l2"}
    text = getattr(data, "text_features", None)
    if text:
        recipe["text"] = _part(text)
        try:
            from momentkit.data.features import open_store

            recipe["text_field"] = open_store(text, kind="text").field
        except InputError:
            recipe["text_field"] = None
    return json.loads(json.dumps(recipe))


def check_run_recipe(recipe: dict | None, clip_len: float) -> None:
    """Refuse training features whose extraction clip length is not ``data.clip_len`` (the model would
    place its moments on the wrong timeline)."""
    for part in (recipe or {}).get("video") or []:
        got = part.get("clip_len") if part.get("source") == "extract" else None
        if got is not None and abs(float(got) - float(clip_len)) > 1e-9:
            raise InputError(f"data.clip_len is {float(clip_len):g} s but these features were extracted with "
                             f"clips of {float(got):g} s (momentkit extract --clip-len)", path=part.get("path"),
                             field="data.clip_len")


# ----------------------------------------------------------------------------- runs
def recipe_metadata(recipe: dict | None) -> dict[str, str]:
    """``{"recipe": JSON}`` to merge into the ``model.safetensors`` metadata (empty for None)."""
    return {} if recipe is None else {RECIPE_KEY: json.dumps(recipe, sort_keys=True)}


def save_run_recipe(run_dir: str | os.PathLike, recipe: dict | None) -> Path | None:
    """Write ``recipe.json`` into a run folder (nothing for None)."""
    if recipe is None:
        return None
    from momentkit.io import write_json

    path = Path(run_dir) / RUN_RECIPE
    write_json(path, recipe)
    return path


def _checked(recipe: Any, path) -> dict:
    if not isinstance(recipe, dict) or not isinstance(recipe.get("video"), list):
        raise InputError("the stored feature recipe is not a mapping with a 'video' list", path=path,
                         field=RECIPE_KEY)
    version = recipe.get("version")
    if version != RECIPE_VERSION:
        raise InputError(f"feature recipe version {version!r} is not supported (this momentkit reads "
                         f"version {RECIPE_VERSION})", path=path, field=RECIPE_KEY)
    for part in [*recipe["video"], *([recipe["text"]] if recipe.get("text") else [])]:
        if not isinstance(part, dict) or part.get("source") not in SOURCES:
            raise InputError("the stored feature recipe has a part without a known 'source'", path=path,
                             field=RECIPE_KEY)
    return recipe


def load_run_recipe(path: str | os.PathLike) -> dict | None:
    """The run recipe a model carries: the ``recipe`` metadata of a ``model.safetensors``, the
    ``recipe`` entry of a Lightning checkpoint, else the ``recipe.json`` of its run folder; None when
    the model carries none (trained before runs recorded it)."""
    p = Path(path)
    if p.is_dir():
        run_dir = p
    else:
        if p.suffix == ".safetensors":
            from safetensors import safe_open

            try:
                with safe_open(str(p), framework="pt") as fh:
                    meta = fh.metadata() or {}
            except Exception as e:  # noqa: BLE001 - a damaged file is the user's input
                raise InputError(f"cannot read safetensors file ({type(e).__name__}: {e})", path=p) from None
            if RECIPE_KEY in meta:
                try:
                    return _checked(json.loads(meta[RECIPE_KEY]), p)
                except ValueError:
                    raise InputError("the feature recipe in the metadata is not valid JSON", path=p,
                                     field=RECIPE_KEY) from None
        elif p.suffix == ".ckpt" and p.is_file():
            import torch

            try:
                ckpt = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
            except Exception:  # noqa: BLE001 - the model loader reports a bad checkpoint
                ckpt = {}
            stored = ckpt.get(RECIPE_KEY) if isinstance(ckpt, dict) else None
            if stored is None and isinstance(ckpt, dict):
                stored = (ckpt.get("hyper_parameters") or {}).get(RECIPE_KEY)
            if stored is not None:
                return _checked(stored, p)
        run_dir = p.parent.parent if p.parent.name == "checkpoints" else p.parent
    file = run_dir / RUN_RECIPE
    if not file.is_file():
        return None
    try:
        return _checked(json.loads(file.read_text(encoding="utf-8")), file)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"cannot read the run's feature recipe ({type(e).__name__}: {e})", path=file) from None


# ----------------------------------------------------------------------------- backbones
def _same_layers(a, b) -> bool:
    return (list(a) if a else None) == (list(b) if b else None)


def describe_part(part: dict | None) -> str:
    """One line: where a part's features come from, e.g. ``clip openai/clip-vit-base-patch32, layers
    [11, 12] (pool cls), 0.5 frames/s, clips of 2 s``."""
    if part is None:
        return "no features"
    source = part.get("source")
    where = f" ({part['path']})" if part.get("path") else ""
    if source == "synthetic":
        return f"synthetic features{where}"
    if source != "extract":
        return f"features of unknown origin{where}"
    text = f"{part.get('backbone')} {part.get('model')}"
    if part.get("layers"):
        text += f", layers {list(part['layers'])} (pool {part.get('pool')})"
    if part.get("fps") and part.get("clip_len"):
        text += f", {float(part['fps']):g} frames/s, clips of {float(part['clip_len']):g} s"
    return text


def describe_video(recipe: dict) -> str:
    parts = recipe.get("video") or []
    if len(parts) == 1:
        return describe_part(parts[0])
    return " + ".join(f"[{describe_part(p)}]" for p in parts) + \
        " (each L2-normalised, cut to the shortest, concatenated in this order)"


def backbone_spec(part: dict, model: str | None = None) -> tuple[str, str, dict]:
    """``(name, model, options)`` for :func:`momentkit.video.backbones.create_backbone` that rebuild the
    backbone of an ``extract`` part; ``model`` replaces the recorded weights (a local copy)."""
    if part.get("source") != "extract":
        raise InputError(f"{describe_part(part)} have no extraction recipe", field=RECIPE_KEY)
    if model is None:
        local = part.get("model_path")
        model = local if local and os.path.exists(local) else part.get("model")
        if model is None:
            raise InputError(f"the recipe of {describe_part(part)} names no model", field=RECIPE_KEY)
    options: dict[str, Any] = {"layers": part.get("layers"), "text_layers": part.get("text_layers")}
    if part.get("layers") and part.get("pool"):
        options["pool"] = part["pool"]
    return str(part["backbone"]), str(model), options


def check_backbone(part: dict, backbone, what: str = "video", layered_text: bool = False) -> None:
    """Refuse a backbone that would not make the features of ``part`` (name, model id, and for video
    layers, pooling, frames per clip and width; for ``what="query"`` with ``layered_text`` the text
    layers); the message says what the model needs."""
    if part.get("source") != "extract":
        return
    got = backbone.describe()
    diff = []
    if got.get("backbone") != part.get("backbone"):
        diff.append(f"backbone {got.get('backbone')!r}, not {part.get('backbone')!r}")
    if what == "video":
        if not _same_layers(got.get("layers"), part.get("layers")):
            diff.append(f"layers {got.get('layers')}, not {part.get('layers')}")
        if part.get("layers") and got.get("pool") != part.get("pool"):
            diff.append(f"pool {got.get('pool')!r}, not {part.get('pool')!r}")
        if got.get("frames_per_clip") != part.get("frames_per_clip"):
            diff.append(f"{got.get('frames_per_clip')} frames per clip, not {part.get('frames_per_clip')}")
        if part.get("video_dim") is not None and got.get("video_dim") != part.get("video_dim"):
            diff.append(f"width {got.get('video_dim')}, not {part.get('video_dim')}")
    elif layered_text and not _same_layers(got.get("text_layers"), part.get("text_layers")):
        diff.append(f"text layers {got.get('text_layers')}, not {part.get('text_layers')}")
    model, want = got.get("model"), part.get("model")
    if model and want and str(model) not in (str(want), str(part.get("model_path"))) \
            and not os.path.exists(str(model)) and not os.path.exists(str(want)):
        diff.append(f"model {model}, not {want}")  # two different hub ids
    if diff:
        raise InputError(f"the model's {what} features come from {describe_part(part)}; the given backbone "
                         f"differs ({'; '.join(diff)}): omit it to use the model's recipe",
                         field="backbone")


__all__ = [
    "FOLDER_RECIPE",
    "RECIPE_KEY",
    "RECIPE_VERSION",
    "RUN_RECIPE",
    "backbone_spec",
    "check_backbone",
    "check_run_recipe",
    "describe_part",
    "describe_video",
    "load_run_recipe",
    "read_recipe",
    "recipe_metadata",
    "run_recipe",
    "save_run_recipe",
]
