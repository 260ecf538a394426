"""``benchmarks/task_step.py``: any config's training step through the engine's trainer (its speed is
measured by the script, never asserted here)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.usefixtures("one_thread")
def test_task_step_times_the_engines_steps(tmp_path, monkeypatch):
    from momentkit.cli.main import main
    from momentkit.models import count_parameters
    from momentkit.training.config import load_config
    from momentkit.training.runner import build

    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(REPO / "configs", target_is_directory=True)
    assert main(["synth", "tal-small", "--out", "data/tal-small", "--set", "num_videos={train: 6, val: 2}"]) == 0
    config = "configs/tal/tal_small.yaml"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/task_step.py"), config, "--steps", "4", "--warmup",
                           "1", "--threads", "1", "--set", "data.batch_size=2", "--set", "model.embed_dim=64"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    # 3 batches per epoch: the 4 timed steps after the warm-up run into the second epoch
    assert "4 timed steps after 1 warm-up, device cpu, --set data.batch_size=2 model.embed_dim=64" in done.stdout
    row = re.search(rf"^\| {re.escape(config)} \| 32-true \| 2 \| ([\d.]+) M \| ([\d.]+) \| ([\d.]+) \|",
                    done.stdout, re.M)
    assert row, done.stdout
    _, module = build(load_config(config, ["model.embed_dim=64"]))
    assert float(row[1]) == round(count_parameters(module.model) / 1e6, 2) != round(
        count_parameters(build(load_config(config))[1].model) / 1e6, 2)  # the override reached the model
    assert 0 < float(row[3]) <= float(row[2])  # best <= median


def test_task_step_refuses_a_missing_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(REPO / "configs", target_is_directory=True)
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/task_step.py"), "configs/tal/tal_small.yaml",
                           "--steps", "1"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "data/tal-small/features/video_features: feature folder or packed file not found" in done.stderr
    assert "configs/tal/tal_small.yaml (32-true) failed" in done.stderr
