"""The web demo behind ``momentkit serve``: find moments of free-form queries in a video, in a browser.

A Gradio page around :class:`momentkit.predict.Predictor`: upload a video (or pick one of the
generated examples), type one query per line and get, per query, a timeline (saliency curve and the
top moments as coloured bands, :func:`momentkit.viz.plot_timelines`) and a table of moments (start,
end, score) where clicking a row seeks the video player to the moment's start.

- Features are made from the video as the model's training features were (its feature recipe), with
  a progress bar while the video is decoded and embedded, and kept per uploaded file (by the SHA-256
  of its bytes, :data:`CACHE_SIZE` videos) so that another query on the same video answers without
  decoding it again. Videos longer than the model's trained length go through the Predictor's
  windows.
- Uploads: at most ``max_upload_mb`` (Gradio refuses bigger ones before they are stored, and the
  handlers check again); a file is accepted when PyAV opens it and decodes a frame, whatever its
  name says.
- Files: everything the app stores (uploads, the examples, timelines) lives in one working folder,
  removed by :meth:`MomentApp.close`; Gradio serves only files of that folder (its upload and cache
  folders point there), never one of the checkout or of the system.

The handlers (:meth:`MomentApp.find_moments`, :meth:`MomentApp.inspect`, :meth:`MomentApp.seek`) are
plain functions of paths and strings, tested without a browser; :meth:`MomentApp.build` wires them to
the page.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from momentkit.errors import InputError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 200.0
CACHE_SIZE = 8  # videos whose features are kept
MAX_QUERIES = 8
MAX_QUERY_CHARS = 200
MAX_TOP = 10
KEEP_TIMELINES = 32  # timeline PNGs kept in the working folder
TABLE_HEADERS = ["query", "#", "start (s)", "end (s)", "score"]
EXAMPLE_SEEDS = (101, 202)  # the generated examples: new videos of the synthetic world
PLAYER_ID = "mk-player"

# the frontend part of "clicking a row seeks the player": the start time the handler returns
SEEK_JS = f"""(t) => {{
  const v = document.querySelector('#{PLAYER_ID} video');
  if (v && t !== null && t !== undefined && !Number.isNaN(Number(t))) {{ v.currentTime = Number(t); }}
  return t;
}}"""


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (the key of the feature cache)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def parse_queries(text: str | None) -> list[str]:
    """One query per line (blank lines dropped); at most :data:`MAX_QUERIES` of at most
    :data:`MAX_QUERY_CHARS` characters."""
    queries = [q.strip() for q in (text or "").splitlines() if q.strip()]
    if not queries:
        raise InputError("type at least one query (one per line)", field="queries")
    if len(queries) > MAX_QUERIES:
        raise InputError(f"at most {MAX_QUERIES} queries at once, got {len(queries)}", field="queries")
    long = [q for q in queries if len(q) > MAX_QUERY_CHARS]
    if long:
        raise InputError(f"a query of {len(long[0])} characters; at most {MAX_QUERY_CHARS}", field="queries")
    return queries


def is_demo_world(predictor) -> bool:
    """Was the model trained by ``momentkit demo --video`` (features of the random CLIP it saves)?"""
    from momentkit.cli.demo_video import BACKBONE_DIR

    parts = (predictor.recipe or {}).get("video") or []
    return any(str(p.get("model_path") or p.get("model") or "").replace(os.sep, "/").endswith(BACKBONE_DIR)
               for p in parts)


class MomentApp:
    """The page's state and handlers: a grounding :class:`~momentkit.predict.Predictor`, a working
    folder and the feature cache."""

    def __init__(self, predictor, *, work_dir: str | os.PathLike | None = None,
                 max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, top: int = 5, name: str | None = None,
                 examples: bool = True) -> None:
        if not max_upload_mb > 0:
            raise InputError(f"must be positive, got {max_upload_mb}", field="--max-upload-mb")
        self.predictor = predictor
        self.name = name or str(getattr(predictor, "source", None) or "model")
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.max_upload_mb = float(max_upload_mb)
        self.top = int(min(max(1, top), MAX_TOP))
        self._own_dir = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="momentkit-serve-") if work_dir is None else work_dir).resolve()
        self.uploads = self.work_dir / "uploads"  # Gradio's upload folder (GRADIO_TEMP_DIR)
        self.cache_dir = self.work_dir / "cache"  # Gradio's examples cache (GRADIO_EXAMPLES_CACHE)
        self.outputs = self.work_dir / "outputs"  # timelines
        self.examples_dir = self.work_dir / "examples"
        for folder in (self.uploads, self.cache_dir, self.outputs, self.examples_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._features: OrderedDict[str, tuple[np.ndarray, float]] = OrderedDict()
        self._lock = threading.Lock()  # one prediction at a time: the model and the cache are shared
        self._count = 0
        self.examples = self.make_examples() if examples else []
        self.closed = False
        self._saved_env: dict[str, str | None] | None = None  # what launch() changed, undone by close()

    @staticmethod
    def load(ckpt: str | os.PathLike, *, device: str = "cpu"):
        """The :class:`~momentkit.predict.Predictor` of a grounding model (run folder,
        ``model.safetensors``, ``.ckpt``, exported folder or Hub id); other tasks are refused."""
        from momentkit.predict import Predictor

        try:
            return Predictor.from_pretrained(ckpt, device=device)
        except InputError as e:
            if e.field == "ckpt" and e.message.startswith("a classification model"):
                raise InputError(f"{e.message}; momentkit serve shows grounding models (rank class names for a video "
                                 "with momentkit classify VIDEO --ckpt RUN)", path=e.path, field="ckpt") from None
            raise

    @classmethod
    def from_checkpoint(cls, ckpt: str | os.PathLike, *, device: str = "cpu", **options) -> MomentApp:
        """:meth:`load` the model and make the app (its working folder, its examples)."""
        return cls(cls.load(ckpt, device=device), name=str(ckpt), **options)

    # ------------------------------------------------------------------ files
    def make_examples(self) -> list[list[str]]:
        """Generated videos of the synthetic world with their queries: ``[[path, queries], ...]``."""
        from momentkit.synth.video_moments import make_moment_video

        out = []
        for i, seed in enumerate(EXAMPLE_SEEDS):  # a short one, and one longer than a window (150 s)
            path = self.examples_dir / f"example_{i + 1}.mp4"
            video = make_moment_video(path, seed=seed, duration=(24.0, 32.0) if i == 0 else (170.0, 190.0),
                                      shapes=(2, 3) if i == 0 else (3, 4))
            out.append([str(path), "\n".join(video.queries)])
        return out

    def _inside(self, path: Path) -> bool:
        try:
            path.resolve().relative_to(self.work_dir)
            return True
        except ValueError:
            return False

    def check_video(self, video) -> Path:
        """The path of an uploaded video or an example, checked: inside the working folder, at most the
        upload limit, and decodable by PyAV (an :class:`InputError` saying what is wrong otherwise)."""
        from momentkit.video.decode import iter_frames, probe

        if video is None or (isinstance(video, str) and not video.strip()):
            raise InputError("upload a video first (or pick an example)", field="video")
        if isinstance(video, dict):  # a FileData payload
            video = video.get("path") or video.get("video", {}).get("path")
        path = Path(str(video))
        if not self._inside(path):
            raise InputError("this file was not uploaded to this page", field="video")
        if not path.is_file():
            raise InputError("the uploaded file is gone; upload it again", field="video")
        size = path.stat().st_size
        if size > self.max_upload_bytes:
            raise InputError(f"the file is {size / 2**20:.1f} MB; this server accepts videos up to "
                             f"{self.max_upload_mb:g} MB", field="video")
        try:  # PyAV opens it and decodes a frame of it, whatever its name says
            probe(path)
            next(iter(iter_frames(path, None, size=32, chunk_size=1, strict=False)))
        except StopIteration:
            raise InputError("no frame of this file could be decoded", path=path.name, field="video") from None
        except InputError as e:  # named by its file name, not by where the server keeps it
            raise InputError(e.message, path=path.name, field="video") from None
        return path

    def _timeline_path(self) -> Path:
        self._count += 1
        old = sorted(self.outputs.glob("timeline_*.png"), key=lambda p: p.stat().st_mtime)
        for p in old[:-KEEP_TIMELINES]:
            p.unlink(missing_ok=True)
        return self.outputs / f"timeline_{self._count:05d}_{os.getpid()}.png"

    # ------------------------------------------------------------------ handlers
    def inspect(self, video) -> str:
        """What the page says about a video once it is uploaded (or an error)."""
        from momentkit.video.decode import probe

        path = self.check_video(video)
        info = probe(path)
        clip_len = float(self.predictor.config.data.clip_len)
        seconds = info.duration or 0.0
        cached = " (features cached)" if file_digest(path) in self._features else ""
        return (f"**{path.name}**: {seconds:.1f} s, {info.width}x{info.height}, "
                f"about {max(1, round(seconds / clip_len))} clips of {clip_len:g} s{cached}")

    def features(self, path: Path, progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, float, bool]:
        """``(features, duration, from the cache)`` of a checked video."""
        key = file_digest(path)
        if key in self._features:
            self._features.move_to_end(key)
            feats, duration = self._features[key]
            return feats, duration, True
        feats, duration, _ = self.predictor.video_features(path, progress=progress)
        self._features[key] = (feats, duration)
        while len(self._features) > CACHE_SIZE:
            self._features.popitem(last=False)
        return feats, duration, False

    def find_moments(self, video, queries: str, top: int | float | None = None,
                     progress: Callable[..., None] | None = None) -> tuple[str, list[list], str]:
        """``(timeline PNG, table rows, status)`` of the queries (one per line) on a video."""
        from momentkit.viz import plot_timelines

        names = parse_queries(queries)
        top = int(min(max(1, int(top or self.top)), MAX_TOP))
        path = self.check_video(video)
        with self._lock:
            t0 = time.perf_counter()
            report = (lambda f: progress(f, desc="decoding and embedding the video")) if progress else None
            if progress:
                progress(0.0, desc="reading the video")
            feats, duration, cached = self.features(path, report)
            t1 = time.perf_counter()
            if progress:
                progress(1.0, desc="finding the moments")
            results = self.predictor.predict(feats, names, duration=duration, top=top)
            t2 = time.perf_counter()
        clip_len = float(self.predictor.config.data.clip_len)
        items = [{"query": r.query, "duration": r.duration, "gt_windows": [], "pred_windows": r.moments,
                  "saliency": r.saliency} for r in results]
        png = plot_timelines(items, self._timeline_path(), clip_len=clip_len)
        rows = [[r.query, i, round(s, 2), round(e, 2), round(score, 4)]
                for r in results for i, (s, e, score) in enumerate(r.moments, 1)]
        windows = results[0].num_windows
        how = "features from the cache" if cached else f"features extracted in {t1 - t0:.1f} s"
        status = (f"**{path.name}**: {duration:.1f} s, {feats.shape[-2]} clips of {clip_len:g} s"
                  f"{f', {windows} windows' if windows > 1 else ''}; {how}; {len(names)} "
                  f"quer{'y' if len(names) == 1 else 'ies'} answered in {t2 - t1:.2f} s. "
                  "Click a row of the table to play that moment.")
        return str(png), rows, status

    @staticmethod
    def seek(row: list | None) -> float | None:
        """The start (seconds) of a table row: where the player goes when the row is clicked."""
        if not row or len(row) < 3:
            return None
        try:
            return float(row[2])
        except (TypeError, ValueError):
            return None

    def public_message(self, error: Exception) -> str:
        """An error's message without the places the server keeps files at (only file names)."""
        import re

        return re.sub(re.escape(str(self.work_dir)) + r"[^\s:,]*/", "", str(error))

    # ------------------------------------------------------------------ the page
    def describe(self) -> str:
        """The page's words about the model: name, clips, windows, where its features come from (local
        folders by their last name only) and, for the demo model, what it knows."""
        from momentkit.video.recipe import describe_video

        p = self.predictor
        recipe = "no feature recipe"
        if p.recipe:
            recipe = describe_video(p.recipe)
            for part in [*p.recipe.get("video", []), p.recipe.get("text") or {}]:
                for key in ("model_path", "model", "path"):
                    value = str(part.get(key) or "")
                    if value and os.path.isabs(value):
                        recipe = recipe.replace(value, Path(value).name)
        text = (f"Model **{p.config.model['name']}** from `{Path(self.name).name}` "
                f"(clips of {float(p.config.data.clip_len):g} s, windows of {p.window} clips; features: {recipe}).")
        if is_demo_world(p):
            text += ("\n\n**This model knows only the synthetic world of `momentkit demo --video`**: generated "
                     "videos of coloured squares and circles crossing the scene, asked about with queries like "
                     "*a red circle moves left*. Its backbone is a randomly initialised CLIP, so it cannot "
                     "understand real videos; train one on real features as docs/own_data.md shows.")
        return text

    def build(self):
        """The Gradio page (``gr.Blocks``) wired to the handlers."""
        import gradio as gr

        def guarded(fn):
            def call(*args, **kwargs):
                try:
                    return fn(*args, **kwargs)
                except InputError as e:
                    raise gr.Error(self.public_message(e), title="cannot use this input") from None
            return call

        def find(video, queries, top, progress=gr.Progress()):
            return guarded(self.find_moments)(video, queries, top, progress=progress)

        def inspect(video):
            if video is None:
                return ""
            return guarded(self.inspect)(video)

        def select(evt):
            return self.seek(getattr(evt, "row_value", None))

        select.__annotations__ = {"evt": gr.SelectData}  # Gradio passes the clicked row

        # delete_cache: Gradio's copies of uploads and outputs older than an hour go, every half hour
        with gr.Blocks(title="momentkit: find moments in a video", analytics_enabled=False,
                       delete_cache=(1800, 3600)) as page:
            gr.Markdown("# momentkit: find when things happen in a video\n" + self.describe(),
                        elem_id="mk-about")
            with gr.Row():
                with gr.Column(scale=1):
                    video = gr.Video(label="video (upload, or pick an example below)", sources=["upload"],
                                     format=None, include_audio=True, elem_id=PLAYER_ID, height=320)
                    queries = gr.Textbox(label="queries, one per line", lines=3, elem_id="mk-queries",
                                         placeholder="a red circle moves left")
                    top = gr.Slider(1, MAX_TOP, value=self.top, step=1, label="moments per query", elem_id="mk-top")
                    run = gr.Button("Find moments", variant="primary", elem_id="mk-run")
                    if self.examples:
                        gr.Examples(self.examples, inputs=[video, queries], label="generated examples",
                                    cache_examples=False, elem_id="mk-examples")
                with gr.Column(scale=2):
                    status = gr.Markdown("", elem_id="mk-status")
                    gr.Markdown("**Timelines**: per query, its saliency curve and its top moments as bands")
                    timeline = gr.Image(label="timelines", show_label=False, type="filepath", interactive=False,
                                        buttons=["download", "fullscreen"], elem_id="mk-timeline")
                    table = gr.Dataframe(headers=TABLE_HEADERS, label="moments (click a row to play it)",
                                         interactive=False, elem_id="mk-moments", wrap=True)
                    start = gr.Number(visible=False, elem_id="mk-seek")
            video.upload(inspect, inputs=video, outputs=status, api_name="inspect")
            video.clear(lambda: "", inputs=None, outputs=status, api_name=False)
            run.click(find, inputs=[video, queries, top], outputs=[timeline, table, status], api_name="find_moments")
            queries.submit(find, inputs=[video, queries, top], outputs=[timeline, table, status],
                           api_name=False)
            table.select(select, inputs=None, outputs=start, api_name=False).then(
                None, inputs=start, outputs=None, js=SEEK_JS)
        return page

    def close(self) -> None:
        """Forget the cached features, remove the working folder (uploads, examples, timelines) and undo
        the Gradio settings of :func:`launch`."""
        self._features.clear()
        for key, value in (self._saved_env or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = None
        if not self.closed:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        self.closed = True

    def __enter__(self) -> MomentApp:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def gradio_environment(app: MomentApp) -> dict[str, str]:
    """The environment variables that keep Gradio's files in the app's working folder and its analytics
    off (set before the page is built)."""
    return {"GRADIO_TEMP_DIR": str(app.uploads), "GRADIO_EXAMPLES_CACHE": str(app.cache_dir),
            "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_CACHE_EXAMPLES": "false"}


def launch(app: MomentApp, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, block: bool = True,
           quiet: bool = False):
    """Build the page and serve it on ``host:port``; ``block=False`` returns the running ``gr.Blocks``
    (stop it with ``.close()``, then ``app.close()``)."""
    env = gradio_environment(app)
    if app._saved_env is None:
        app._saved_env = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    page = app.build()
    page.queue(default_concurrency_limit=1, max_size=16)
    page.launch(server_name=host, server_port=port, share=False, inbrowser=False, show_error=True,
                max_file_size=app.max_upload_bytes, allowed_paths=[], prevent_thread_lock=not block,
                quiet=quiet, ssr_mode=False, mcp_server=False, pwa=False, enable_monitoring=False,
                run_history=False, footer_links=["api", "gradio", "settings"])
    return page


__all__ = ["DEFAULT_HOST", "DEFAULT_MAX_UPLOAD_MB", "DEFAULT_PORT", "MomentApp", "file_digest", "gradio_environment",
           "launch", "parse_queries"]
