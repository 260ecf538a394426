"""Every shipped grounding config is valid: it loads, validates and builds its model.

(Temporal action localisation configs, ``configs/tal/``, dense detection configs, ``configs/dense/`` and
``configs/pretrain/``, and classification configs, ``configs/victr/``, have their own tests.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from momentkit.models import create_model
from momentkit.training.config import load_config

ROOT = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(p for p in ROOT.rglob("*.yaml") if p.relative_to(ROOT).parts[0] not in ("tal", "dense", "pretrain", "victr"))


def test_configs_exist():
    assert len(CONFIGS) >= 12


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_loads_and_builds_its_model(path):
    cfg = load_config(path)
    assert cfg.data.train and cfg.data.val and cfg.data.video_features and cfg.data.text_features
    assert cfg.train.out_dir.startswith("runs/")
    model = create_model(**cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
