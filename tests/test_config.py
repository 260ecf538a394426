"""Typed configs: unknown keys, wrong types, overrides, YAML errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from momentkit.config import apply_overrides, from_dict, load_yaml, to_dict
from momentkit.errors import InputError
from momentkit.training.config import load_config

from conftest import REPO


@dataclass
class Inner:
    lr: float = 1e-4
    layers: list[int] = field(default_factory=lambda: [1, 2])
    mode: Literal["a", "b"] = "a"
    path: Path | None = None


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    flag: bool = False


def test_from_dict_builds_nested_and_coerces():
    cfg = from_dict(Outer, {"name": "y", "inner": {"lr": 1, "layers": [3], "mode": "b", "path": "p/q"}})
    assert cfg.inner.lr == 1.0 and isinstance(cfg.inner.lr, float)
    assert cfg.inner.layers == [3] and cfg.inner.mode == "b" and cfg.inner.path == Path("p/q")
    assert to_dict(cfg) == {"name": "y", "inner": {"lr": 1.0, "layers": [3], "mode": "b", "path": "p/q"}, "flag": False}


@pytest.mark.parametrize(
    "data, field_name, message",
    [
        ({"nam": "y"}, "nam", "unknown key"),
        ({"inner": {"lrr": 1}}, "inner.lrr", "unknown key"),
        ({"inner": {"lr": "fast"}}, "inner.lr", "expected a number"),
        ({"inner": {"layers": [1, "two"]}}, "inner.layers[1]", "expected an integer"),
        ({"inner": {"mode": "c"}}, "inner.mode", "expected one of"),
        ({"flag": "yes"}, "flag", "true/false"),
        ({"inner": 3}, "inner", "mapping"),
    ],
)
def test_from_dict_names_the_bad_key(data, field_name, message):
    with pytest.raises(InputError) as e:
        from_dict(Outer, data, path="cfg.yaml")
    assert e.value.field == field_name and message in e.value.message and e.value.path == "cfg.yaml"


def test_overrides_parse_yaml_values():
    data = apply_overrides({"a": {"b": 1}}, ["a.b=2.5", "a.c=[1, 2]", "d=true", "e.f.g=hello"])
    assert data == {"a": {"b": 2.5, "c": [1, 2]}, "d": True, "e": {"f": {"g": "hello"}}}
    with pytest.raises(InputError, match="key=value"):
        apply_overrides({}, ["novalue"])


def test_load_yaml_errors_and_base(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\nb: [1, 2\n")
    with pytest.raises(InputError) as e:
        load_yaml(bad)
    assert e.value.path == str(bad) and e.value.line is not None
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(InputError, match="empty"):
        load_yaml(tmp_path / "empty.yaml")
    (tmp_path / "base.yaml").write_text("train: {lr: 0.1, epochs: 3}\nmodel: {name: moment_detr}\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\ntrain: {epochs: 5}\ndata:\n  train: ${here}/t.jsonl\n")
    cfg = load_config(tmp_path / "child.yaml", ["train.seed=7"])
    assert (cfg.train.lr, cfg.train.epochs, cfg.train.seed) == (0.1, 5, 7)
    assert cfg.data.train == f"{tmp_path}/t.jsonl"


def test_experiment_config_rejects_unknown_sections(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model: {name: moment_detr}\ntrian: {lr: 1}\n")
    with pytest.raises(InputError, match="unknown key") as e:
        load_config(p)
    assert e.value.field == "trian"


def test_yaml11_exponent_numbers_are_numbers():
    """PyYAML reads `1e-3` (no dot) as text; a float option takes it as the number it means."""
    cfg = load_config(REPO / "configs" / "dense" / "dense_small_coarse_fine.yaml", ["train.lr=1e-3"])
    assert cfg.train.lr == 0.001
    with pytest.raises(InputError, match="field 'train.lr': expected a number, got 'fast'"):
        load_config(REPO / "configs" / "dense" / "dense_small_coarse_fine.yaml", ["train.lr=fast"])
