"""Pieces of the editing pipeline with hand-computed expectations: masks, Canny edges, the
Prompt-to-Prompt token alignment, CLIP-score and temporal consistency, MP4 and strip writing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from momentkit.edit.attention import layer_hw, resize_mask, token_alignment
from momentkit.edit.control import canny, edge_control
from momentkit.edit.masks import box_mask, load_mask_files, word_mask, word_tokens
from momentkit.edit.metrics import ClipEvaluator, clip_score, temporal_consistency
from momentkit.edit.video_io import strip_image, working_size, write_mp4
from momentkit.errors import InputError


def test_box_mask_scales_source_pixels_to_the_working_size():
    m = box_mask((10, 20, 30, 40), 2, source_size=(80, 160), size=(40, 80))
    assert m.shape == (2, 40, 80)
    rows, cols = np.nonzero(m[0])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (10, 19, 5, 14)
    with pytest.raises(InputError, match="not inside"):
        box_mask((0, 0, 200, 10), 1, (80, 160), (40, 80))


def test_mask_files_folder_single_image_and_palette(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    for i in range(3):
        img = np.zeros((8, 8), np.uint8)
        img[i: i + 2, :] = 255
        Image.fromarray(img).save(folder / f"{i}.png")
    masks = load_mask_files(folder, 3, (4, 4))
    assert masks.shape == (3, 4, 4) and masks[0, 0].all() and not masks[0, 2:].any()
    single = load_mask_files(folder / "1.png", 5, (8, 8))
    assert single.shape == (5, 8, 8) and single[:, 1:3].all()
    pal = Image.fromarray(np.array([[0, 2], [0, 0]], np.uint8), mode="P")
    pal.putpalette([0, 0, 0, 10, 10, 10, 20, 20, 20])
    pal.save(tmp_path / "p.png")
    assert load_mask_files(tmp_path / "p.png", 1, (2, 2))[0].tolist() == [[False, True], [False, False]]
    with pytest.raises(InputError, match="found 3 mask images, need one per frame"):
        load_mask_files(folder, 4, (4, 4))
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "empty.png")
    with pytest.raises(InputError, match="empty"):
        load_mask_files(tmp_path / "empty.png", 1, (4, 4))


def test_resize_mask_keeps_thin_objects():
    m = torch.zeros(1, 8, 8, dtype=torch.bool)
    m[0, 3, 5] = True
    small = resize_mask(m, (2, 2))
    assert small.tolist() == [[[False, True], [False, False]]]
    assert layer_hw((16, 12), 48) == (8, 6) and layer_hw((5, 5), 9) == (3, 3)


def test_word_tokens_and_threshold():
    from momentkit.video.testing import tiny_clip_tokenizer

    tok = tiny_clip_tokenizer()
    ids = tok("a red car")["input_ids"]
    pos = word_tokens(tok, ids, "car")
    assert [ids[p] for p in pos] == tok("car", add_special_tokens=False)["input_ids"]
    with pytest.raises(InputError, match="not in the source prompt"):
        word_tokens(tok, ids, "dog")
    maps = torch.tensor([[[0.0, 0.2], [0.5, 1.0]], [[2.0, 0.2], [0.9, 0.1]]])
    assert word_mask(maps, 0.3).tolist() == [[[False, False], [True, True]], [[True, False], [True, False]]]


def test_token_alignment_maps_shared_tokens_to_the_source():
    mapper, alphas = token_alignment([0, 5, 6, 1, 1], [0, 7, 5, 6, 1])
    assert alphas.tolist() == [1, 0, 1, 1, 1]
    assert mapper[[0, 2, 3, 4]].tolist() == [0, 1, 2, 3]


def test_canny_outlines_a_square():
    img = np.zeros((1, 32, 32, 3), np.uint8)
    img[0, 8:24, 8:24] = 255
    edges = canny(torch.from_numpy(img))[0]
    assert edges[8:24, 7:9].any(dim=1).all() and edges[8:24, 23:25].any(dim=1).all()  # left and right sides
    assert not edges[12:20, 12:20].any() and not edges[:4].any()  # nothing inside or far outside
    assert edges.sum() < 4 * 16 * 2  # thin (non-maximum suppression)
    ctrl = edge_control(img)
    assert ctrl.shape == (1, 3, 32, 32) and set(ctrl.unique().tolist()) <= {0.0, 1.0}


def test_clip_score_and_temporal_consistency_by_hand():
    img = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    text = torch.tensor([1.0, 0.0])
    assert clip_score(img, text) == pytest.approx((1 + 1 / math.sqrt(2) + 0) / 3)
    assert temporal_consistency(img) == pytest.approx((1 / math.sqrt(2) + 1 / math.sqrt(2)) / 2)
    assert temporal_consistency(img[:1]) is None


def test_clip_evaluator_loads_by_name(tmp_path):
    from momentkit.video.testing import make_tiny_clip

    make_tiny_clip(tmp_path / "clip")
    ev = ClipEvaluator.from_pretrained(tmp_path / "clip")
    frames = np.random.default_rng(0).integers(0, 255, (3, 40, 48, 3), dtype=np.uint8)
    m = ev(frames, "a red car")
    img = ev.image_embeddings(frames)
    assert img.shape[0] == 3 and torch.allclose(img.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert m.clip_score == pytest.approx(clip_score(img, ev.text_embedding("a red car")), abs=1e-6)
    assert m.temporal_consistency == pytest.approx(temporal_consistency(img), abs=1e-6)
    same = ev(np.repeat(frames[:1], 3, 0), "a red car")
    assert same.temporal_consistency == pytest.approx(1.0, abs=1e-5)


def test_mp4_round_trip_and_strip(tmp_path):
    from momentkit.video.decode import read_frames

    frames = np.zeros((4, 16, 24, 3), np.uint8)
    for i in range(4):
        frames[i, :, : 6 * (i + 1)] = 200
    path = write_mp4(tmp_path / "a.mp4", frames, fps=5)
    back = read_frames(path)
    assert back.frames.shape == (4, 16, 24, 3)
    assert np.abs(back.frames.astype(int) - frames).mean() < 8
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]
    strip = strip_image([frames, frames[:, :, :, ::-1]], gap=2)
    assert strip.shape == (2 * 16 + 2, 4 * 24 + 3 * 2, 3)
    assert (strip[16:18] == 255).all()


def test_working_size_rounds_to_the_model_multiple():
    assert working_size(640, 360, 512, 64) == (512, 896)
    assert working_size(48, 32, 32, 4) == (32, 48)
    with pytest.raises(InputError, match="at least 64"):
        working_size(640, 360, 32, 64)


def test_depth_control_from_a_model_loaded_by_name(tmp_path):
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    from momentkit.edit.control import DepthEstimator, control_images

    torch.manual_seed(0)
    cfg = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37, image_size=32,
                    patch_size=8, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 8, 8, 8],
                    fusion_hidden_size=16, reassemble_factors=[4, 2, 1, 0.5])
    DPTForDepthEstimation(cfg).save_pretrained(tmp_path / "dpt")
    DPTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "dpt")
    depth = DepthEstimator.from_pretrained(tmp_path / "dpt")
    frames = np.random.default_rng(0).integers(0, 255, (3, 24, 40, 3), dtype=np.uint8)
    ctrl = control_images(torch.from_numpy(frames), "depth", depth)
    assert ctrl.shape == (3, 3, 24, 40) and float(ctrl.min()) >= 0.0 and float(ctrl.max()) <= 1.0
    assert torch.equal(ctrl[:, 0], ctrl[:, 2])
    with pytest.raises(InputError, match="cannot load the depth model"):
        DepthEstimator.from_pretrained(tmp_path / "nothing")
    with pytest.raises(InputError, match="needs a depth model"):
        control_images(torch.from_numpy(frames), "depth")
