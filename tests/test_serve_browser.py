"""``momentkit serve`` in a real browser: the command runs on 127.0.0.1 and headless Chromium (Debian's
``chromium`` and ``chromium-driver``, driven by Selenium) uploads a generated MP4, submits queries,
reads the moments table, clicks a row (the player seeks there) and saves a screenshot; an oversize
upload and a corrupted file each show a visible error and the server goes on answering. A tiny
classification run's page ranks the classes of an uploaded video.

The browser comes from apt (``bash scripts/setup.sh test`` installs it when apt is there), never from a
download at test time: without it the tests skip, saying so. The model is a test-sized
``momentkit demo --video`` run."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("av")
pytest.importorskip("transformers")
pytest.importorskip("gradio")

from momentkit.cli.main import main  # noqa: E402
from momentkit.synth.video_moments import make_moment_video  # noqa: E402
from momentkit.video.testing import make_truncated  # noqa: E402
from test_serve import build_task_runs, free_port, own_scores, serve_process, wait_for_line  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

MAX_UPLOAD_MB = 0.05  # the generated test videos are a few kB; the oversize file is 100 kB
TIMEOUT = 120  # seconds for anything the page does (the test machine's CPUs are shared)


def browser_paths() -> tuple[str, str] | str:
    """``(chromium, chromedriver)`` from the system, or why the browser tests cannot run."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        return ("Debian's chromium and chromium-driver are not installed (bash scripts/setup.sh test installs them "
                "with apt where it can: apt-get install -y chromium chromium-driver)")
    return chromium, driver


BROWSER = browser_paths()
if isinstance(BROWSER, str):
    pytest.skip(f"browser test skipped: {BROWSER}", allow_module_level=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """A test-sized demo --video run, a new generated video, a corrupted one and an oversize file."""
    root = tmp_path_factory.mktemp("browser")
    argv = ["demo", "--video", "--out", str(root / "demo-video"), "--num-videos", "4", "--epochs", "1",
            "--set", "train.progress=false"]
    assert main(argv) == 0
    video = make_moment_video(root / "upload_me.mp4", seed=11)
    assert (root / "upload_me.mp4").stat().st_size < MAX_UPLOAD_MB * 2**20
    broken = make_truncated(root / "upload_me.mp4", root / "broken.mp4", 0.3)
    big = root / "too_big.mp4"
    big.write_bytes(os.urandom(100_000))
    return {"run": root / "demo-video" / "run", "video": root / "upload_me.mp4", "plan": video, "broken": broken,
            "big": big, "root": root}


@pytest.fixture(scope="module")
def server(files):
    port = free_port()
    proc = serve_process(files["run"], port, "--max-upload-mb", str(MAX_UPLOAD_MB), cwd=files["root"])
    try:
        wait_for_line(proc, "http://", timeout=TIMEOUT)
        yield {"url": f"http://127.0.0.1:{port}/", "proc": proc}
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver = BROWSER
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager never downloads anything
    options = Options()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--mute-audio"):
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    d.set_page_load_timeout(TIMEOUT)
    yield d
    d.quit()


def wait(d, condition, timeout: float = TIMEOUT):
    """Wait for ``condition(d)``; elements the page re-renders meanwhile are looked up again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(d, timeout, poll_frequency=0.25,
                         ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def text_of(d, selector: str) -> str:
    """The visible text of the first element matching ``selector`` ('' when there is none)."""
    return d.execute_script(f"const e = document.querySelector({selector!r}); return e ? e.innerText : '';")


def css(d, selector: str):
    from selenium.webdriver.common.by import By

    return d.find_elements(By.CSS_SELECTOR, selector)


def open_page(d, url: str) -> None:
    d.get(url)
    wait(d, lambda d: css(d, "#mk-player input[type=file]") and css(d, "#mk-run"))


def upload(d, path: Path) -> None:
    css(d, "#mk-player input[type=file]")[0].send_keys(str(path))


def toasts(d) -> str:
    return d.execute_script("return [...document.querySelectorAll('.toast-body')].map(e => e.innerText).join('\\n');")


def ask(d, queries: list[str]) -> list[list[str]]:
    """Type the queries, press the button, wait for the table; its rows as lists of cell texts."""
    box = css(d, "#mk-queries textarea")[0]
    box.clear()
    box.send_keys("\n".join(queries))
    before = text_of(d, "#mk-status")
    css(d, "#mk-run")[0].click()
    wait(d, lambda d: css(d, "#mk-moments [role=gridcell][data-row='0']") and text_of(d, "#mk-status") != before
         and "answered" in text_of(d, "#mk-status"))
    time.sleep(0.5)  # the table settles
    cells = d.execute_script("return [...document.querySelectorAll('#mk-moments [role=gridcell]')]"
                             ".map(c => [Number(c.dataset.row), Number(c.dataset.col), c.innerText.trim()]);")
    rows: dict[int, dict[int, str]] = {}
    for row, col, text in cells:
        rows.setdefault(row, {})[col] = text
    return [[r[c] for c in sorted(r)] for _, r in sorted(rows.items())]


def test_upload_query_table_seek_and_screenshot(browser, server, files, tmp_path):
    d, plan = browser, files["plan"]
    open_page(d, server["url"])
    assert "knows only the synthetic world" in text_of(d, "#mk-about")
    upload(d, files["video"])
    wait(d, lambda d: "upload_me.mp4" in text_of(d, "#mk-status"))  # checked on upload
    queries = list(plan.queries[:2])
    rows = ask(d, queries)
    top = 5
    assert [r[0] for r in rows] == [q for q in queries for _ in range(top)], rows
    assert [r[1] for r in rows[:top]] == [str(i) for i in range(1, top + 1)]
    for _, _, start, end, score in rows:
        assert 0 <= float(start) <= float(end) <= plan.duration + 1e-6 and float(score) >= 0
    status = text_of(d, "#mk-status")
    assert "features extracted" in status and "2 queries answered" in status
    timeline = css(d, "#mk-timeline img")
    assert timeline and wait(d, lambda d: d.execute_script(
        "const i = document.querySelector('#mk-timeline img'); return i.complete && i.naturalWidth > 0;"))

    # clicking a row seeks the player to the moment's start
    row = next(i for i, r in enumerate(rows) if float(r[2]) > 0)
    css(d, f"#mk-moments [role=gridcell][data-row='{row}'][data-col='0']")[0].click()
    at = float(rows[row][2])
    wait(d, lambda d: abs(d.execute_script("return document.querySelector('#mk-player video').currentTime") - at)
         < 0.05)

    # a second query on the same video: from the feature cache
    ask(d, [plan.queries[-1]])
    assert "features from the cache" in text_of(d, "#mk-status")
    shot = tmp_path / "serve_page.png"
    assert d.save_screenshot(str(shot)) and shot.read_bytes()[:4] == b"\x89PNG"


def test_oversize_upload_shows_an_error_and_the_server_goes_on(browser, server, files):
    d = browser
    open_page(d, server["url"])
    upload(d, files["big"])
    wait(d, lambda d: "exceed the maximum allowed size" in toasts(d))
    assert "too_big.mp4" in toasts(d)
    assert server["proc"].poll() is None
    open_page(d, server["url"])
    upload(d, files["video"])
    assert ask(d, [files["plan"].queries[0]])


def test_corrupted_upload_shows_an_error_and_the_server_goes_on(browser, server, files):
    d = browser
    open_page(d, server["url"])
    upload(d, files["broken"])
    wait(d, lambda d: "broken.mp4" in toasts(d))
    text = toasts(d)
    assert "cannot open video" in text or "could be decoded" in text, text
    assert "momentkit-serve-" not in text  # file names only, not where the server keeps them
    assert server["proc"].poll() is None
    open_page(d, server["url"])
    upload(d, files["video"])
    time.sleep(0.5)
    assert ask(d, [files["plan"].queries[0]])


def table_rows(d, table: str) -> list[list[str]]:
    """The rows of a results table as lists of cell texts."""
    cells = d.execute_script(f"return [...document.querySelectorAll('#{table} [role=gridcell]')]"
                             ".map(c => [Number(c.dataset.row), Number(c.dataset.col), c.innerText.trim()]);")
    rows: dict[int, dict[int, str]] = {}
    for row, col, text in cells:
        rows.setdefault(row, {})[col] = text
    return [[r[c] for c in sorted(r)] for _, r in sorted(rows.items())]


def test_a_classification_page_ranks_the_classes_of_an_upload(browser, tmp_path_factory):
    runs = build_task_runs(tmp_path_factory.mktemp("classification"), runs=("cls",))
    port = free_port()
    proc = serve_process(runs["cls"], port, cwd=runs["root"])
    try:
        wait_for_line(proc, "http://", timeout=TIMEOUT)
        d = browser
        open_page(d, f"http://127.0.0.1:{port}/")
        assert "a classification model" in text_of(d, "#mk-about") and not css(d, "#mk-queries")
        upload(d, runs["cls_video"])
        wait(d, lambda d: "blue_3.mp4" in text_of(d, "#mk-status"))
        css(d, "#mk-run")[0].click()
        wait(d, lambda d: css(d, "#mk-classes [role=gridcell][data-row='1']") and "ranked" in text_of(d, "#mk-status"))
        time.sleep(0.5)  # the table settles
        rows = table_rows(d, "mk-classes")
        want = own_scores(runs["cls"], "blue_3")  # the run's validation predictions of this video
        assert [r[:2] for r in rows] == [[str(w[0]), w[1]] for w in want], rows
        assert [float(r[2]) for r in rows] == [pytest.approx(w[2], abs=1e-4) for w in want]
        assert wait(d, lambda d: d.execute_script(
            "const i = document.querySelector('#mk-timeline img'); return i && i.complete && i.naturalWidth > 0;"))
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
