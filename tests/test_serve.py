"""``momentkit serve``: the page's handlers called directly, the running app through Gradio's Python
client (``gradio_client``), and the command as a process. A tiny ``momentkit demo --video`` run is the
model. The real-browser test is tests/test_serve_browser.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("av")
pytest.importorskip("transformers")
gr = pytest.importorskip("gradio")

from conftest import REPO  # noqa: E402
from momentkit.cli.main import main  # noqa: E402
from momentkit.errors import InputError  # noqa: E402
from momentkit.serve import MAX_QUERIES, MomentApp, launch, parse_queries  # noqa: E402
from momentkit.synth.video_moments import make_moment_video  # noqa: E402
from momentkit.video.testing import make_truncated  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """A run of ``momentkit demo --video`` at test size: generated videos, the random CLIP, 1 epoch."""
    out = tmp_path_factory.mktemp("serve") / "demo-video"
    argv = ["demo", "--video", "--out", str(out), "--num-videos", "4", "--epochs", "1", "--set", "train.progress=false"]
    assert main(argv) == 0
    return out / "run"


@pytest.fixture()
def app(demo_run):
    with MomentApp.from_checkpoint(demo_run, device="cpu", max_upload_mb=1.0) as app:
        yield app


def upload(app: MomentApp, src: Path, name: str | None = None) -> Path:
    """What Gradio does with an upload: a copy in the app's upload folder."""
    dst = app.uploads / "abc123" / (name or src.name)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    return dst


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------ handlers
def test_find_moments_draws_timelines_and_lists_moments_then_answers_from_the_cache(app, tmp_path, monkeypatch):
    video = make_moment_video(tmp_path / "new.mp4", seed=5)
    path = upload(app, tmp_path / "new.mp4")
    fractions = []
    png, rows, status = app.find_moments(str(path), "\n".join(video.queries[:2]) + "\n\n", 3,
                                         progress=lambda f, desc=None: fractions.append(f))
    assert Path(png).read_bytes()[:4] == b"\x89PNG" and app._inside(Path(png))
    assert [r[0] for r in rows] == [video.queries[0]] * 3 + [video.queries[1]] * 3
    assert [r[1] for r in rows[:3]] == [1, 2, 3]
    for _, _, s, e, score in rows:
        assert 0 <= s <= e <= video.duration + 1e-6 and isinstance(score, float)
    assert "features extracted" in status and f"{video.duration:.1f} s" in status
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions) and len(fractions) >= 3

    # another query on the same bytes (even under another name): no decoding, the cached features
    real = app.predictor.video_features

    def no_decoding(video, *args, **kwargs):
        assert not isinstance(video, (str, os.PathLike)), "decoded again"
        return real(video, *args, **kwargs)

    monkeypatch.setattr(app.predictor, "video_features", no_decoding)
    again = upload(app, path, name="renamed.mp4")
    _, rows2, status2 = app.find_moments(str(again), video.queries[0], 2)
    assert "features from the cache" in status2 and len(rows2) == 2
    assert "features cached" in app.inspect(str(again))


def test_a_long_video_goes_through_the_windows(app):
    long = Path(app.examples[1][0])  # the longer generated example, more than one window of the model
    _, rows, status = app.find_moments(str(long), app.examples[1][1], 2)
    assert " windows;" in status and rows
    seconds = float(status.split(": ")[1].split(" s")[0])
    assert seconds > app.predictor.window * float(app.predictor.config.data.clip_len)
    assert max(r[3] for r in rows) <= seconds + 1e-6


def test_examples_are_generated_videos_with_their_queries(app):
    assert len(app.examples) == 2
    for path, queries in app.examples:
        assert Path(path).is_file() and app._inside(Path(path)) and queries.strip()
        app.check_video(path)


def test_uploads_are_checked_by_size_and_by_decoding_not_by_name(app, tmp_path):
    good = make_moment_video(tmp_path / "good.mp4", seed=1)
    assert app.check_video(str(upload(app, tmp_path / "good.mp4", name="clip.data"))).name == "clip.data"
    big = app.uploads / "big" / "big.mp4"
    big.parent.mkdir()
    big.write_bytes(b"\0" * (app.max_upload_bytes + 1))
    with pytest.raises(InputError, match="accepts videos up to 1 MB"):
        app.find_moments(str(big), "a red circle moves left")
    text = app.uploads / "t" / "notes.mp4"
    text.parent.mkdir()
    text.write_text("not a video\n")
    truncated = make_truncated(tmp_path / "good.mp4", app.uploads / "c" / "cut.mp4", 0.3)
    for bad in (text, truncated):
        with pytest.raises(InputError, match="cannot open video|could be decoded") as e:
            app.find_moments(str(bad), "a red circle moves left")
        assert str(app.work_dir) not in app.public_message(e.value) and bad.name in app.public_message(e.value)
    assert good.queries


def test_files_outside_the_working_folder_are_refused(app, tmp_path):
    make_moment_video(tmp_path / "elsewhere.mp4", seed=2)
    for path in (tmp_path / "elsewhere.mp4", REPO / "pyproject.toml", app.uploads / ".." / ".." / "x.mp4",
                 Path("/etc/hostname")):
        with pytest.raises(InputError, match="not uploaded to this page"):
            app.check_video(str(path))
    with pytest.raises(InputError, match="upload a video first"):
        app.find_moments(None, "a query")


def test_queries_one_per_line_within_limits():
    assert parse_queries(" a red circle \n\n the blue square slides left\n") == \
        ["a red circle", "the blue square slides left"]
    with pytest.raises(InputError, match="at least one query"):
        parse_queries(" \n ")
    with pytest.raises(InputError, match=f"at most {MAX_QUERIES} queries"):
        parse_queries("\n".join(f"q{i}" for i in range(MAX_QUERIES + 1)))
    with pytest.raises(InputError, match="characters"):
        parse_queries("x" * 1000)


def test_a_row_click_seeks_to_the_moment_start():
    assert MomentApp.seek(["a red circle", 1, 4.5, 9.0, 0.8]) == 4.5
    assert MomentApp.seek(None) is None and MomentApp.seek(["q"]) is None


def test_close_removes_the_working_folder(demo_run):
    app = MomentApp.from_checkpoint(demo_run, device="cpu")
    work = app.work_dir
    assert work.is_dir() and any(work.rglob("*.mp4"))
    app.close()
    assert not work.exists()


def test_the_page_tells_what_the_demo_model_knows(app):
    text = app.describe()
    assert "knows only the synthetic world" in text and "docs/own_data.md" in text


# ------------------------------------------------------------------------------------ the running app
def test_the_running_app_through_gradio_client(demo_run, tmp_path):
    from gradio_client import Client, handle_file

    video = make_moment_video(tmp_path / "clientvideo.mp4", seed=9)
    truncated = make_truncated(tmp_path / "clientvideo.mp4", tmp_path / "broken.mp4", 0.3)
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (2 << 20))
    port = free_port()
    saved = {k: v for k, v in os.environ.items() if k.startswith("GRADIO_")}
    app = MomentApp.from_checkpoint(demo_run, device="cpu", max_upload_mb=1.0)
    page = launch(app, port=port, block=False, quiet=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"), analytics_enabled=False)
        png, table, status = client.predict(handle_file(str(tmp_path / "clientvideo.mp4")),
                                            "\n".join(video.queries), 3, api_name="/find_moments")
        assert Path(png).read_bytes()[:4] == b"\x89PNG"
        assert table["headers"] == ["query", "#", "start (s)", "end (s)", "score"]
        assert len(table["data"]) == 3 * len(video.queries) and "features extracted" in status
        _, _, status = client.predict(handle_file(str(tmp_path / "clientvideo.mp4")), video.queries[0], 1,
                                      api_name="/find_moments")
        assert "features from the cache" in status
        assert "clips of 2 s" in client.predict(handle_file(str(tmp_path / "clientvideo.mp4")), api_name="/inspect")

        # a corrupted file and an oversize one: an error each, and the server goes on answering
        with pytest.raises(Exception, match="cannot open video|could be decoded"):
            client.predict(handle_file(str(truncated)), "a red circle", 1, api_name="/find_moments")
        with pytest.raises(Exception):
            client.predict(handle_file(str(big)), "a red circle", 1, api_name="/find_moments")
        assert not list(app.uploads.rglob("big.mp4"))  # refused before it was stored
        _, table, _ = client.predict(handle_file(str(tmp_path / "clientvideo.mp4")), video.queries[0], 1,
                                     api_name="/find_moments")
        assert len(table["data"]) == 1

        # only the app's own files are served: not the checkout's, not the system's
        for target in (REPO / "pyproject.toml", Path("/etc/passwd"), app.work_dir / ".." / "x"):
            try:
                code = urllib.request.urlopen(f"{url}gradio_api/file={target}", timeout=10).status
            except urllib.error.HTTPError as e:
                code = e.code
            assert code in (403, 404), (target, code)
    finally:
        page.close()
        app.close()
    assert not app.work_dir.exists()
    assert {k: v for k, v in os.environ.items() if k.startswith("GRADIO_")} == saved  # the app's settings undone


# ------------------------------------------------------------------------------------ the command
def wait_for_line(proc, needle: str, timeout: float) -> str:
    """Lines of the process's stdout until one holds ``needle`` (a failure with its output otherwise)."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if needle in line:
            return line
    proc.kill()
    pytest.fail(f"no {needle!r} from the server: {''.join(seen)}{proc.stderr.read() if proc.stderr else ''}")


def serve_process(ckpt: Path, port: int, *extra: str, cwd: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "momentkit.cli.main", "serve", "--ckpt", str(ckpt),
                             "--port", str(port), "--device", "cpu", *extra], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_serve_listens_on_loopback_and_removes_its_files_when_stopped(demo_run, tmp_path):
    port = free_port()
    proc = serve_process(demo_run, port, cwd=tmp_path)
    try:
        work = Path(wait_for_line(proc, "files in ", timeout=120).split("files in ")[1].split(" (removed")[0])
        assert work.is_dir() and any(work.rglob("example_*.mp4"))
        line = wait_for_line(proc, "http://", timeout=120)
        assert f"http://127.0.0.1:{port}" in line
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
        assert "momentkit" in page
        config = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=10).read())
        assert "find_moments" in json.dumps(config)
        with socket.socket() as s:  # another program cannot take the port while it serves
            with pytest.raises(OSError):
                s.bind(("127.0.0.1", port))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert not work.exists()  # uploads, examples and timelines are gone
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written where it ran


def test_serve_refuses_a_port_in_use(demo_run, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--ckpt", str(demo_run), "--port", str(port), "--device", "cpu"]) == 2
    assert "field '--port': cannot listen on 127.0.0.1" in capsys.readouterr().err


def test_a_model_of_another_task_is_refused(demo_run, monkeypatch, capsys):
    import momentkit.predict

    real = momentkit.predict.load_model_and_config

    def as_other_task(path):
        model, cfg, src = real(path)
        cfg.task = "dense"
        return model, cfg, src

    monkeypatch.setattr(momentkit.predict, "load_model_and_config", as_other_task)
    assert main(["serve", "--ckpt", str(demo_run), "--port", str(free_port()), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert ("field '--ckpt': a dense model (sdst): momentkit serve shows grounding, classification and detection "
            "models") in err
    assert len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------ classification and detection
RED, BLUE = (230, 30, 30), (30, 60, 230)


def build_task_runs(root: Path, runs: tuple[str, ...] = ("cls", "probe", "det")) -> dict:
    """A tiny random CLIP (``make_tiny_clip``), generated videos and three tiny runs on their features
    (``momentkit extract``): VicTR classification (red square / blue circle; 2 s videos, one CLIP
    embedding per 0.25 s), a linear probe on the same features (one output per class), and the pyramid
    detector (6 s videos where a red square, then a blue circle, cross the scene; clips of 0.5 s). The
    last video of each set is the runs' validation video. ``runs``: which of ``cls``, ``probe``, ``det``."""
    import yaml

    from momentkit.video.testing import Shape, make_tiny_clip, make_video

    clip = make_tiny_clip(root / "clip")
    for i in range(4):  # classification
        name = f"{'red' if i % 2 == 0 else 'blue'}_{i}"
        shape = Shape("square", RED, 0.0, 3.0) if i % 2 == 0 else Shape("circle", BLUE, 0.0, 3.0)
        make_video(root / "cls_videos" / f"{name}.mp4", duration=2.0, fps=8, width=48, height=32, shapes=(shape,))
    db = {}
    for i in range(4 if "det" in runs else 0):  # detection
        a = 0.5 + 0.5 * i
        shapes = (Shape("square", RED, a, a + 2.0),
                  Shape("circle", BLUE, a + 2.5, min(6.0, a + 4.5), (0.8, 0.7), (0.2, 0.7)))
        make_video(root / "det_videos" / f"det_{i}.mp4", duration=6.0, fps=4, width=48, height=32, shapes=shapes)
        db[f"det_{i}"] = {"subset": "training" if i < 3 else "validation", "duration": 6.0,
                          "annotations": [{"segment": [sh.start, sh.end],
                                           "label": "red square" if sh.kind == "square" else "blue circle"}
                                          for sh in shapes]}
    (root / "det.json").write_text(json.dumps({"database": db}))
    for kind, clip_len, fps in (("cls", "0.25", "4"), ("det", "0.5", "2"))[: 2 if "det" in runs else 1]:
        assert main(["extract", "--backbone", "clip", "--backbone-model", str(clip),
                     "--videos", str(root / f"{kind}_videos"), "--out", str(root / f"{kind}_feats"),
                     "--clip-len", clip_len, "--fps", fps, "--device", "cpu", "--no-progress"]) == 0
    (root / "labels.csv").write_text("video,label,duration,split\n" + "".join(
        f"{v},{'red square' if v.startswith('red') else 'blue circle'},2,{'train' if int(v[-1]) < 2 else 'val'}\n"
        for v in ("red_0", "blue_1", "red_2", "blue_3")))
    train = {"epochs": 1, "threads": 1, "progress": False}
    cls_data = {"annotations": str(root / "labels.csv"), "video_features": [str(root / "cls_feats")], "frames": 4,
                "eval_views": 2, "batch_size": 2}
    configs = {
        "cls": {"task": "classification", "model": {"name": "victr", "layers": 1, "heads": 2, "proj_dim": 8},
                "data": {**cls_data, "text_model": str(clip), "text_cache": str(root / "text_cache")}},
        "probe": {"task": "classification", "model": {"name": "linear_probe"}, "data": cls_data},
        "det": {"task": "detection", "model": {"name": "tal_detector", "embed_dim": 16, "head_dim": 16, "num_levels": 3,
                                               "drop_path": 0.0},
                "data": {"source": str(root / "det.json"), "video_features": [str(root / "det_feats")],
                         "feat_stride_seconds": 0.5, "feat_offset_seconds": 0.25, "max_seq_len": 16, "batch_size": 2,
                         "eval_batch_size": 1}},
    }
    for name, cfg in ((k, v) for k, v in configs.items() if k in runs):
        cfg["train"] = {**train, "out_dir": str(root / f"{name}_run"), "epochs": 2 if name == "det" else 1}
        (root / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        assert main(["train", str(root / f"{name}.yaml")]) == 0
    return {"root": root, "clip": clip, "cls": root / "cls_run", "probe": root / "probe_run", "det": root / "det_run",
            "cls_video": root / "cls_videos" / "blue_3.mp4", "det_video": root / "det_videos" / "det_3.mp4"}


@pytest.fixture(scope="module")
def task_runs(tmp_path_factory) -> dict:
    return build_task_runs(tmp_path_factory.mktemp("tasks"))


def own_scores(run: Path, video: str) -> list[list]:
    """``[[rank, class, score], ...]`` of the run's own predictions file for a validation video, best first."""
    saved = json.loads((run / "predictions_val.json").read_text())
    scores = saved["results"][video]
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return [[r, saved["classes"][i], scores[i]] for r, i in enumerate(order, 1)]


def test_a_classification_run_ranks_its_classes_as_its_evaluation_does(task_runs):
    with MomentApp.from_checkpoint(task_runs["cls"], examples=False) as app:
        assert app.task == "classification" and app.problem is None
        assert "ranks class names" in app.describe() and "(blue circle, red square)" in app.describe()
        video = upload(app, task_runs["cls_video"])
        png, rows, status = app.rank_classes(str(video), "", 5)
        assert Path(png).read_bytes()[:4] == b"\x89PNG" and app._inside(Path(png))
        want = own_scores(task_runs["cls"], "blue_3")  # the run's validation predictions of this very video
        assert [r[:2] for r in rows] == [w[:2] for w in want]
        assert [r[2] for r in rows] == [pytest.approx(w[2], abs=1e-4) for w in want]
        assert "2 classes (the model's own)" in status and "features extracted" in status
        _, rows1, status1 = app.rank_classes(str(video), None, 1)
        assert rows1 == rows[:1] and "features from the cache" in status1


def test_typed_classes_are_ranked_as_momentkit_classify_ranks_them(task_runs, capsys):
    classes = "yellow triangle, red square, blue circle"
    with MomentApp.from_checkpoint(task_runs["cls"], examples=False) as app:
        _, rows, status = app.rank_classes(str(upload(app, task_runs["cls_video"])), classes, 3)
        assert "3 classes (typed)" in status
        for bad, match in (("red square", "at least two"), ("a, b, a", "'a' is typed twice")):
            with pytest.raises(InputError, match=match):
                app.rank_classes(str(upload(app, task_runs["cls_video"])), bad, 3)
    capsys.readouterr()
    # the run's own `momentkit classify` on the same file: frames at the rate of the run's features, its
    # frames per view and evaluation views
    assert main(["classify", str(task_runs["cls_video"]), "--classes", classes, "--ckpt", str(task_runs["cls"]),
                 "--fps", "4", "--frames-per-view", "4", "--views", "2", "--top-classes", "3",
                 "--text-cache", str(task_runs["root"] / "text_cache"), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out.splitlines()[1:]
    want = [[int(ln.split(".")[0]), ln.split(". ", 1)[1].rsplit(None, 1)[0].strip(), float(ln.split()[-1])]
            for ln in printed]
    assert len(want) == 3 and [r[:2] for r in rows] == [w[:2] for w in want]
    assert [r[2] for r in rows] == [pytest.approx(w[2], abs=2e-4) for w in want]


def test_a_model_with_one_output_per_class_ranks_only_its_own(task_runs):
    with MomentApp.from_checkpoint(task_runs["probe"], examples=False) as app:
        assert app.served.fixed_vocabulary and "ranks only those" in app.describe()
        video = upload(app, task_runs["cls_video"])
        _, rows, _ = app.rank_classes(str(video), "", 5)
        want = own_scores(task_runs["probe"], "blue_3")
        assert [r[:2] for r in rows] == [w[:2] for w in want]
        assert [r[2] for r in rows] == [pytest.approx(w[2], abs=1e-4) for w in want]
        with pytest.raises(InputError, match="one output per training class"):
            app.rank_classes(str(video), "red square, green", 5)


def test_a_detection_run_lists_its_segments_per_class_as_its_evaluation_does(task_runs, tmp_path):
    from momentkit.serve import SHOWN_CLASSES

    with MomentApp.from_checkpoint(task_runs["det"], examples=False) as app:
        assert app.task == "detection" and app.problem is None
        assert "detects segments of 2 action classes" in app.describe()
        png, rows, status = app.detect_segments(str(upload(app, task_runs["det_video"])), 3)
        assert Path(png).read_bytes()[:4] == b"\x89PNG" and app._inside(Path(png))
    saved = json.loads((task_runs["det"] / "predictions_source_val.json").read_text())["results"]["det_3"]
    want: dict[str, list] = {}
    for det in saved:  # best first: the classes in the order of their best segment, 3 segments each
        want.setdefault(det["label"], []).append([*det["segment"], det["score"]])
    want_rows = [[c, i, s, e, p] for c, segs in list(want.items())[:SHOWN_CLASSES] for i, (s, e, p) in
                 enumerate(segs[:3], 1)]
    assert [r[:2] for r in rows] == [w[:2] for w in want_rows] and {r[0] for r in rows} == {"red square", "blue circle"}
    for got, exp in zip(rows, want_rows):
        assert got[2:4] == [pytest.approx(exp[2], abs=0.0051), pytest.approx(exp[3], abs=0.0051)]
        assert got[4] == pytest.approx(exp[4], abs=1e-4) and 0 <= got[2] <= got[3] <= 6.0
    assert f"{len(saved)} segments of 2 classes detected" in status
    assert MomentApp.seek(rows[1]) == rows[1][2]  # a click plays the segment, as a moment
    # the folder of `momentkit export` says its task and recipe as well
    assert main(["export", str(task_runs["det"]), str(tmp_path / "exported")]) == 0
    with MomentApp.from_checkpoint(tmp_path / "exported", examples=False) as app:
        assert app.task == "detection" and app.problem is None
        assert app.detect_segments(str(upload(app, task_runs["det_video"])), 3)[1] == rows


def test_a_model_whose_features_cannot_be_made_from_a_video_says_so_once(task_runs, tmp_path):
    from momentkit.serve import load_model

    with MomentApp.from_checkpoint(task_runs["det"], examples=False, backbone_model=str(tmp_path / "nowhere")) as app:
        assert app.problem.startswith("this page cannot read videos for this model: ")
        assert "nowhere" in app.problem and f"**Error: {app.problem}**" in app.describe()
        with pytest.raises(InputError) as e:
            app.detect_segments(str(upload(app, task_runs["det_video"])), 3)
        assert e.value.message == app.problem
    model = load_model(task_runs["cls"])
    model.reader.recipe = None  # as a model trained on synthetic or downloaded features
    with MomentApp(model, examples=False) as app:
        assert "carries no feature recipe" in app.problem
        with pytest.raises(InputError, match="cannot read videos for this model"):
            app.rank_classes(str(upload(app, task_runs["cls_video"])), "", 2)
        with pytest.raises(InputError, match="serves a classification model, not a detection one"):
            app.detect_segments(str(upload(app, task_runs["cls_video"])), 2)


@pytest.mark.parametrize("task", ["cls", "det"])
def test_classification_and_detection_pages_through_gradio_client(task_runs, tmp_path, task):
    from gradio_client import Client, handle_file

    port = free_port()
    app = MomentApp.from_checkpoint(task_runs[task], device="cpu", examples=False)
    page = launch(app, port=port, block=False, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path / "downloads"),
                        analytics_enabled=False)
        video = handle_file(str(task_runs[f"{task}_video"]))
        if task == "cls":
            png, table, status = client.predict(video, "", 2, api_name="/rank_classes")
            assert table["headers"] == ["#", "class", "score"]
            want = own_scores(task_runs["cls"], "blue_3")
            assert [r[:2] for r in table["data"]] == [w[:2] for w in want]
        else:
            png, table, status = client.predict(video, 2, api_name="/detect_segments")
            assert table["headers"] == ["class", "#", "start (s)", "end (s)", "score"]
            assert {r[0] for r in table["data"]} == {"red square", "blue circle"} and len(table["data"]) == 4
        assert Path(png).read_bytes()[:4] == b"\x89PNG" and "features extracted" in status
        assert "find_moments" not in json.dumps(client.view_api(return_format="dict", print_info=False))
    finally:
        page.close()
        app.close()
