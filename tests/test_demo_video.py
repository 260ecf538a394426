"""``momentkit demo --video`` and its preset of generated video files (``moments-video-small``): a tiny
run goes from generated MP4s through ``momentkit extract`` and training to a model that
``momentkit predict VIDEO "query"`` uses by default on a new generated video."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("transformers")

from momentkit.cli.main import main  # noqa: E402
from momentkit.data.annotations import read_annotations  # noqa: E402
from momentkit.errors import InputError  # noqa: E402
from momentkit.synth.video_moments import (  # noqa: E402
    VideoMomentsConfig,
    generate_video_moments,
    make_moment_video,
    plan_video_moments,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_plan_is_deterministic_one_moment_per_query_on_the_clip_grid():
    plans = plan_video_moments(seed=3, num_videos={"train": 12, "val": 3})
    again = plan_video_moments(seed=3, num_videos={"train": 12, "val": 3})
    assert [(p.vid, p.queries, p.windows) for p in plans] == [(p.vid, p.queries, p.windows) for p in again]
    assert plans != plan_video_moments(seed=4, num_videos={"train": 12, "val": 3})
    assert [p.vid for p in plans][-3:] == ["val_000", "val_001", "val_002"]
    for p in plans:
        assert 2 <= len(p.queries) <= 4 and len(p.queries) == len(p.windows) == len(p.shapes)
        names = [" ".join(q.split()[1:3]) for q in p.queries]  # "red circle": unique within a video
        assert len(set(names)) == len(names)
        for q, (s, e), shape in zip(p.queries, p.windows, p.shapes):
            assert s % 2 == 0 and e % 2 == 0 and 4 <= e - s <= 10 and 0 <= s < e <= p.duration
            assert q.split()[-1] == ("right" if shape.end_xy[0] > shape.start_xy[0] else "left")
            assert (shape.start, shape.end) == (s, e)
        assert 16 <= p.duration <= 32


def test_config_is_checked():
    with pytest.raises(InputError, match="colours must be distinct"):
        VideoMomentsConfig(colors=("red", "purple"))
    with pytest.raises(InputError, match="does not fit"):
        VideoMomentsConfig(duration=(4, 6), length=(8, 10))
    with pytest.raises(InputError, match="unknown setting"):
        generate_video_moments("unused", bogus=1)


def test_generated_files_read_as_grounding_annotations_and_videos(tmp_path):
    from momentkit.video.decode import probe

    summary = generate_video_moments(tmp_path / "d", seed=1, num_videos={"train": 3, "val": 1})
    assert summary["generator"] == "video-moments" and summary["counts"]["train"]["videos"] == 3
    train = read_annotations(tmp_path / "d/annotations/train.jsonl")
    val = read_annotations(tmp_path / "d/annotations/val.jsonl")
    qids = [s.qid for s in train + val]
    assert len(set(qids)) == len(qids) == summary["counts"]["train"]["queries"] + summary["counts"]["val"]["queries"]
    info = probe(tmp_path / "d/videos/train_000.mp4")
    assert abs(info.duration - train[0].duration) < 0.5
    assert json.loads((tmp_path / "d/synth.json").read_text())["seed"] == 1


def test_new_example_video_is_apart_from_the_dataset(tmp_path):
    video = make_moment_video(tmp_path / "new.mp4", seed=0)
    assert (tmp_path / "new.mp4").stat().st_size > 0 and video.queries
    assert video.queries != plan_video_moments(seed=0, num_videos={"train": 1})[0].queries or \
        video.windows != plan_video_moments(seed=0, num_videos={"train": 1})[0].windows


def test_demo_video_ends_with_a_model_that_predict_uses_on_a_new_video(tmp_path, monkeypatch, capsys):
    from momentkit.predict import Predictor

    monkeypatch.chdir(tmp_path)
    argv = ["demo", "--video", "--num-videos", "4", "--epochs", "1", "--set", "train.progress=false"]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    run = Path("runs/demo-video/run")
    assert (run / "model.safetensors").is_file() and Path("runs/demo-video/timelines.png").is_file()
    assert "predicted from the file alone" in out and "docs/own_data.md" in out
    # the model carries the recipe: the random CLIP saved in the run's folder, 2 s clips
    recipe = Predictor.from_checkpoint(run).recipe
    part = recipe["video"][0]
    assert part["backbone"] == "clip" and part["clip_len"] == 2.0
    assert Path(part["model_path"]) == (tmp_path / "runs/demo-video/backbone/clip-random").resolve()
    assert recipe["text"]["source"] == "extract"

    # predict on a video generated afterwards, without --ckpt: the demo --video model is the default
    video = make_moment_video(tmp_path / "generated.mp4", seed=7)
    code = main(["predict", "generated.mp4", video.queries[0], "--save", "p.jsonl"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "momentkit demo --video" in printed.out
    row = json.loads(Path("p.jsonl").read_text().splitlines()[0])
    moments = np.asarray(row["pred_relevant_windows"])
    assert moments.shape[1] == 3 and (moments[:, :2] <= video.duration + 1e-6).all()

    # a second run re-uses the videos, the random CLIP and the features
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert "re-using" in again and "0 videos extracted, 5 already done" in again


def test_demo_options_of_video_need_video(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--num-videos", "3"]) == 2
    assert "field '--num-videos': needs --video" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
