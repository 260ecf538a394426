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


@pytest.mark.parametrize("task, hint", [("detection", ""), ("classification", "momentkit classify VIDEO --ckpt RUN")])
def test_a_model_of_another_task_is_refused(demo_run, monkeypatch, capsys, task, hint):
    import momentkit.predict

    real = momentkit.predict.load_model_and_config

    def as_other_task(path):
        model, cfg, src = real(path)
        cfg.task = task
        return model, cfg, src

    monkeypatch.setattr(momentkit.predict, "load_model_and_config", as_other_task)
    assert main(["serve", "--ckpt", str(demo_run), "--port", str(free_port()), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"field '--ckpt': a {task} model (sdst): the moments of text queries come from a grounding model" in err
    assert hint in err and len(err.strip().splitlines()) == 1
