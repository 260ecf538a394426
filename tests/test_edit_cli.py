"""``momentkit edit`` end to end on a generated 8-frame video with a tiny random Stable Diffusion
(UNet, VAE, CLIP text encoder, ControlNet) saved to a folder and loaded like a downloaded model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from momentkit.cli.main import main
from momentkit.video.decode import read_frames
from momentkit.video.testing import make_tiny_clip, make_video


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from momentkit.edit.testing import make_tiny_sd

    w = tmp_path_factory.mktemp("edit")
    make_tiny_sd(w / "sd", controlnet=True)
    make_video(w / "clip.mp4", duration=1.0, fps=8, width=48, height=32)  # 8 frames
    return w


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_edit_writes_a_playable_mp4_a_strip_and_a_report(world, capsys):
    out = world / "out" / "edited.mp4"
    code, stdout, err = run(["edit", str(world / "clip.mp4"), "--source", "a red square", "--target",
                             "a green square", "--out", str(out), "--diffusion-model", str(world / "sd"),
                             "--size", "32", "--steps", "4", "--box", "12", "0", "36", "20",
                             "--report", str(world / "out" / "report.json"), "--no-progress"], capsys)
    assert code == 0, err
    decoded = read_frames(out)
    assert decoded.frames.shape == (8, 32, 48, 3)
    strip = np.asarray(Image.open(out.with_suffix(".png")))
    assert strip.shape == (3 * 32 + 2 * 2, 8 * 48 + 7 * 2, 3)  # source, mask, edit
    report = json.loads((world / "out" / "report.json").read_text())
    assert report["preset"] == "ocd" and report["frames"] == 8
    assert report["unet_evaluations"] == {"inversion": 6, "generation": 6}
    assert report["latency_s"]["inversion"] > 0 and report["latency_s"]["generation"] > 0
    assert report["foreground_box"] == {"y0": 0, "x0": 6, "y1": 10, "x1": 18}
    assert "wrote" in stdout and "inversion" in stdout
    assert not [p for p in (world / "out").iterdir() if p.name.startswith(".")]  # no temporary file left


def test_controlnet_edit_with_mask_files_and_sparse_attention(world, capsys):
    masks = world / "masks"
    masks.mkdir()
    for i in range(8):
        img = np.zeros((32, 48), np.uint8)
        img[4:20, 10 + i: 26 + i] = 255
        Image.fromarray(img).save(masks / f"{i:05d}.png")
    out = world / "cv.mp4"
    code, _, err = run(["edit", str(world / "clip.mp4"), "--source", "a red square", "--target", "a cat",
                        "--out", str(out), "--diffusion-model", str(world / "sd"), "--style", "controlvideo",
                        "--controlnet", str(world / "sd" / "controlnet"), "--size", "32", "--steps", "3",
                        "--mask", str(masks), "--attention", "sparse", "--no-progress"], capsys)
    assert code == 0, err
    assert read_frames(out).frames.shape == (8, 32, 48, 3)


def test_word_mask_and_clip_metrics(world, capsys):
    make_tiny_clip(world / "clip_model")
    out = world / "word.mp4"
    code, stdout, err = run(["edit", str(world / "clip.mp4"), "--source", "a red square", "--target",
                             "a blue square", "--out", str(out), "--diffusion-model", str(world / "sd"),
                             "--size", "32", "--steps", "3", "--preset", "optimized", "--oc-sampling",
                             "--mask-word", "square",
                             "--clip-model", str(world / "clip_model"), "--report", str(world / "word.json"),
                             "--no-progress"], capsys)
    assert code == 0, err
    metrics = json.loads((world / "word.json").read_text())["metrics"]
    assert -1 <= metrics["clip_score"] <= 1 and -1 <= metrics["temporal_consistency"] <= 1
    assert "CLIP-score" in stdout


def test_an_error_after_loading_the_model_writes_nothing(world, capsys):
    out = world / "none" / "x.mp4"
    code, _, err = run(["edit", str(world / "clip.mp4"), "--source", "a red square", "--target", "a cat",
                        "--out", str(out), "--diffusion-model", str(world / "sd"), "--size", "32",
                        "--mask-word", "dog", "--no-progress"], capsys)
    assert code == 2 and "the word 'dog' is not in the source prompt" in err.strip().splitlines()[-1]
    assert not out.exists() and not out.with_suffix(".png").exists()
    code, _, err = run(["edit", str(world / "clip.mp4"), "--source", "a", "--target", "b", "--out", str(out),
                        "--diffusion-model", str(world / "sd"), "--num-frames", "20", "--size", "32"], capsys)
    assert code == 2 and "need 20" in err
