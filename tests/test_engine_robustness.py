"""The engine on a newcomer's first hour: devices that are not there, Ctrl-C and --resume, wrong inputs
that say what is wrong in one line (and leave nothing behind), quiet output, NMS for single-moment
protocols."""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from momentkit.cli.main import main
from momentkit.errors import InputError
from momentkit.models.registry import register_model, unregister_model
from momentkit.synth import get_preset, synthesize
from momentkit.training import devices
from toys import ToyGrounding, ToyGroundingConfig

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ a toy model, tiny data
@pytest.fixture(scope="module")
def toy():
    register_model("robust_toy", config=ToyGroundingConfig, task="grounding")(
        lambda **o: ToyGrounding(ToyGroundingConfig(**o)))
    yield
    unregister_model("robust_toy")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("qvh")
    cfg = get_preset("qvh-small").override(["num_videos={train: 16, val: 6}", "video_dims=[8]", "text_dim=8"])
    summary = synthesize(cfg, out, seed=0)
    return {"train": str(out / "annotations/train.jsonl"), "val": str(out / "annotations/val.jsonl"),
            "video_features": [str(out / f) for f in summary["video_features"]],
            "text_features": str(out / summary["text_features"]), "batch_size": 2}


def _config(tmp_path, data, **train) -> str:
    config = {"task": "grounding", "data": data, "model": {"name": "robust_toy"},
              "train": {"epochs": 2, "lr": 1e-2, "progress": False, "accelerator": "cpu",
                        "out_dir": str(tmp_path / "run"), **train}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _missing_data() -> dict:
    """Files that do not exist: a check that opened them would fail differently."""
    return {"train": "/nonexistent/train.jsonl", "val": "/nonexistent/val.jsonl",
            "video_features": ["/nonexistent/v"], "text_features": "/nonexistent/t"}


def _curve(run: Path) -> list[dict]:
    from momentkit.training.callbacks import read_curve_csv

    return read_curve_csv(run / "curve.csv")


def _csv_rows(run: Path) -> list[dict]:
    with open(run / "logs/csv/metrics.csv", newline="") as fh:
        return sorted((r for r in csv.DictReader(fh)), key=lambda r: (int(r["step"]), sorted(r.items())))


# ------------------------------------------------------------------------------------ Ctrl-C and --resume
@pytest.fixture(scope="module")
def uninterrupted(toy, data, tmp_path_factory):
    """A 2-epoch run and its config; ``steps`` optimiser steps per epoch."""
    tmp = tmp_path_factory.mktemp("full")
    config = _config(tmp, data)
    assert main(["train", config, "--set", f"train.out_dir={tmp / 'run'}"]) == 0
    steps = torch.load(tmp / "run/checkpoints/last.ckpt", weights_only=True)["global_step"] // 2
    assert steps >= 10
    return {"config": config, "run": tmp / "run", "steps": steps}


def _press_ctrl_c_after(monkeypatch, step: int, times: int = 1) -> None:
    """Send this process SIGINT (what Ctrl-C does) ``times`` times right after optimiser step ``step``."""
    import signal

    from momentkit.training.module import TaskModule

    sent = []

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.global_step == step and not sent:
            sent.append(step)
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(TaskModule, "on_train_batch_end", on_train_batch_end, raising=False)


@pytest.mark.parametrize("where", ["mid-epoch", "end of epoch"])
def test_ctrl_c_saves_the_state_prints_the_resume_command_and_resume_ends_as_an_uninterrupted_run(
        uninterrupted, tmp_path, capsys, monkeypatch, where):
    full, config = uninterrupted["run"], uninterrupted["config"]
    # mid-way through the first epoch (no checkpoint exists yet), or after its last step (its validation
    # and checkpoint still to come)
    stop_at = uninterrupted["steps"] // 2 + 1 if where == "mid-epoch" else uninterrupted["steps"]
    _press_ctrl_c_after(monkeypatch, stop_at)
    part = tmp_path / "part"
    capsys.readouterr()
    assert main(["train", config, "--set", f"train.out_dir={part}", "--set", "train.lr=0.01"]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "stopping after this step" in err
    assert f"interrupted at step {stop_at}; the state is saved in {part / 'checkpoints/last.ckpt'}" in err
    last = part / "checkpoints/last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == stop_at
    rows_before = _csv_rows(part)
    assert rows_before
    command = err.strip().splitlines()[-1]
    assert command.startswith("resume with: momentkit train ")
    args = shlex.split(command.removeprefix("resume with: "))
    assert args == ["momentkit", "train", config, "--set", f"train.out_dir={part}", "--set", "train.lr=0.01",
                    "--resume"]
    monkeypatch.undo()
    assert main(args[1:]) == 0  # the printed command, as given
    # the resumed run ends where the uninterrupted one does ...
    a = torch.load(full / "checkpoints/last.ckpt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert (a["global_step"], a["epoch"]) == (b["global_step"], b["epoch"])
    for key in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][key], b["state_dict"][key], rtol=0, atol=1e-6)
    assert json.loads((part / "metrics_val.json").read_text())["brief"] == \
        json.loads((full / "metrics_val.json").read_text())["brief"]
    assert [r["epoch"] for r in _curve(part)] == [r["epoch"] for r in _curve(full)] == [1, 2]
    # ... and its CSV log has the rows of both parts, each once
    rows_full, rows_part = _csv_rows(full), _csv_rows(part)
    assert [(r["epoch"], r["step"]) for r in rows_part] == [(r["epoch"], r["step"]) for r in rows_full]
    filled = [[{k: v for k, v in r.items() if v} for r in rows] for rows in (rows_before, rows_part)]
    assert filled[1][:len(rows_before)] == filled[0] and len(rows_part) > len(rows_before)
    for ra, rb in zip(rows_full, rows_part):
        for key in ra:
            if ra[key]:
                assert float(ra[key]) == pytest.approx(float(rb[key]), abs=1e-5), key


@pytest.mark.parametrize("epoch", [1, 2])
def test_a_second_ctrl_c_stops_at_once_without_saving(uninterrupted, tmp_path, capsys, monkeypatch, epoch):
    steps = uninterrupted["steps"]
    _press_ctrl_c_after(monkeypatch, (epoch - 1) * steps + 2, times=2)
    part = tmp_path / "part"
    assert main(["train", uninterrupted["config"], "--set", f"train.out_dir={part}"]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if epoch == 1:
        assert "nothing to resume" in err and not (part / "checkpoints/last.ckpt").exists()
    else:  # the state of the end of epoch 1 stays
        assert f"the last saved state (step {steps}) is in {part / 'checkpoints/last.ckpt'}" in err
        assert torch.load(part / "checkpoints/last.ckpt", weights_only=True)["global_step"] == steps


def test_ctrl_c_before_training_started_says_there_is_nothing_to_resume(toy, data, tmp_path, capsys, monkeypatch):
    from momentkit.training import runner

    def interrupted_build(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "build", interrupted_build)
    config = _config(tmp_path, data)
    assert main(["train", config]) == 130
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["train", config, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "nothing to resume" in err and "without --resume" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------ devices
@pytest.mark.parametrize("option,field", [("train.accelerator=gpu", "train.accelerator"),
                                          ("train.accelerator=cuda", "train.accelerator"),
                                          ("train.devices=[0]", "train.devices")])
def test_a_gpu_that_is_not_there_is_refused_before_data_naming_the_option(tmp_path, capsys, monkeypatch, option,
                                                                          field):
    monkeypatch.setattr(devices, "_cuda_count", lambda: 0)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": _missing_data(), "model": {"name": "moment_detr"},
                                      "train": {"out_dir": str(tmp_path / "run")}}))
    assert main(["train", str(config), "--set", option]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"'{field}'" in err and "available: cpu" in err
    assert not (tmp_path / "run").exists()


def test_more_devices_than_there_are():
    with pytest.raises(InputError, match="has 1 CUDA device") as e:
        with pytest.MonkeyPatch.context() as m:
            m.setattr(devices, "_cuda_count", lambda: 1)
            devices.check_accelerator("auto", 2)
    assert e.value.field == "train.devices" and "cuda (1 device)" in e.value.message
    with pytest.MonkeyPatch.context() as m:
        m.setattr(devices, "_cuda_count", lambda: 2)
        assert devices.check_accelerator("gpu", [1]) == "cuda"
        assert devices.check_device("cuda:1") == torch.device("cuda", 1)
        with pytest.raises(InputError, match="asks for device 2"):
            devices.check_device("cuda:2")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="available: cpu") as e:
            devices.check_device("cuda")
        assert e.value.field == "--device"
    assert devices.check_accelerator("cpu", 2) == "cpu"  # two CPU processes
    assert devices.check_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="unknown accelerator 'gpus'; expected one of: auto, cpu, gpu"):
        devices.check_accelerator("gpus", 1)
    with pytest.raises(InputError, match="got 0") as e:
        devices.check_accelerator("cpu", 0)
    assert e.value.field == "train.devices"


# ------------------------------------------------------------------------------------ messages
def test_a_folder_given_as_the_config_says_so(tmp_path, capsys):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "a.yaml").write_text("model: {name: moment_detr}\n")
    assert main(["train", str(tmp_path / "configs")]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "a.yaml" in err and "not found" not in err


def test_a_bad_set_value_blames_the_set_option_not_the_file(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": _missing_data(), "model": {"name": "moment_detr"}}))
    for option, field in (("train.lr=fast", "train.lr"), ("train.lrr=1", "train.lrr"),
                          ("model.hiden_dim=3", "model.hiden_dim"), ("train.lr.x=1", "train.lr")):
        assert main(["train", str(config), "--set", option]) == 2, option
        err = capsys.readouterr().err
        assert f"--set {option}" in err and f"'{field}'" in err and str(config) not in err, err
    # a value of the file itself is still the file's
    config.write_text(yaml.safe_dump({"data": _missing_data(), "model": {"name": "moment_detr"},
                                      "train": {"lr": "fast"}}))
    assert main(["train", str(config), "--set", "train.epochs=3"]) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "--set" not in err


def test_an_unknown_model_option_lists_the_options_and_leaves_no_run_folder(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": _missing_data(), "model": {"name": "moment_detr", "hiden_dim": 3},
                                      "train": {"out_dir": str(tmp_path / "run")}}))
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "'model.hiden_dim'" in err and "expected one of:" in err and "hidden_dim" in err
    assert not (tmp_path / "run").exists()


def test_data_that_disagrees_with_the_model_leaves_no_run_folder(toy, data, tmp_path, capsys):
    config = _config(tmp_path, data)
    assert main(["train", config, "--set", "model.video_dim=7"]) == 2
    err = capsys.readouterr().err
    assert "model.video_dim" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


class Foreign:
    """A class a checkpoint could pickle: loading it would run code."""


def test_a_file_that_is_not_a_checkpoint_is_one_short_line(toy, data, tmp_path, capsys):
    pickled = tmp_path / "foreign.ckpt"
    torch.save({"x": Foreign()}, pickled)
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    weights = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, weights)
    config = _config(tmp_path, data)
    for path in (pickled, text, weights, Path(config)):
        for args in (["test", config, "--ckpt", str(path)], ["train", config, "--resume", str(path)]):
            assert main(args) == 2, args
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and f"{path}: not a momentkit" in err, err
            assert "weights_only" not in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------ quiet by default
def _cli(*args: str) -> subprocess.Popen:
    """``momentkit ARGS`` in a fresh process, its output piped as in a log file (not a terminal)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "momentkit.cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


NOISE = ("GPU available", "TPU available", "Tip:", "litlogger", "LeafSpec", "is deprecated", "Trainer.fit",
         "v_num", "\r", "Epoch ", "site-packages", "DeprecationWarning", "FutureWarning", "UserWarning")


def test_a_default_run_prints_progress_lines_and_metrics_and_nothing_from_dependencies(tmp_path):
    """stdout is a pipe here, as in a log file: one line per epoch instead of a progress bar, the metric
    table, and nothing of what Lightning or other dependencies print for their own developers."""
    data = tmp_path / "data"
    cfg = get_preset("qvh-small").override(["num_videos={train: 8, val: 4}", "video_dims=[8]", "text_dim=8"])
    summary = synthesize(cfg, data, seed=0)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"train": str(data / "annotations/train.jsonl"), "val": str(data / "annotations/val.jsonl"),
                 "video_features": [str(data / f) for f in summary["video_features"]],
                 "text_features": str(data / summary["text_features"]), "batch_size": 8},
        "model": {"name": "moment_detr", "hidden_dim": 16, "ffn_dim": 16, "nheads": 2, "num_queries": 4,
                  "enc_layers": 1, "dec_layers": 1, "t2v_layers": 1},
        "train": {"epochs": 2, "accelerator": "cpu", "threads": 1, "out_dir": str(tmp_path / "run")}}))
    run = _cli("train", str(config))
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    lines = out.splitlines()
    assert [line.split("  ")[0] for line in lines[:2]] == ["epoch 1/2", "epoch 2/2"]
    assert any(line.startswith("│ MR-full-mAP ") for line in lines)  # the metric table is not empty
    for noise in NOISE:
        assert noise not in out + err, noise


@pytest.mark.filterwarnings("ignore::FutureWarning")  # what --verbose lets through, e.g. from lightning's _pytree
def test_verbose_shows_what_lightning_logs(toy, data, tmp_path, caplog):
    import logging

    logger = logging.getLogger("lightning.pytorch")  # may not propagate to the root logger
    logger.addHandler(caplog.handler)
    try:
        assert main(["train", _config(tmp_path, data, epochs=1), "--set", f"train.out_dir={tmp_path / 'a'}"]) == 0
        assert not any("GPU available" in r.getMessage() for r in caplog.records)
        assert main(["train", _config(tmp_path, data, epochs=1), "--set", f"train.out_dir={tmp_path / 'b'}",
                     "--verbose"]) == 0
        assert any("GPU available" in r.getMessage() for r in caplog.records)
    finally:
        logger.removeHandler(caplog.handler)


def test_quiet_mode_hides_dependency_warnings_and_logs_and_restores_them():
    import logging

    from momentkit.cli.main import build_parser, quiet_dependencies

    assert build_parser().parse_args(["--verbose", "train", "c.yaml"]).verbose
    assert build_parser().parse_args(["train", "c.yaml", "--verbose"]).verbose
    assert not build_parser().parse_args(["train", "c.yaml"]).verbose
    lightning_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_dependencies(verbose=False):
            assert not lightning_log.isEnabledFor(logging.INFO)
            warnings.warn_explicit("old API", FutureWarning, "x.py", 1, module="torch.utils._pytree")
            warnings.warn_explicit("few workers", UserWarning, "y.py", 1, module="lightning.pytorch.loops")
            warnings.warn_explicit("ours", UserWarning, "z.py", 1, module="momentkit.training.runner")
        assert [str(w.message) for w in caught] == ["ours"]
        assert lightning_log.isEnabledFor(logging.INFO)
        with quiet_dependencies(verbose=True):
            warnings.warn_explicit("old API", FutureWarning, "x.py", 1, module="torch.utils._pytree")
        assert [str(w.message) for w in caught] == ["ours", "old API"]


# ------------------------------------------------------------------------------------ single-moment protocols
SINGLE = sorted(p for p in (REPO / "configs").rglob("*.yaml") if p.parts[-2] != "tal"
                and (yaml.safe_load(p.read_text()).get("eval") or {}).get("task") == "single")


def test_every_single_moment_config_suppresses_near_duplicate_windows():
    from momentkit.training.config import load_config

    assert len(SINGLE) >= 4
    for path in SINGLE + [REPO / "configs/qd_detr/charades_sta.yaml", REPO / "configs/qd_detr/tacos.yaml"]:
        cfg = load_config(path)
        assert cfg.eval.task == "single" and cfg.eval.nms is not None, path


@pytest.mark.parametrize("name", ["moment_detr/charades_sta.yaml", "synthetic/tacos_small_moment_detr.yaml"])
def test_r5_counts_a_second_distinct_window_that_near_duplicates_would_hide(name):
    """Five near-copies of a wrong window outscore the right one: without NMS R5 = R1 = 0; with the
    config's NMS the right window is second, so R5 > R1."""
    from momentkit.metrics import evaluate_single_moment
    from momentkit.models.postprocess import postprocess
    from momentkit.tasks import get_task
    from momentkit.training.config import load_config

    cfg = load_config(REPO / "configs" / name)
    wrong = [[0.20 + d, 0.20] for d in (0.0, 0.005, -0.005, 0.01, -0.01)]  # (centre, width), IoU > 0.85 apart
    spans = torch.tensor([wrong + [[0.75, 0.20]]])  # the right window last
    probs = torch.tensor([0.95, 0.94, 0.93, 0.92, 0.91, 0.60])
    logits = torch.stack([probs.log(), (1 - probs).log()], -1)[None]  # softmax: foreground first
    outputs = {"pred_spans": spans, "pred_logits": logits, "saliency_scores": torch.zeros(1, 10)}
    batch = {"video_mask": torch.ones(1, 10), "meta": [{"qid": 1, "vid": "v", "duration": 100.0}]}
    gt = [{"qid": 1, "vid": "v", "duration": 100.0, "relevant_windows": [[65.0, 85.0]]}]
    raw = evaluate_single_moment(postprocess(outputs, batch, max_windows=10), gt)
    assert raw["R5@0.5"] == raw["R1@0.5"] == 0.0
    options = get_task("grounding").postprocess_options(cfg)
    metrics = evaluate_single_moment(postprocess(outputs, batch, **options), gt)
    assert metrics["R1@0.5"] == 0.0 and metrics["R5@0.5"] == 100.0
