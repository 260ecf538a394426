"""The one engine: a model registered from inside a test trains through the CLI for every task, with the
same run layout; configs fail at load time, before any data is opened, naming the key."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from momentkit.cli.main import main
from momentkit.errors import InputError
from momentkit.models.contract import Model
from momentkit.models.registry import register_model, unregister_model
from momentkit.synth import get_preset, synthesize
from momentkit.training.config import load_config
from toys import ToyDetection, ToyDetectionConfig, ToyGrounding, ToyGroundingConfig

pytestmark = pytest.mark.usefixtures("one_thread")

LAYOUT = ("config.yaml", "checkpoints/best.ckpt", "checkpoints/last.ckpt", "model.safetensors", "curve.csv",
          "curve.png", "metrics_val.json", "logs/csv/metrics.csv")


@pytest.fixture
def toy_models():
    register_model("toy_grounding", config=ToyGroundingConfig, task="grounding")(
        lambda **o: ToyGrounding(ToyGroundingConfig(**o)))
    register_model("toy_detection", config=ToyDetectionConfig, task="detection")(
        lambda **o: ToyDetection(ToyDetectionConfig(**o)))
    yield
    unregister_model("toy_grounding")
    unregister_model("toy_detection")


# ------------------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def grounding_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("qvh")
    cfg = get_preset("qvh-small").override(["num_videos={train: 12, val: 6}", "video_dims=[8]", "text_dim=8"])
    summary = synthesize(cfg, out, seed=0)
    return {"train": str(out / "annotations/train.jsonl"), "val": str(out / "annotations/val.jsonl"),
            "video_features": [str(out / f) for f in summary["video_features"]],
            "text_features": str(out / summary["text_features"]), "batch_size": 8}


@pytest.fixture(scope="module")
def detection_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("tal")
    cfg = dataclasses.replace(get_preset("tal-small"), num_videos={"train": 6, "val": 4}, duration=(30.0, 40.0))
    synthesize(cfg, out, seed=0, preset="tal-small")
    return {"source": str(out / "annotations/source.json"), "video_features": [str(out / "features/video_features")],
            "feat_stride_seconds": 1.0, "feat_offset_seconds": 0.5, "max_seq_len": 64}


def _write(tmp_path, config: dict):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


TRAIN = {"epochs": 1, "progress": False, "accelerator": "cpu"}


def test_toy_model_of_each_task_trains_through_the_cli(toy_models, grounding_data, detection_data, tmp_path,
                                                      capsys):
    configs = {
        "grounding": {"task": "grounding", "data": grounding_data, "model": {"name": "toy_grounding"}},
        "detection": {"task": "detection", "data": detection_data, "model": {"name": "toy_detection"}},
    }
    for task, config in configs.items():
        out = tmp_path / task
        config["train"] = {**TRAIN, "out_dir": str(out)}
        assert main(["train", _write(tmp_path, config)]) == 0, task
        for name in LAYOUT:
            assert (out / name).is_file(), (task, name)
        saved = yaml.safe_load((out / "config.yaml").read_text())
        assert saved["task"] == task and saved["model"]["name"] == f"toy_{task}"
        curve = (out / "curve.csv").read_text().splitlines()
        assert curve[0].startswith("epoch,step,minutes,") and len(curve) == 2
        metrics = json.loads((out / "metrics_val.json").read_text())["brief"]
        monitor = "MR-full-mAP" if task == "grounding" else "source/val/average-mAP"
        assert monitor in metrics and monitor in curve[0].split(",")
        # momentkit test on the same split reproduces the metrics written by train, from the checkpoint
        # or from the run folder (its model.safetensors, loaded as momentkit predict loads it)
        tested = tmp_path / f"{task}_test"
        config["train"]["out_dir"] = str(tested)
        ckpt = out / "checkpoints/best.ckpt" if task == "grounding" else out
        assert main(["test", _write(tmp_path, config), "--ckpt", str(ckpt)]) == 0
        assert json.loads((tested / "metrics_val.json").read_text())["brief"] == metrics
    out = capsys.readouterr().out
    assert "MR-full-mAP" in out and "source/val/average-mAP" in out  # the printed tables are not empty
    assert (tmp_path / "grounding" / "predictions_val.jsonl").is_file()
    assert (tmp_path / "detection" / "predictions_source_val.json").is_file()


def test_builtin_models_follow_the_contract():
    from momentkit.models import create_model

    for name, options in {"moment_detr": {}, "qd_detr": {}, "sdst": {"hidden_dim": 32, "nheads": 4},
                          "tal_detector": {"input_dim": 8, "num_classes": 2}}.items():
        assert isinstance(create_model(name, **options), Model), name


# ------------------------------------------------------------------------------------ load-time checks
def _missing_data(task: str) -> dict:
    """Data sections pointing at files that do not exist: a check that opened them would fail differently."""
    if task == "grounding":
        return {"train": "/nonexistent/train.jsonl", "val": "/nonexistent/val.jsonl",
                "video_features": ["/nonexistent/v"], "text_features": "/nonexistent/t"}
    return {"source": "/nonexistent/source.json", "video_features": ["/nonexistent/v"]}


@pytest.mark.parametrize("task,model,key,value", [
    ("grounding", "moment_detr", "hiden_dim", 64),
    ("grounding", "sdst", "num_queries", "ten"),
    ("detection", "tal_detector", "nek", "sgp"),
])
def test_misspelt_or_ill_typed_model_option_fails_before_data(tmp_path, capsys, task, model, key, value):
    path = _write(tmp_path, {"task": task, "data": _missing_data(task), "model": {"name": model, key: value},
                             "train": {"out_dir": str(tmp_path / "run")}})
    with pytest.raises(InputError) as e:
        load_config(path)
    assert e.value.field == f"model.{key}" and e.value.path == path
    assert main(["train", path]) == 2
    err = capsys.readouterr().err
    assert f"model.{key}" in err and path in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing was started


def test_nested_model_option_names_its_dotted_key(tmp_path):
    path = _write(tmp_path, {"task": "detection", "data": _missing_data("detection"),
                             "model": {"name": "tal_detector", "align": {"mode": "sada", "wieght": 1.0}}})
    with pytest.raises(InputError) as e:
        load_config(path)
    assert e.value.field == "model.align.wieght"


@pytest.mark.parametrize("task,model,monitor", [("grounding", "moment_detr", "MR-full-mAPP"),
                                                ("detection", "tal_detector", "target/val/average-mAP")])
def test_monitor_the_task_does_not_produce_fails_before_data(tmp_path, capsys, task, model, monitor):
    path = _write(tmp_path, {"task": task, "data": _missing_data(task), "model": {"name": model},
                             "train": {"monitor": monitor, "out_dir": str(tmp_path / "run")}})
    with pytest.raises(InputError) as e:
        load_config(path)
    assert e.value.field == "train.monitor" and monitor in e.value.message
    assert main(["train", path]) == 2
    assert "train.monitor" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_monitor_of_every_protocol_is_accepted():
    data = _missing_data("grounding")
    for protocol, monitor in (("grounding", "HL-min-VeryGood-mAP"), ("single", "mIoU"), ("multimoment", "mAP_m@0.5")):
        cfg = load_config(None, base={"data": data, "model": {"name": "moment_detr"},
                                      "eval": {"task": protocol}, "train": {"monitor": monitor}})
        assert cfg.train.monitor == monitor
    cfg = load_config(None, base={"task": "detection", "data": {**_missing_data("detection"), "target": "/x.json"},
                                  "model": {"name": "tal_detector"}, "eval": {"domains": ["source", "target"]},
                                  "train": {"monitor": "target/val/mAP@0.3"}})
    assert cfg.train.monitor == "target/val/mAP@0.3"


def test_task_and_model_must_agree(tmp_path):
    with pytest.raises(InputError) as e:
        load_config(None, base={"task": "detection", "data": _missing_data("detection"), "model": {"name": "sdst"}})
    assert e.value.field == "model.name" and "grounding model" in e.value.message
    with pytest.raises(InputError) as e:
        load_config(None, base={"task": "segmentation", "model": {"name": "sdst"}})
    assert e.value.field == "task" and "detection" in e.value.message and "grounding" in e.value.message


def test_alignment_without_target_videos_is_refused():
    with pytest.raises(InputError) as e:
        load_config(None, base={"task": "detection", "data": _missing_data("detection"),
                                "model": {"name": "tal_detector", "align": {"mode": "sada"}}})
    assert e.value.field == "model.align.mode"


def test_train_tal_is_a_deprecated_alias(toy_models, detection_data, tmp_path, capsys):
    config = {"task": "detection", "data": detection_data, "model": {"name": "toy_detection"},
              "train": {**TRAIN, "out_dir": str(tmp_path / "run")}}
    assert main(["train-tal", _write(tmp_path, config)]) == 0
    assert "deprecated" in capsys.readouterr().err
    assert (tmp_path / "run" / "metrics_val.json").is_file()


@pytest.mark.parametrize("key,value,message", [
    ("train.epochs", 0, "must be > 0"), ("train.lr", -1.0, "must be > 0"), ("train.eval_every", 0, "must be > 0"),
    ("train.ema_decay", 1.0, "below 1"), ("data.batch_size", 0, "must be > 0"), ("data.max_v_len", 0, "must be > 0"),
    ("eval.max_windows", 0, "must be > 0"), ("eval.nms_threshold", 1.5, "[0, 1]"),
])
def test_degenerate_numbers_fail_at_load_time(key, value, message):
    section, name = key.split(".")
    base = {"data": _missing_data("grounding"), "model": {"name": "moment_detr"}}
    base.setdefault(section, {})[name] = value
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")) as e:
        load_config(None, base=base)
    assert e.value.field == key
