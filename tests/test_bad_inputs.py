"""Every subcommand on bad input: one clear error, exit 2, no traceback, nothing written.

Each row runs ``momentkit CMD ...`` in-process on a small world of files (a file, a folder, good and
bad annotation files, configs) and checks that the command

- exits with status 2 (its own one-line error, or argparse's usage line and error);
- prints no traceback and exactly one ``error:`` line, the last one on stderr;
- names what is wrong: the file (and line / field) or the option, as ``message`` expects;
- leaves nothing half-written: the world, the current folder included, is byte for byte unchanged.

``{w}`` in a row stands for the world's folder. Checks of a GPU device and of Ctrl-C live elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from momentkit.cli.main import main

FIXTURES = Path(__file__).parent / "fixtures" / "annotations"
SYNTH_CONFIG = REPO / "configs" / "synthetic" / "qvh_small_sdst.yaml"
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

GOOD_CONFIG = """\
data:
  train: {w}/one.jsonl
  val: {w}/one.jsonl
  video_features: {w}/feats
  text_features: {w}/tfeats
model:
  name: sdst
train:
  epochs: 1
  out_dir: {w}/afile/run
"""


def make_world(w: Path) -> None:
    """The files the rows refer to (each small)."""
    (w / "afile").write_text("keep me\n")
    (w / "adir").mkdir()
    (w / "adir" / "inside.txt").write_text("keep me too\n")
    shutil.copy(FIXTURES / "grounding_small.jsonl", w / "good.jsonl")
    shutil.copy(FIXTURES / "detection_small.json", w / "tal.json")
    rows = [{"qid": 1, "pred_relevant_windows": [[0, 10, 0.9]]}]
    (w / "preds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (w / "empty.jsonl").write_text("")
    good = '{"qid": 1, "query": "a", "vid": "v", "duration": 10, "relevant_windows": [[0, 2]]}\n'
    (w / "one.jsonl").write_text(good)
    (w / "bad.jsonl").write_text(good + '{"qid": 2,\n')
    (w / "wrongtype.jsonl").write_text(good.replace('"duration": 10', '"duration": "long"'))
    (w / "feats").mkdir()
    np.savez(w / "feats" / "v.npz", features=np.zeros((4, 8), np.float32))
    (w / "tfeats").mkdir()
    np.savez(w / "tfeats" / "qid1.npz", last_hidden_state=np.zeros((3, 8), np.float32))
    np.savez(w / "f.npz", features=np.zeros((4, 8), np.float32))
    np.savez(w / "t.npz", last_hidden_state=np.zeros((3, 8), np.float32))
    (w / "nofeats").mkdir()
    (w / "videos").mkdir()
    (w / "videos" / "a.mp4").write_bytes(b"not decoded before the checks")
    (w / "typo.yaml").write_text("model:\n  name: sdst\n  hiden_dim: 64\n")
    (w / "broken.yaml").write_text("model:\n  name: sdst\n  hidden_dim: [64\ntrain:\n  epochs: 1\n")
    (w / "nomodel.yaml").write_text("train:\n  epochs: 1\n")
    (w / "good.yaml").write_text(GOOD_CONFIG.format(w=w))
    (w / "study.yaml").write_text("name: s\nmetrics: [MR-full-mAP]\nruns:\n  - {label: A, config: a.yaml}\n")
    # dense detection: annotations (good, an unknown class, a segment past the end), features, videos
    def dense(name, segment, label):
        db = {"v": {"subset": "training", "duration": 8.0, "annotations": [{"segment": segment, "label": label}]}}
        (w / name).write_text(json.dumps({"database": db}))
    dense("dense.json", [1.0, 3.0], "jump")
    dense("dense_class.json", [1.0, 3.0], "swim")
    dense("dense_outside.json", [1.0, 30.0], "jump")
    (w / "dvideos").mkdir()
    (w / "dvideos" / "v.mp4").write_bytes(b"")
    for name, extra in [("dense_class.yaml", "  annotations: {w}/dense_class.json\n  classes: [jump]\n"),
                        ("dense_outside.yaml", "  annotations: {w}/dense_outside.json\n"),
                        ("dense_video.yaml", "  annotations: {w}/dense.json\n  videos: {w}/dvideos\n"),
                        ("dense_frames.yaml", "  annotations: {w}/dense.json\n  frames: 6\n")]:
        feats = "" if "videos" in extra else "  video_features: [{w}/feats]\n"
        text = ("task: dense\ndata:\n" + extra + feats + "  val_subset: training\n"
                "model:\n  name: coarse_only\n  alpha: 0.125\ntrain:\n  epochs: 1\n  out_dir: {w}/drun\n")
        (w / name).write_text(text.format(w=w))


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` -> a digest of its content (``dir`` for folders)."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        out[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def case(*argv: str, message: str, marks=()):
    """One row: the command line and a fragment of the error line."""
    return pytest.param(list(argv), message, marks=marks, id=" ".join(argv)[:80])


unwritable_proc = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
not_root = pytest.mark.skipif(ROOT or os.name != "posix", reason="root may write in a read-only folder")

CASES = [
    # -- data stats: missing, empty, malformed, wrong type, folder, bad options
    case("data", "stats", "{w}/missing.jsonl", message="missing.jsonl: file not found"),
    case("data", "stats", "{w}/empty.jsonl", message="empty.jsonl: file is empty"),
    case("data", "stats", "{w}/bad.jsonl", message="bad.jsonl:2: malformed JSON"),
    case("data", "stats", "{w}/wrongtype.jsonl", message="wrongtype.jsonl:1, field 'duration': expected a number"),
    case("data", "stats", "{w}/adir", message="adir: expected a file, found a folder"),
    case("data", "stats", "{w}/good.jsonl", "--format", "nope", message="field '--format': unknown annotation format"),
    case("data", "stats", "{w}/good.jsonl", "-o", "novalue", message="field '--option': expected KEY=VALUE"),
    # -- pack-features: unwritable DST, missing / empty SRC
    case("pack-features", "{w}/feats", "{w}/afile/packed.bin",
         message="field 'DST': cannot be created: {w}/afile is a file, not a folder"),
    case("pack-features", "{w}/feats", "{w}/adir", message="adir, field 'DST': is a folder; expected a file name"),
    case("pack-features", "{w}/nowhere", "{w}/packed.bin", message="nowhere: feature folder or packed file not found"),
    case("pack-features", "{w}/nofeats", "{w}/packed.bin", message="nofeats: no *.npz feature files"),
    # -- evaluate: unwritable --out, bad files, degenerate numbers
    case("evaluate", "{w}/preds.jsonl", "{w}/good.jsonl", "--out", "{w}/afile/m.json",
         message="field '--out': cannot be created: {w}/afile is a file, not a folder"),
    case("evaluate", "{w}/preds.jsonl", "{w}/good.jsonl", "--out", "{w}/adir",
         message="adir, field '--out': is a folder; expected a file name"),
    case("evaluate", "{w}/preds.jsonl", "{w}/good.jsonl", "--out", "/proc/momentkit-test/m.json",
         message="field '--out': cannot be written", marks=unwritable_proc),
    case("evaluate", "{w}/preds.jsonl", "{w}/good.jsonl", "--out", "{w}/readonly/m.json",
         message="field '--out': cannot be written", marks=not_root),
    case("evaluate", "{w}/missing.jsonl", "{w}/good.jsonl", "--out", "{w}/m.json",
         message="missing.jsonl: file not found"),
    case("evaluate", "{w}/empty.jsonl", "{w}/good.jsonl", "--out", "{w}/m.json", message="empty.jsonl: file is empty"),
    case("evaluate", "{w}/preds.jsonl", "{w}/bad.jsonl", "--out", "{w}/m.json", message="bad.jsonl:2: malformed JSON"),
    case("evaluate", "{w}/preds.jsonl", "{w}/good.jsonl", "--frames", "0",
         message="argument --frames: expected an integer >= 1, got '0'"),
    case("evaluate", "{w}/preds.jsonl", "{w}/good.jsonl", "--task", "nope", message="unknown task 'nope'"),
    # -- synth: --out a file or under one, unknown preset / setting, negative seed
    case("synth", "qvh-small", "--out", "{w}/afile", message="afile, field '--out': is a file; expected a folder"),
    case("synth", "qvh-small", "--out", "{w}/afile/data",
         message="field '--out': cannot be created: {w}/afile is a file, not a folder"),
    case("synth", "nope", "--out", "{w}/data", message="unknown preset 'nope'"),
    case("synth", "qvh-small", "--out", "{w}/data", "--seed", "-1",
         message="argument --seed: expected an integer >= 0, got '-1'"),
    case("synth", "qvh-small", "--out", "{w}/data", "--set", "nope=1", message="field 'nope': unknown setting"),
    # -- train / test / params: config errors name the file, line and key
    case("train", "{w}/missing.yaml", message="missing.yaml: config file not found"),
    case("train", "{w}/typo.yaml", message="typo.yaml, field 'model.hiden_dim': unknown key"),
    case("train", "{w}/broken.yaml", message="broken.yaml:4: malformed YAML"),
    case("train", "{w}/typo.yaml", "--set", "novalue", message="field '--set': expected key=value"),
    case("train", "{w}/good.yaml", message="afile"),
    # -- dense detection data: unknown class, segment outside the video, a video without frames, too few frames
    case("train", "{w}/dense_class.yaml", message="dense_class.json, field 'label': video 'v': label 'swim'"),
    case("train", "{w}/dense_outside.yaml", message="dense_outside.json, field 'database.v.annotations[0].segment'"),
    case("train", "{w}/dense_video.yaml", message="v.mp4, field 'data.videos': the video file is empty (no frames)"),
    case("train", "{w}/dense_frames.yaml",
         message="field 'data.frames': 6 frames per item cannot be pooled by the Coarse stream's stride 8"),
    case("test", "{w}/missing.yaml", "--ckpt", "{w}/none.ckpt", message="missing.yaml: config file not found"),
    case("test", "{w}/typo.yaml", "--ckpt", "{w}/none.ckpt", message="typo.yaml, field 'model.hiden_dim'"),
    case("test", str(SYNTH_CONFIG), "--ckpt", "{w}/none.ckpt", message="none.ckpt: checkpoint not found"),
    case("test", str(SYNTH_CONFIG), "--ckpt", "{w}/none.ckpt", "--split", "bogus",
         message="argument --split: invalid choice: 'bogus'"),
    case("params", "{w}/missing.yaml", message="missing.yaml: config file not found"),
    case("params", "{w}/typo.yaml", message="typo.yaml, field 'model.hiden_dim'"),
    case("params", "{w}/broken.yaml", message="broken.yaml:4: malformed YAML"),
    case("params", "{w}/nomodel.yaml", message="nomodel.yaml, field 'model': expected a model: section"),
    case("params", str(SYNTH_CONFIG), "--set", "model.name=bogus", message="field 'model.name': unknown model 'bogus'"),
    # -- demo: every option checked before any data is generated
    case("demo", "--out", "{w}/demo", "--epochs", "0", message="argument --epochs: expected an integer >= 1, got '0'"),
    case("demo", "--out", "{w}/demo", "--model", "bogus", message="field '--model': unknown grounding model 'bogus'"),
    case("demo", "--out", "{w}/demo", "--model", "tal_detector", message="unknown grounding model 'tal_detector'"),
    case("demo", "--out", "{w}/afile", message="afile, field '--out': is a file; expected a folder"),
    case("demo", "--out", "{w}/demo", "--seed", "-3", message="argument --seed: expected an integer >= 0"),
    case("demo", "--out", "{w}/demo", "--set", "model.hiden_dim=3", message="field 'model.hiden_dim': unknown key"),
    case("demo", "--out", "{w}/demo", "--num-videos", "3", message="field '--num-videos': needs --video"),
    case("demo", "--video", "--out", "{w}/afile", message="afile, field '--out': is a file; expected a folder"),
    case("demo", "--video", "--out", "{w}/demo", "--model", "bogus", message="unknown grounding model 'bogus'"),
    case("demo", "--video", "--out", "{w}/demo", "--set", "train.epoch=3", message="field 'train.epoch': unknown key"),
    # -- extract: outputs and every option checked before the backbone is loaded
    case("extract", "--backbone", "clip", "--videos", "{w}/videos", "--out", "{w}/afile",
         message="afile, field '--out': is a file; expected a folder"),
    case("extract", "--backbone", "clip", "--videos", "{w}/videos", "--out", "{w}/x", "--queries", "{w}/good.jsonl",
         "--text-out", "{w}/afile/text", message="field '--text-out': cannot be created"),
    case("extract", "--backbone", "clip", "--videos", "{w}/nowhere", "--out", "{w}/x",
         message="nowhere: no such video folder"),
    case("extract", "--backbone", "clip", "--videos", "{w}/videos", "--out", "{w}/x", "--queries", "{w}/bad.jsonl",
         message="bad.jsonl:2: malformed JSON"),
    case("extract", "--backbone", "nope", "--videos", "{w}/videos", "--out", "{w}/x",
         message="field '--backbone': unknown backbone 'nope'"),
    case("extract", "--backbone", "clip", "--videos", "{w}/videos", "--out", "{w}/x", "--batch-size", "0",
         message="argument --batch-size: expected an integer >= 1, got '0'"),
    case("extract", "--backbone", "clip", "--videos", "{w}/videos", "--out", "{w}/x", "--clip-len", "-2",
         message="argument --clip-len: expected a number > 0, got '-2'"),
    case("extract", "--backbone", "clip", "--videos", "{w}/videos", "--out", "{w}/x", "--fps", "nan",
         message="argument --fps: expected a number > 0, got 'nan'"),
    case("extract", "--backbone", "clip", "--videos", "{w}/videos", "--out", "{w}/x", "--layers", "0",
         message="argument --layers: layer numbers are 1-based"),
    case("extract", "--backbone", "clip", "--videos", "{w}/videos", "--out", "{w}/x", "--layers", "3,x",
         message="argument --layers: layer numbers must be integers, got 'x'"),
    case("extract", "--backbone", "clip", "--videos", "{w}/videos", "--out", "{w}/x", "--device", "gpu",
         message="argument --device: expected a device"),
    # -- predict: outputs and numbers checked before any model is loaded
    case("predict", "--features", "{w}/f.npz", "q", "--ckpt", "{w}/none", "--out", "{w}/afile/t.png",
         message="field '--out': cannot be created: {w}/afile is a file, not a folder"),
    case("predict", "--features", "{w}/f.npz", "q", "--ckpt", "{w}/none", "--out", "{w}/adir",
         message="adir, field '--out': is a folder; expected a file name"),
    case("predict", "--features", "{w}/f.npz", "q", "--ckpt", "{w}/none", "--save", "{w}/afile/p.jsonl",
         message="field '--save': cannot be created"),
    # -- unavailable devices (this CPU-only torch build): one line that says what is there
    *([case("predict", "--features", "{w}/f.npz", "q", "--ckpt", "{w}/none", "--device", "cuda",
            message="field '--device': CUDA is not available"),
       case("extract", "--videos", "{w}", "--out", "{w}/feats", "--backbone", "clip", "--device", "cuda:1",
            message="field '--device': CUDA is not available"),
       case("train", "{w}/good.yaml", "--set", "train.accelerator=gpu",
            message="field 'train.accelerator': CUDA is not available")]
      if not __import__("torch").cuda.is_available() else []),
    case("predict", "--features", "{w}/f.npz", "q", "--ckpt", "{w}/none", "--stride", "0",
         message="argument --stride: expected an integer >= 1, got '0'"),
    case("predict", "--features", "{w}/f.npz", "q", "--ckpt", "{w}/none", "--window", "4", "--stride", "8",
         message="field '--stride': must be at most --window (4), got 8"),
    case("predict", "--features", "{w}/f.npz", "q", "--ckpt", "{w}/none", "--top", "0",
         message="argument --top: expected an integer >= 1, got '0'"),
    case("predict", "--features", "{w}/f.npz", "--ckpt", "{w}/none", message="give at least one query"),
    case("predict", "{w}/missing.mp4", "q", "--ckpt", "{w}/none", message="missing.mp4: video file not found"),
    # -- serve: options and the model checked before anything is served or written
    case("serve", "--port", "0", message="argument --port: expected a port number (1 to 65535), got '0'"),
    case("serve", "--port", "http", message="argument --port: expected a port number (1 to 65535), got 'http'"),
    case("serve", "--max-upload-mb", "0", message="argument --max-upload-mb: expected a number > 0"),
    case("serve", "--top", "11", message="argument --top: expected a number of moments (1 to 10)"),
    case("serve", "--ckpt", "{w}/none", message="none: checkpoint not found"),
    case("serve", message="field '--ckpt': no --ckpt given and the model of `momentkit demo --video`"),
    case("serve", "--ckpt", "{w}/afile", message="afile: not a momentkit checkpoint"),
    case("predict", "--features", "{w}/f.npz", "q", "--ckpt", "{w}/none", "--text-features", "{w}/none.npz",
         message="none.npz: text feature file not found"),
    case("predict", "--features", "{w}/f.npz", "q", "--ckpt", "{w}/none", "--text-features", "{w}/t.npz",
         message="none: checkpoint not found"),
    # -- make-search-queries: the input file first, then the outputs, then the endpoint
    case("make-search-queries", "{w}/missing.json", "--out", "{w}/o.jsonl", message="missing.json: file not found"),
    case("make-search-queries", "{w}/empty.jsonl", "--out", "{w}/o.jsonl", message="empty.jsonl: file is empty"),
    case("make-search-queries", "{w}/tal.json", "--out", "{w}/o.jsonl", message="tal.json: expected captions"),
    case("make-search-queries", "{w}/good.jsonl", "--out", "{w}/adir",
         message="adir, field '--out': is a folder; expected a file name"),
    case("make-search-queries", "{w}/good.jsonl", "--out", "{w}/afile/o.jsonl", "--levels",
         message="field '--out': cannot be created: {w}/afile is a file, not a folder"),
    case("make-search-queries", "{w}/good.jsonl", "--out", "{w}/o.jsonl", "--cache", "{w}/afile",
         message="afile, field '--cache': is a file; expected a folder"),
    case("make-search-queries", "{w}/good.jsonl", "--out", "{w}/o.jsonl", "--no-cache",
         message="field '--base-url': no LLM endpoint"),
    case("make-search-queries", "{w}/good.jsonl", "--out", "{w}/o.jsonl", "--threshold", "2",
         message="argument --threshold: expected a number in [-1, 1], got '2'"),
    case("make-search-queries", "{w}/good.jsonl", "--out", "{w}/o.jsonl", "--concurrency", "0",
         message="argument --concurrency: expected an integer >= 1"),
    case("make-search-queries", "{w}/good.jsonl", "--out", "{w}/o.jsonl", "--timeout", "0",
         message="argument --timeout: expected a number > 0"),
    case("make-search-queries", "{w}/good.jsonl", "--out", "{w}/o.jsonl", "-o", "split",
         message="field '--reader-option': expected KEY=VALUE"),
    case("make-search-queries", "{w}/good.jsonl", "--out", "{w}/o.jsonl", "-o", "split=test",
         message="field 'split': format 'grounding-jsonl' has no option 'split'"),
    case("make-search-queries", "{w}/good.jsonl", "--out", "{w}/o.jsonl", "--llm-seed", "-1",
         message="argument --llm-seed: expected an integer >= 0"),
    # -- make-da-benchmark: option names, never Python argument names
    case("make-da-benchmark", "s5", "--epic", "{w}/adir", "--out", "{w}/afile/bench",
         message="field '--out': cannot be created: {w}/afile is a file, not a folder"),
    case("make-da-benchmark", "s5", "--epic", "{w}/adir", "--out", "{w}/afile",
         message="afile, field '--out': is a file; expected a folder"),
    case("make-da-benchmark", "s5", "--out", "{w}/bench", message="field '--epic': s5 needs --epic DIR"),
    case("make-da-benchmark", "s5", "--epic", "{w}/nowhere", "--out", "{w}/bench",
         message="nowhere, field '--epic': folder not found"),
    case("make-da-benchmark", "s5", "--epic", "{w}/adir", "--out", "{w}/bench",
         message="EPIC_100_verb_classes.csv, field '--epic': classes file not found (it belongs in the --epic folder)"),
    case("make-da-benchmark", "s5", "--epic", "{w}/adir", "--out", "{w}/bench", "--val-fraction", "1.5",
         message="argument --val-fraction: expected a number in (0, 1), got '1.5'"),
    case("make-da-benchmark", "s5", "--epic", "{w}/adir", "--out", "{w}/bench", "--seed", "-1",
         message="argument --seed: expected an integer >= 0"),
    case("make-da-benchmark", "s5", "--epic", "{w}/adir", "--out", "{w}/bench", "--exclude-participants", "35",
         message="argument --exclude-participants: expected a participant id such as P35, got '35'"),
    case("make-da-benchmark", "charades-ego", "--charades", "{w}/adir", "--out", "{w}/bench",
         message="field '--charades-ego': charades-ego needs"),
    case("make-da-benchmark", "charades-ego", "--charades", "{w}/adir", "--charades-ego", "{w}/afile",
         "--out", "{w}/bench", message="afile, field '--charades-ego': expected a folder, found a file"),
    case("make-da-benchmark", "s9", "--out", "{w}/bench", message="argument SCENARIO: invalid choice: 's9'"),
    # -- export: the output checked first, then the run; nothing written unless all is well
    case("export", "{w}/adir", "{w}/afile", message="afile, field 'OUT_DIR': is a file; expected a folder"),
    case("export", "{w}/adir", "{w}/afile/out", message="field 'OUT_DIR': cannot be created"),
    case("export", "{w}/good.jsonl", "{w}/adir", message="adir, field 'OUT_DIR': the folder is not empty (give --force"),
    case("export", "{w}/nowhere", "{w}/out", message="nowhere, field 'RUN_DIR': run folder not found"),
    case("export", "{w}/adir", "{w}/out", message="adir: no model.safetensors or checkpoints/best.ckpt in this run"),
    case("export", "{w}/good.jsonl", "{w}/out", message="good.jsonl: not a momentkit checkpoint"),
    # -- compare: inputs read and checked before anything is written
    case("compare", "{w}/missing.json", message="missing.json: no such run folder, study file or summary"),
    case("compare", "{w}/good.jsonl", message="good.jsonl: expected a run folder, a study file (.yaml) or a summary"),
    case("compare", "{w}/adir", message="adir: not a run folder: no metrics_val.json in it or in its subfolders"),
    case("compare", "{w}/tal.json", message="tal.json: not a study summary"),
    case("compare", "{w}/broken.yaml", message="broken.yaml:4: malformed YAML"),
    case("compare", "{w}/typo.yaml", message="typo.yaml, field 'name': missing key"),
    case("compare", "{w}/study.yaml", message="field '--runs': no runs of study 's' here"),
    case("compare", "{w}/study.yaml", "--runs", "{w}/adir", message="adir: no finished run of study 's'"),
    case("compare", "{w}/adir", "--runs", "{w}/adir", message="field '--runs': --runs names the run folder of one study"),
    case("compare", "{w}/study.yaml", "--out", "{w}/afile", message="afile, field '--out': is a file; expected a folder"),
    case("compare", "{w}/study.yaml", "--alpha", "1.5", message="argument --alpha: expected a number in (0, 1)"),
    case("compare", "{w}/study.yaml", "--bootstrap", "0", message="argument --bootstrap: expected an integer >= 1"),
    # -- edit: outputs, video and mask options checked before any model is loaded
    case("edit", "{w}/missing.mp4", "--source", "a", "--target", "b", "--out", "{w}/o.mp4",
         message="missing.mp4, field 'VIDEO': file not found"),
    case("edit", "{w}/videos/a.mp4", "--source", "a", "--target", "b", "--out", "{w}/o.avi",
         message="o.avi, field '--out': the edited video is written as MP4"),
    case("edit", "{w}/videos/a.mp4", "--source", "a", "--target", "b", "--out", "{w}/afile/o.mp4",
         message="field '--out': cannot be created"),
    case("edit", "{w}/videos/a.mp4", "--source", "a", "--target", "b", "--out", "{w}/o.mp4", "--preset", "ocd",
         message="field '--mask': Object-Centric Sampling and Object-Centric ToMe need a foreground mask"),
    case("edit", "{w}/videos/a.mp4", "--source", "a", "--target", "b", "--out", "{w}/o.mp4", "--mask",
         "{w}/nomask", message="nomask, field '--mask': mask file or folder not found"),
    case("edit", "{w}/videos/a.mp4", "--source", "a", "--target", "b", "--out", "{w}/o.mp4", "--mask-word", "a",
         "--box", "0", "0", "4", "4", message="field '--mask-word': give one foreground mask"),
    case("edit", "{w}/videos/a.mp4", "--source", "a", "--target", "b", "--out", "{w}/o.mp4", "--phi", "1",
         message="argument --phi: expected a number > 1"),
    # -- classify: class names, videos and the run checked before any model is loaded
    case("classify", "{w}/videos/a.mp4", message="field '--classes': give --classes or --classes-file"),
    case("classify", "{w}/videos/a.mp4", "--classes", "a, ,a", message="field '--classes': class 'a' is given twice"),
    case("classify", "{w}/videos/a.mp4", "--classes", "a", message="field '--classes': give at least two classes"),
    case("classify", "{w}/missing.mp4", "--classes", "a,b", message="missing.mp4, field 'VIDEO': file not found"),
    case("classify", "{w}/videos/a.mp4", "--classes-file", "{w}/none.txt", message="none.txt: file not found"),
    case("classify", "{w}/videos/a.mp4", "--classes", "a,b", "--ckpt", "{w}/adir",
         message="adir: no model.safetensors or checkpoints/best.ckpt in this run folder"),
    case("classify", "{w}/videos/a.mp4", "--classes", "a,b", "--frames-per-view", "0",
         message="argument --frames-per-view: expected an integer >= 1"),
]


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = tmp_path / "world"
    w.mkdir()
    make_world(w)
    if not ROOT:
        (w / "readonly").mkdir(mode=0o555)
    monkeypatch.chdir(w)  # default outputs (predict's timeline.png, demo's runs/demo) land in the world
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("MOMENTKIT_LLM_BASE_URL", "OPENAI_BASE_URL", "MOMENTKIT_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    yield w
    if not ROOT:
        (w / "readonly").chmod(0o755)


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """``main(argv)`` in-process: exit status and stderr (argparse errors exit through SystemExit)."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", CASES)
def test_bad_input_is_one_clear_error_and_writes_nothing(world, capsys, argv, message):
    argv = [a.format(w=world) for a in argv]
    message = message.format(w=world)
    before = snapshot(world)
    code, err = run_cli(argv, capsys)
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1 and errors[0] == lines[-1], err
    assert lines[-1].startswith(f"momentkit {argv[0]}"), err
    assert message in lines[-1], err
    assert snapshot(world) == before, "the command left files behind"


def test_corpus_covers_every_subcommand():
    from momentkit.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    commands = set(sub.choices) - {"train-tal"}  # a deprecated alias of train
    covered = {p.values[0][0] for p in CASES}
    assert commands <= covered, commands - covered
    assert len(CASES) >= 40


# -- the shared output check ---------------------------------------------------------------------

def test_check_output_accepts_new_and_existing_locations_and_creates_nothing(tmp_path):
    from momentkit.io import check_output

    (tmp_path / "old.json").write_text("{}")
    assert check_output(tmp_path / "old.json", "file") == tmp_path / "old.json"  # replaced later
    assert check_output(tmp_path / "new" / "deep" / "m.json", "file", option="--out").name == "m.json"
    assert check_output(tmp_path / "new" / "deep", "dir") == tmp_path / "new" / "deep"
    assert check_output(tmp_path, "dir") == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]  # no folder, no probe file left


@pytest.mark.parametrize("path, kind, message", [
    ("afile/m.json", "file", "cannot be created: {w}/afile is a file, not a folder"),
    ("afile/a/b", "dir", "cannot be created: {w}/afile is a file, not a folder"),
    ("afile", "dir", "is a file; expected a folder"),
    ("adir", "file", "is a folder; expected a file name"),
    ("newdir/", "file", "ends with a slash"),
    ("", "file", "expected a file name, got an empty one"),
])
def test_check_output_refuses(tmp_path, path, kind, message):
    from momentkit.errors import InputError
    from momentkit.io import check_output

    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    target = f"{tmp_path}/{path}" if path else ""
    with pytest.raises(InputError) as err:
        check_output(target, kind, option="--out")
    assert message.format(w=tmp_path) in str(err.value) and err.value.field == "--out"
