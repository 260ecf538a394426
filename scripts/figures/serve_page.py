"""Take docs/figures/serve.png: the page of `momentkit serve` answering queries on a generated video.

Starts `momentkit serve --ckpt CKPT` on 127.0.0.1, opens it in headless Chromium (Debian's chromium
and chromium-driver, driven by Selenium), uploads a new generated video of the synthetic world,
types its queries, waits for the timelines and the moments table, clicks the best moment of the
first query (the player seeks there) and saves a screenshot.

    .venv/bin/momentkit demo --video       # the model: runs/demo-video/run
    .venv/bin/python scripts/figures/serve_page.py [--ckpt runs/demo-video/run] [--out docs/figures/serve.png]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", default=str(REPO / "runs/demo-video/run"))
    parser.add_argument("--out", default=str(REPO / "docs/figures/serve.png"))
    parser.add_argument("--seed", type=int, default=3, help="seed of the generated video shown")
    args = parser.parse_args(argv)

    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    from momentkit.synth.video_moments import make_moment_video

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = Path(tempfile.mkdtemp(prefix="serve-page-"))
    video = make_moment_video(work / "shapes.mp4", seed=args.seed, shapes=(3, 3))
    server = subprocess.Popen([sys.executable, "-m", "momentkit.cli.main", "serve", "--ckpt", args.ckpt,
                              "--port", str(port), "--top", "3"], stdout=subprocess.PIPE, text=True, cwd=work)
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1250", "--mute-audio",
                "--hide-scrollbars"):
        options.add_argument(arg)
    driver = None
    try:
        while "http://" not in (server.stdout.readline() or "http://"):
            pass
        if server.poll() is not None:
            raise SystemExit("momentkit serve did not start")
        os.environ.setdefault("SE_OFFLINE", "true")
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                                  options=options)

        def js(code: str):
            return driver.execute_script(code)

        def until(code: str, timeout: float = 120):
            WebDriverWait(driver, timeout, poll_frequency=0.25).until(lambda d: js(code))

        driver.get(f"http://127.0.0.1:{port}/")
        until("return document.querySelector('#mk-player input[type=file]') !== null")
        driver.find_element("css selector", "#mk-player input[type=file]").send_keys(str(work / "shapes.mp4"))
        until("return document.querySelector('#mk-status').innerText.includes('shapes.mp4')")
        box = driver.find_element("css selector", "#mk-queries textarea")
        box.send_keys("\n".join(video.queries))
        driver.find_element("css selector", "#mk-run").click()
        until("return document.querySelector('#mk-status').innerText.includes('answered')")
        until("const i = document.querySelector('#mk-timeline img'); return i && i.complete && i.naturalWidth > 0")
        scores = js("return [...document.querySelectorAll('#mk-moments [role=gridcell][data-col=\"4\"]')]"
                    ".map(c => Number(c.innerText));")
        best = max(range(len(scores)), key=scores.__getitem__)  # the surest moment: the player goes there
        driver.find_element("css selector", f"#mk-moments [role=gridcell][data-row='{best}'][data-col='0']").click()
        until("return document.querySelector('#mk-player video').currentTime > 0")
        time.sleep(1.5)
        js("window.scrollTo(0, 0);")
        time.sleep(0.5)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(args.out)
        print(f"{args.out}: {', '.join(video.queries)} on a {video.duration:.0f} s generated video")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
