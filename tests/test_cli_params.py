"""``momentkit params CONFIG``: trainable parameters of any config's model, SDST's per part."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import REPO
from momentkit.cli.main import main
from momentkit.models import count_parameters, create_model
from momentkit.models.sdst import parameter_breakdown

SDST_CONFIG = REPO / "configs" / "sdst" / "qvhighlights.yaml"


def model_options(path) -> tuple[str, dict]:
    section = dict(yaml.safe_load(path.read_text())["model"])
    return section.pop("name"), section


def printed(text: str, label: str) -> int:
    """The count of row ``label`` in the command's output (``  label   4,668,868 (4.67 M)``)."""
    (m,) = re.finditer(rf"^  {re.escape(label)} +([\d,]+) \(\d+\.\d\d M\)$", text, re.M)
    return int(m.group(1).replace(",", ""))


def test_sdst_total_breakdown_and_paper(capsys):
    assert main(["params", str(SDST_CONFIG)]) == 0
    text = capsys.readouterr().out
    name, options = model_options(SDST_CONFIG)
    model = create_model(name, **options)
    total = count_parameters(model)
    assert text.startswith(f"trainable parameters of {SDST_CONFIG} (model: sdst)\n")
    assert printed(text, "total") == total
    parts = parameter_breakdown(model)
    for part, count in parts.items():
        assert printed(text, part) == count
    assert total == sum(v for k, v in parts.items() if k != "total" and not k.startswith(" "))
    unshared = count_parameters(create_model(name, **{**options, "shared": False}))
    assert printed(text, "total with shared: false") == unshared > total
    assert "paper (QVHighlights, InternVideo2-1B): 4.10 M shared, 12.43 M unshared" in text


def test_any_model_and_overrides(capsys):
    path = REPO / "configs" / "moment_detr" / "qvhighlights.yaml"
    assert main(["params", str(path), "--set", "model.hidden_dim=128"]) == 0
    text = capsys.readouterr().out
    name, options = model_options(path)
    assert name == "moment_detr" and "(model: moment_detr)" in text
    assert printed(text, "total") == count_parameters(create_model(name, **{**options, "hidden_dim": 128}))
    assert len(text.splitlines()) == 2  # title and total: no breakdown for this model


@pytest.mark.parametrize("model, field, message", [
    ("{name: no_such_model, hidden_dim: 8}", "model.name", "unknown model 'no_such_model'; known: "),
    ("{hidden_dim: 8}", "model.name", "expected a model name, got None"),
    ("[sdst]", "model", "expected a model: section"),
    ("{name: sdst, hiden_dim: 8}", "model.hiden_dim", "hiden_dim"),
])
def test_config_errors_name_the_key(tmp_path, capsys, model, field, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"model: {model}\n")
    assert main(["params", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"momentkit params: error: {path}, field '{field}': " in err and message in err


def test_missing_config(tmp_path, capsys):
    assert main(["params", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
