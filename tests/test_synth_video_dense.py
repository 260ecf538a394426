"""Tiny raw-video dense-detection data: files, annotations, decoded frames and their content."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest

pytest.importorskip("av")

from momentkit.data.annotations import read_annotations  # noqa: E402
from momentkit.data.records import DetectionSample  # noqa: E402
from momentkit.errors import InputError  # noqa: E402
from momentkit.synth.video_dense import (  # noqa: E402
    COLORS,
    generate_video_dense,
    plan_video_dense,
    shape_centre,
)
from momentkit.video.decode import probe, read_frames  # noqa: E402
from momentkit.video.testing import BACKGROUND, frame_number_of  # noqa: E402


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("video_dense")
    t0 = time.perf_counter()
    summary = generate_video_dense(out, seed=0)
    seconds = time.perf_counter() - t0
    print(f"default video-dense set: {sum(c['videos'] for c in summary['counts'].values())} videos in {seconds:.2f} s")
    return out, summary, seconds


def _decoded(out, vid):
    return read_frames(out / "videos" / f"{vid}.mp4").frames


def test_files_and_summary(dataset):
    out, summary, seconds = dataset
    assert seconds < 20  # about 1 s alone on one core; loose for a shared machine
    vids = sorted(p.stem for p in (out / "videos").glob("*.mp4"))
    assert vids == [f"train_{i:03d}" for i in range(16)] + [f"val_{i:03d}" for i in range(8)]
    classes = (out / "classes.txt").read_text().splitlines()
    assert classes == ["red square", "red circle", "green square", "green circle", "blue square", "blue circle"]
    written = json.loads((out / "synth.json").read_text())
    assert written["seed"] == 0 and written["classes"] == classes
    assert written["counts"]["train"]["videos"] == 16 and written["counts"]["val"]["videos"] == 8
    for c in written["counts"].values():  # overlapping activities and empty frames both occur
        assert c["multi_label_frames"] > 0 and c["background_frames"] > 0
    assert written["config"]["fps"] == 8 and written["config"]["size"] == 64


def test_annotations_read_back(dataset):
    out, summary, _ = dataset
    classes = summary["classes"]
    samples = read_annotations(out / "annotations" / "dense.json")
    assert all(isinstance(s, DetectionSample) for s in samples) and len(samples) == 24
    assert {s.subset for s in samples} == {"training", "validation"}
    assert sum(s.subset == "training" for s in samples) == 16
    plans = {p.vid: p for p in plan_video_dense(seed=0)}
    for s in samples:
        plan = plans[s.video]
        assert s.fps == 8 and 4.0 <= s.duration <= 8.0
        assert s.duration == pytest.approx(plan.num_frames / 8)
        assert s.segments, s.video
        for seg in s.segments:
            assert seg.label in classes and seg.label_id == classes.index(seg.label)
            assert 0 <= seg.start < seg.end <= s.duration
            assert (seg.start * 8) == pytest.approx(round(seg.start * 8))  # whole frames
        # per-frame targets rebuilt from the segments match the plan's
        n = plan.num_frames
        t = np.arange(n) / 8
        dense = np.zeros((n, len(classes)), np.float32)
        for seg in s.segments:
            dense[(t >= seg.start - 1e-9) & (t < seg.end - 1e-9), seg.label_id] = 1
        assert np.array_equal(dense, plan.labels(len(classes)))


def test_decoded_frame_count_matches_duration(dataset):
    out, _, _ = dataset
    for k, s in enumerate(read_annotations(out / "annotations" / "dense.json")):
        path = out / "videos" / f"{s.video}.mp4"
        n = round(s.duration * 8)
        info = probe(path)
        assert (info.width, info.height, info.fps) == (64, 64, 8.0)
        assert info.num_frames in (None, n)
        chunk = read_frames(path)
        assert len(chunk) == n
        assert np.array_equal(frame_number_of(chunk.frames, n), np.arange(n))
        if k < 4:  # sampling at the video's rate gives one sample per frame
            assert len(read_frames(path, fps=8)) == n


def test_frames_show_the_labelled_shapes(dataset):
    out, _, _ = dataset
    checked = 0
    for plan in plan_video_dense(seed=0):
        frames = _decoded(out, plan.vid)
        labels = plan.labels(6)
        for shape, (a, b) in zip(plan.shapes, plan.frame_spans):
            for i in (a, (a + b) // 2, b - 1):
                x, y = shape_centre(shape, i / plan.fps, 64, 64)
                x, y = int(round(x)), int(round(y))
                patch = frames[i, y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).astype(float).mean(0)
                assert np.abs(patch - np.array(shape.color)).max() < 30, (plan.vid, shape.caption, i, patch)
                checked += 1
        scene = frames[:, :, 16:].astype(int)  # right of the marker strip
        for i in np.flatnonzero(labels.sum(1) == 0):  # unlabelled frames show only the background
            assert np.abs(scene[i] - BACKGROUND).max() < 30, (plan.vid, i)
        for i in np.flatnonzero(labels.sum(1) > 0)[:3]:
            # the colour seen is the colour of a labelled class, with as many coloured pixels as shapes
            seen = scene[i].reshape(-1, 3)
            seen = seen[np.abs(seen - BACKGROUND).max(1) > 60]
            names = [f"{c} {k}" for c in ("red", "green", "blue") for k in ("square", "circle")]
            allowed = {COLORS[names[j].split()[0]] for j in np.flatnonzero(labels[i])}
            nearest = {min(allowed | set(COLORS.values()), key=lambda c: np.abs(np.array(c) - px).sum())
                       for px in seen}
            assert nearest <= allowed, (plan.vid, i)
    assert checked > 100


def test_deterministic(tmp_path):
    opts = dict(num_videos={"train": 2, "val": 1}, min_duration=3.0, max_duration=4.0)
    a = generate_video_dense(tmp_path / "a", seed=5, **opts)
    b = generate_video_dense(tmp_path / "b", seed=5, **opts)
    generate_video_dense(tmp_path / "c", seed=6, **opts)
    assert a["counts"] == b["counts"]

    def digest(folder):
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    da, db = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert da.keys() == db.keys() and da["annotations/dense.json"] == db["annotations/dense.json"]
    for name in da:
        if name.endswith(".mp4"):  # same pixels, whatever the encoder's threading
            assert np.array_equal(_decoded(tmp_path / "a", name[7:-4]), _decoded(tmp_path / "b", name[7:-4]))
    assert digest(tmp_path / "c")["annotations/dense.json"] != da["annotations/dense.json"]


def test_each_video_has_its_own_random_stream():
    small = plan_video_dense(seed=1, num_videos={"train": 3, "val": 1})
    large = plan_video_dense(seed=1, num_videos={"val": 4, "train": 5})
    by_vid = {p.vid: p for p in large}
    for p in small:
        assert by_vid[p.vid] == p


def test_options(tmp_path):
    s = generate_video_dense(tmp_path, seed=0, num_videos={"train": 1}, size=32, fps=5, colors=("red", "yellow"),
                             kinds=("circle",), min_duration=2.0, max_duration=2.0, min_length=0.4,
                             max_length=1.0)
    assert s["classes"] == ["red circle", "yellow circle"]
    info = probe(tmp_path / "videos" / "train_000.mp4")
    assert (info.width, info.height, info.fps) == (32, 32, 5.0)
    assert len(read_frames(tmp_path / "videos" / "train_000.mp4")) == 10
    for bad in (dict(colors=("purple",)), dict(size=63), dict(num_videos={"train": -1}),
                dict(min_duration=5.0, max_duration=4.0), dict(kinds=("triangle",))):
        with pytest.raises(InputError):
            plan_video_dense(**bad)


def test_trimmed_clips_for_raw_frame_pretraining(tmp_path):
    from momentkit.data.annotations import read_annotations
    from momentkit.synth.video_dense import generate_video_clips
    from momentkit.video.decode import probe

    summary = generate_video_clips(tmp_path, seed=0, num_videos={"train": 4, "val": 2}, size=32)
    clips = read_annotations(tmp_path / "annotations" / "clips.csv")
    assert [c.video for c in clips] == [f"clip_train_{i:04d}" for i in range(4)] + ["clip_val_0000", "clip_val_0001"]
    assert all(c.duration == 2.0 and c.segments[0].start == 0 and c.segments[0].end == 2.0 for c in clips)
    assert {c.segments[0].label for c in clips} <= set(summary["classes"])
    info = probe(tmp_path / "videos" / "clip_train_0000.mp4")
    assert info.num_frames == 16 and info.width == 32
