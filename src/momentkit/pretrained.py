"""Trained models people can share: a run exported as a self-describing folder, loaded back from the
folder or from the Hugging Face Hub.

``momentkit export RUN_DIR OUT_DIR`` (:func:`export_run`) writes::

    config.json          what the model is and needs: {"format": "momentkit-model", "format_version": 1,
                         "momentkit_version", "task", "model" (name and options), "inputs" (clip length,
                         feature widths, the backbones that make its features), "recipe" (the feature
                         recipe, momentkit.video.recipe), "config" (the whole experiment config, with the
                         fitted score calibration), "weights" (file and {tensor: shape})}
    model.safetensors    the weights the run evaluates with (the EMA copy when it kept one); the config
                         and recipe are in its metadata too, so the file alone also loads
    README.md            the model card: metrics, data, how it was trained and how to use it, licence
    metrics_<split>.json the run's metrics, as momentkit train wrote them
    train_config.yaml    the resolved training config (`momentkit train train_config.yaml` trains it again)

The folder is written into a temporary sibling and renamed into place, so it is complete or absent; a
non-empty ``OUT_DIR`` is refused unless ``force``.

Loading (:func:`resolve` and :func:`load_exported`; ``momentkit.training.runner.load_run`` calls them,
so every ``--ckpt`` and :meth:`momentkit.predict.Predictor.from_pretrained` take an exported folder or a
Hub id): an existing path is used as it is; ``owner/name`` (optionally ``@revision``, or ``hf://`` in
front) that is not a path here is downloaded with ``huggingface_hub.snapshot_download`` -- only the
files above, never pickles -- and loaded from the download. Loading reads JSON and safetensors only;
``config.json`` says what model to build, and weights that do not fit it are refused with every
mismatched tensor named with both shapes (:func:`check_weights`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from momentkit.errors import InputError

FORMAT = "momentkit-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
TRAIN_CONFIG_FILE = "train_config.yaml"
HUB_FILES = [CONFIG_FILE, WEIGHTS_FILE, CARD_FILE, "metrics_*.json", TRAIN_CONFIG_FILE]
HUB_ID = re.compile(r"(?:hf://)?([A-Za-z0-9][\w.-]*/[\w.-]+)(?:@([\w./-]+))?")
SHOWN = 8  # mismatched tensors named per kind


# ----------------------------------------------------------------------------- weights against a model
def _shape(shape) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _listing(items: list[str]) -> str:
    more = f", and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return "; ".join(items[:SHOWN]) + more


def check_weights(model, shapes: dict[str, tuple], what: str, path) -> None:
    """Refuse weights (``{tensor name: shape}``) that do not fit ``model``: one :class:`InputError` that
    names every tensor of another shape (both shapes), missing from the weights, or unexpected."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    wrong = [f"{k}: model {_shape(expected[k])}, weights {_shape(shapes[k])}"
             for k in expected if k in shapes and tuple(shapes[k]) != expected[k]]
    missing = [f"{k} {_shape(expected[k])}" for k in expected if k not in shapes]
    unexpected = [f"{k} {_shape(shapes[k])}" for k in shapes if k not in expected]
    if not (wrong or missing or unexpected):
        return
    parts = []
    if wrong:
        parts.append(f"{len(wrong)} of another shape ({_listing(wrong)})")
    if missing:
        parts.append(f"{len(missing)} missing from the weights ({_listing(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({_listing(unexpected)})")
    raise InputError(f"weights do not match {what}: tensors {'; '.join(parts)}", path=path)


def _safetensors_shapes(path: Path) -> dict[str, tuple]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad file for the user
        raise InputError(f"cannot read safetensors file ({type(e).__name__}: {e})", path=path) from None


# ----------------------------------------------------------------------------- where a model is
def hub_id(text: str) -> tuple[str, str | None] | None:
    """``(repo id, revision)`` when ``text`` reads as a Hugging Face Hub model id, else None."""
    m = HUB_ID.fullmatch(str(text))
    if m is None or str(text).startswith(("./", "../")):
        return None
    return m.group(1), m.group(2)


def resolve(path_or_id: str | os.PathLike) -> Path:
    """A local path for a model: an existing file or folder as it is; a Hub id that is no path here
    downloaded (the exported files only) and the snapshot folder returned; anything else unchanged (its
    loader says it is not found)."""
    p = Path(path_or_id)
    if p.exists() or isinstance(path_or_id, Path):
        return p
    found = hub_id(str(path_or_id))
    if found is None:
        return p
    repo, revision = found
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise InputError(f"no such file or folder here, and loading '{repo}' from the Hugging Face Hub needs the "
                         "huggingface_hub package (pip install huggingface_hub)", path=str(path_or_id)) from None
    try:
        folder = Path(snapshot_download(repo, revision=revision, allow_patterns=HUB_FILES))
    except Exception as e:  # noqa: BLE001 - offline, unknown repository or revision, bad id: one line
        raise InputError(f"no such file or folder here, and the Hugging Face Hub model '{repo}' cannot be "
                         f"downloaded: {_hub_reason(e)}; check the id and the network, or give a local folder",
                         path=str(path_or_id)) from None
    if not (folder / CONFIG_FILE).is_file():
        raise InputError(f"the Hugging Face Hub repository '{repo}' holds no {CONFIG_FILE}: not a model exported "
                         "by momentkit export", path=str(path_or_id))
    return folder


def _hub_reason(e: Exception) -> str:
    """One short reason for a failed Hub download."""
    names = {type(c).__name__ for c in type(e).__mro__}
    if "RevisionNotFoundError" in names:
        return "no such revision"
    if "RepositoryNotFoundError" in names or "GatedRepoError" in names:
        return "no such repository, or it is private or gated (log in with `hf auth login`)"
    if "HFValidationError" in names:
        return "not a valid repository id"
    if "LocalEntryNotFoundError" in names or "OfflineModeIsEnabled" in names or isinstance(e, OSError):
        return "the Hub cannot be reached (offline?) and no copy is in the local cache"
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def is_exported(folder: Path) -> bool:
    """Whether ``folder`` is (meant as) an exported model: a folder with ``config.json`` and no run config."""
    return folder.is_dir() and (folder / CONFIG_FILE).is_file() and not (folder / "config.yaml").is_file()


def read_export_config(folder: Path) -> dict:
    """The checked ``config.json`` of an exported folder."""
    from momentkit.io import read_json

    path = folder / CONFIG_FILE
    meta = read_json(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"not a momentkit model: {CONFIG_FILE} has no \"format\": \"{FORMAT}\" (export runs with "
                         "momentkit export)", path=path, field="format")
    if meta.get("format_version") != FORMAT_VERSION:
        raise InputError(f"format version {meta.get('format_version')!r} is not supported (this momentkit reads "
                         f"version {FORMAT_VERSION})", path=path, field="format_version")
    if not isinstance(meta.get("config"), dict):
        raise InputError("expected the experiment config as a mapping", path=path, field="config")
    return meta


def load_exported(folder: str | os.PathLike):
    """``(model in eval mode, ExperimentConfig, weights file)`` of an exported folder (JSON and safetensors
    only; the model built from ``config.json``, the weights checked against it)."""
    from safetensors.torch import load_file

    from momentkit.models import create_model
    from momentkit.training.config import parse_config

    folder = Path(folder)
    meta = read_export_config(folder)
    cfg = parse_config(meta["config"], str(folder / CONFIG_FILE))
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise InputError(f"the exported model has no {WEIGHTS_FILE}", path=weights)
    shapes = _safetensors_shapes(weights)
    model = create_model(**cfg.model)
    check_weights(model, shapes, f"the '{cfg.model['name']}' model of {folder / CONFIG_FILE}", weights)
    try:
        state = load_file(str(weights))
    except Exception as e:  # noqa: BLE001
        raise InputError(f"cannot read safetensors file ({type(e).__name__}: {e})", path=weights) from None
    model.load_state_dict(state)
    return model.eval(), cfg, weights


def export_recipe(weights: Path) -> tuple[bool, dict | None]:
    """``(True, recipe)`` when ``weights`` is the weights file of an exported folder (its ``config.json``
    holds the recipe, which loading follows), else ``(False, None)``."""
    from momentkit.video.recipe import _checked

    folder = Path(weights).parent
    if Path(weights).name != WEIGHTS_FILE or not is_exported(folder):
        return False, None
    recipe = read_export_config(folder).get("recipe")
    return True, None if recipe is None else _checked(recipe, folder / CONFIG_FILE)


# ----------------------------------------------------------------------------- export
def _inputs(cfg, model, recipe: dict | None) -> dict:
    """What the model reads: clip length, feature widths and the backbones that make its features."""
    from momentkit.video.recipe import describe_part

    data = cfg.data
    inputs: dict = {}
    for name in ("clip_len", "max_v_len", "max_q_len", "use_tef", "layer", "frames", "fps"):
        value = getattr(data, name, None)
        if value is not None:
            inputs[name] = value
    for name in ("video_dim", "text_dim", "input_dim", "num_classes"):
        value = cfg.model.get(name)
        if value is not None:
            inputs[name] = value
    if recipe is not None:
        keep = ("source", "backbone", "model", "layers", "text_layers", "pool", "fps", "clip_len",
                "frames_per_clip", "video_dim", "text_dim")
        inputs["video_features"] = [{k: p[k] for k in keep if p.get(k) is not None} | {"describe": describe_part(p)}
                                    for p in recipe.get("video") or []]
        if recipe.get("text"):
            t = recipe["text"]
            inputs["text_features"] = {k: t[k] for k in keep if t.get(k) is not None} | {"describe": describe_part(t)}
        inputs["video_normalize"] = recipe.get("video_normalize")
        inputs["text_field"] = recipe.get("text_field")
    return inputs


def _metrics_files(run: Path) -> list[Path]:
    return sorted(p for p in run.glob("metrics_*.json") if p.is_file())


def _command(run: Path) -> str:
    """The command that trained the run: the first line of its ``log.txt`` when benchmarks/seeds.py ran
    it, else ``momentkit train`` of the exported training config."""
    log = run / "log.txt"
    if log.is_file():
        try:
            first = log.read_text(encoding="utf-8", errors="replace").splitlines()[0].strip()
        except (OSError, IndexError):
            first = ""
        if "momentkit" in first and " train " in f" {first} ":
            return first
    return f"momentkit train {TRAIN_CONFIG_FILE}"


def model_card(meta: dict, metrics: dict[str, dict], *, name: str, license: str, command: str,
               parameters: int) -> str:
    """The ``README.md`` of an exported folder: Hub front matter, then what the model does, reads, was
    trained on and scores, and how to use it."""
    cfg = meta["config"]
    task = meta["task"]
    data = cfg.get("data") or {}
    tags = ["momentkit", "video", {"grounding": "moment-retrieval", "detection": "temporal-action-localization",
                                   "dense": "temporal-action-detection",
                                   "classification": "video-classification"}.get(task, task)]
    lines = ["---", f"license: {license}", "library_name: momentkit", "tags:"] + [f"- {t}" for t in tags] + \
        ["---", "", f"# {name}", "",
         f"A `{meta['model']['name']}` model for the momentkit task `{task}` ({parameters:,} parameters), "
         f"exported by `momentkit export` from momentkit {meta['momentkit_version']}.", "",
         "## Use", "", "```python", "from momentkit.predict import Predictor", "",
         f'predictor = Predictor.from_pretrained("{name}")   # this folder, or its Hugging Face Hub id',
         "```", "", "or on the command line, wherever a checkpoint is taken:", "", "```bash",
         f"momentkit test CONFIG --ckpt {name}"]
    if task == "grounding":
        lines.append(f'momentkit predict VIDEO "a query" --ckpt {name}')
    lines += ["```", "", "## Inputs", ""]
    inputs = meta["inputs"]
    if inputs.get("clip_len") is not None:
        lines.append(f"- clips of {float(inputs['clip_len']):g} s")
    for part in inputs.get("video_features") or []:
        lines.append(f"- video features: {part['describe']}")
    if inputs.get("text_features"):
        lines.append(f"- query features: {inputs['text_features']['describe']} ({inputs.get('text_field')})")
    for key in ("video_dim", "text_dim", "input_dim", "num_classes"):
        if key in inputs:
            lines.append(f"- `{key}`: {inputs[key]}")
    if not (inputs.get("video_features")):
        lines.append("- no feature recipe: give the model features made as its training features were")
    lines += ["", "## Training data", ""]
    splits = [(k, v) for k, v in data.items() if k in ("train", "val", "test", "source", "target", "annotations")
              and v]
    lines += [f"- {k}: `{v}`" for k, v in splits] or ["- (not recorded)"]
    lines += ["", "## Metrics", ""]
    if not metrics:
        lines.append("No metrics file in the run.")
    for file, values in metrics.items():
        brief = values.get("brief") if isinstance(values.get("brief"), dict) else values
        nums = [(k, v) for k, v in brief.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        lines += [f"`{file}`:", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:g} |" for k, v in nums] + [""]
    lines += ["## Training", "", "```bash", command, "```", "",
              f"`{TRAIN_CONFIG_FILE}` is the resolved config of the run (its data paths are where the data was).",
              "", "## Licence", "",
              f"`{license}`. The weights were learned from the data above: its licence may restrict their use.", ""]
    return "\n".join(lines)


def export_run(run: str | os.PathLike, out: str | os.PathLike, *, force: bool = False, license: str = "unknown",
               name: str | None = None) -> Path:
    """Export a trained run (a run folder, or a ``.ckpt`` / ``model.safetensors`` of one) as the folder
    described in the module docstring; returns ``out``."""
    import yaml
    from safetensors.torch import save_file

    from momentkit import __version__
    from momentkit.io import check_output, read_json, write_json
    from momentkit.training.runner import load_run
    from momentkit.video.recipe import load_run_recipe, recipe_metadata

    out = Path(out)
    check_output(out, "dir", option="OUT_DIR")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InputError("the folder is not empty (give --force to replace it)", path=out, field="OUT_DIR")
    src = Path(run)
    if not src.exists():
        raise InputError("run folder not found", path=src, field="RUN_DIR")
    model, cfg, weights_src = load_run(src)
    recipe = load_run_recipe(weights_src)
    run_dir = src if src.is_dir() else (src.parent.parent if src.parent.name == "checkpoints" else src.parent)
    if out.resolve() == run_dir.resolve():
        raise InputError("the export folder is the run folder itself", path=out, field="OUT_DIR")
    config = cfg.to_dict()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "momentkit_version": __version__,
            "task": cfg.task, "model": dict(cfg.model), "inputs": _inputs(cfg, model, recipe), "recipe": recipe,
            "config": config, "weights": {"file": WEIGHTS_FILE, "tensors": {k: list(v.shape) for k, v in state.items()}}}
    meta = json.loads(json.dumps(meta, default=str))
    metrics = {p.name: read_json(p) for p in _metrics_files(run_dir)}
    parameters = sum(int(v.numel()) for v in model.parameters())
    card = model_card(meta, metrics, name=name or out.name, license=license, command=_command(run_dir),
                      parameters=parameters)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        write_json(tmp / CONFIG_FILE, meta)
        save_file(state, str(tmp / WEIGHTS_FILE),
                  metadata={"config": yaml.safe_dump(config), "format": FORMAT, **recipe_metadata(recipe)})
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")
        for file, values in metrics.items():
            write_json(tmp / file, values)
        (tmp / TRAIN_CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        from momentkit.io import _FILE_MODE

        for file in tmp.iterdir():  # the permissions open() gives (safetensors writes owner-only files)
            os.chmod(file, _FILE_MODE)
        os.chmod(tmp, 0o777 & ~_umask())
        if out.exists():  # empty, or --force: swap the old folder out, the new one in
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
