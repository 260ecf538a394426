"""``momentkit serve``: a web page (Gradio) that shows what a trained model finds in an uploaded video: the
moments of typed queries (grounding), a ranking of class names (classification) or the segments of each
class (detection)."""

from __future__ import annotations

import argparse

from momentkit.cli.options import DEVICE_HELP, device, float_range

EPILOG = """\
examples:
  momentkit serve                                  # the model of `momentkit demo --video`
  momentkit serve --ckpt runs/mine --port 8080     # your own run (or an exported folder, a Hub id)
  momentkit serve --ckpt runs/victr                # a classification run: class ranking
  momentkit serve --ckpt runs/tal                  # a detection run: segments per class

The page listens on 127.0.0.1 (this machine only) unless --host says otherwise; it accepts videos up
to --max-upload-mb that PyAV decodes, keeps every file it stores in a temporary working folder
and removes that folder when it stops (Ctrl-C).
"""


def int_range(low: int, high: int, what: str):
    """An argparse type: an integer from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} ({low} to {high}), got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {what} ({low} to {high}), got {text!r}")
        return value

    parse.__name__ = what.replace(" ", "_")
    return parse


port = int_range(1, 65535, "a port number")


def register(sub) -> None:
    from momentkit.serve import DEFAULT_HOST, DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT

    p = sub.add_parser(
        "serve", help="a web page to find moments, classes or action segments in an uploaded video (Gradio)",
        description="Serve a web page (Gradio) where a video is uploaded or picked among generated examples and "
        "the model's output appears, by its task: for a grounding model, queries typed one per line, each "
        "query's timeline (saliency, top moments) and a table of moments; for a classification model, a "
        "ranking of its classes or of class names typed comma-separated (table and bar plot); for a detection "
        "model, the segments of each class (timeline and table). Clicking a row of moments or segments plays "
        "it. Features are cached per uploaded file.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", default=None, metavar="PATH",
                   help="a grounding, classification or detection model: run folder, model.safetensors or "
                        ".ckpt, an exported folder or its Hugging Face Hub id (default: the model of "
                        "`momentkit demo --video`)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default: {DEFAULT_HOST}, this machine only; 0.0.0.0 opens it "
                        "to the network)")
    p.add_argument("--port", type=port, default=DEFAULT_PORT, help=f"TCP port (default: {DEFAULT_PORT})")
    p.add_argument("--max-upload-mb", type=float_range(0.0, open_low=True), default=DEFAULT_MAX_UPLOAD_MB,
                   metavar="MB", help=f"largest video accepted, in MB (default: {DEFAULT_MAX_UPLOAD_MB:g})")
    p.add_argument("--top", type=int_range(1, 10, "a number of moments"), default=5, metavar="N",
                   help="moments per query, classes, or segments per class shown at first, 1 to 10 "
                        "(default: 5)")
    p.add_argument("--device", type=device, default="auto", help=DEVICE_HELP)
    p.set_defaults(func=run)


def default_checkpoint() -> str:
    from pathlib import Path

    from momentkit.cli.predict import DEMO_VIDEO_CHECKPOINT
    from momentkit.errors import InputError

    if not Path(DEMO_VIDEO_CHECKPOINT).is_file():
        raise InputError(f"no --ckpt given and the model of `momentkit demo --video` {DEMO_VIDEO_CHECKPOINT} does "
                         "not exist (run `momentkit demo --video` first, or pass --ckpt RUN_DIR)",
                         path=DEMO_VIDEO_CHECKPOINT, field="--ckpt")
    return DEMO_VIDEO_CHECKPOINT


def check_port_free(host: str, number: int) -> None:
    """Refuse a port another program listens on, before the model is loaded."""
    import socket

    from momentkit.errors import InputError

    try:
        infos = socket.getaddrinfo(host, number, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise InputError(f"cannot listen on host {host!r} ({e.strerror})", field="--host") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind(address)
        except OSError as e:
            raise InputError(f"cannot listen on {host}:{number} ({e.strerror or e})", field="--port") from None


def run(args: argparse.Namespace) -> int:
    from momentkit.cli.options import option_fields

    with option_fields({"ckpt": "--ckpt", "device": "--device"}):
        return serve(args)


def serve(args: argparse.Namespace) -> int:
    import signal
    import sys
    import time

    import torch

    from momentkit.serve import MomentApp, launch
    from momentkit.training.devices import check_device

    dev = args.device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    dev = str(check_device(dev, field="--device"))
    ckpt = args.ckpt or default_checkpoint()
    model = MomentApp.load(ckpt, device=dev)
    check_port_free(args.host, args.port)
    app = MomentApp(model, name=str(ckpt), max_upload_mb=args.max_upload_mb, top=args.top)
    page = None

    def stop(signum, frame):  # SIGTERM ends the server as Ctrl-C does: the working folder is removed
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        page = launch(app, host=args.host, port=args.port, block=False, quiet=True)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"momentkit serve: listening on {args.host}: other machines can reach this page")
        print(f"momentkit serve: files in {app.work_dir} (removed when it stops)")
        if app.problem:
            print(f"momentkit serve: {app.problem} (the page says so)", file=sys.stderr)
        print(f"momentkit serve: http://{'127.0.0.1' if args.host == '0.0.0.0' else args.host}:{args.port}  "
              f"({app.task} model {ckpt}; Ctrl-C stops)", flush=True)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("momentkit serve: stopped", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if page is not None:
            page.close()
        app.close()
