"""X3D backbone for dense prediction: shapes, no temporal stride, size and compute of X3D-M, and
weight loading from this module's and pytorchvideo's layouts."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from momentkit.errors import InputError
from momentkit.models.x3d import (
    X3D,
    X3DConfig,
    load_x3d_weights,
    pytorchvideo_key_map,
    round_width,
    to_pytorchvideo_state_dict,
    x3d_m,
    x3d_tiny,
)

pytestmark = pytest.mark.usefixtures("one_thread")

# pytorchvideo model zoo (docs/source/model_zoo.md, Kinetics-400): X3D-M has 3.79M parameters.
X3D_M_PARAMS = 3.79e6


def tiny(seed: int = 0, **kw) -> X3D:
    torch.manual_seed(seed)
    model = X3D(x3d_tiny(**kw))
    with torch.no_grad():  # non-trivial BN statistics and affine so loading is visible in the outputs
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def meta_x3d_m(**kw) -> X3D:
    with torch.device("meta"):
        return X3D(x3d_m(**kw)).eval()


def flops(model: X3D, t: int, size: int = 224) -> int:
    x = torch.empty(1, 3, t, size, size, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


# ----------------------------------------------------------------------------- shapes
def test_tiny_output_shapes():
    model = tiny(num_classes=5)
    x = torch.randn(2, 3, 6, 64, 64)
    with torch.no_grad():
        logits = model(x)
        last, stages = model.forward_features(x)
    assert logits.shape == (2, 6, 5)
    assert last.shape == (2, 32, 6, 2, 2)  # spatial / 32
    assert [tuple(s.shape) for s in stages] == [(2, 8, 6, 16, 16), (2, 16, 6, 8, 8), (2, 24, 6, 4, 4),
                                                (2, 32, 6, 2, 2)]
    assert torch.equal(stages[-1], last)
    assert model.forward_features(x, return_stages=False)[1] == []


def test_structure_lets_callers_run_stage_by_stage():
    model = tiny(num_classes=3)
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        h = model.stem(x)
        assert h.shape == (1, 8, 4, 16, 16)
        for stage in model.stages:
            h = stage(h)  # an operation (Grid Pool) could go between any two stages
        assert torch.allclose(model.head(h), model(x))
    assert len(model.stages) == 4 and isinstance(model.stages, torch.nn.ModuleList)


@pytest.mark.parametrize("t", [1, 3, 8])
def test_no_temporal_stride_anywhere(t):
    model = tiny()
    x = torch.randn(1, 3, t, 48, 40)
    with torch.no_grad():
        assert model.stem(x).shape[2] == t
        _, stages = model.forward_features(x)
        assert all(s.shape[2] == t for s in stages)
        assert model(x).shape == (1, t, 64)  # no classes: the per-frame fc1 features
    for m in model.modules():
        if isinstance(m, torch.nn.Conv3d):
            assert m.stride[0] == 1


def test_frames_are_independent_outside_the_temporal_receptive_field():
    """Per-frame logits: without Squeeze-Excitation (which pools over the whole clip), changing
    the last frame leaves the logits of frames beyond the temporal receptive field unchanged
    (stem 5 taps, four 3-tap blocks: 6 frames each side)."""
    model = tiny(num_classes=4, se_ratio=0.0)
    x = torch.randn(1, 3, 12, 32, 32)
    y = x.clone()
    y[:, :, -1] += 1.0
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_trains():
    model = tiny(num_classes=3).train()
    logits = model(torch.randn(2, 3, 4, 32, 32))
    logits.sum().backward()
    assert model.stem.conv_s.weight.grad is not None and model.head.fc2.weight.grad is not None


def test_bad_input_and_config():
    with pytest.raises(InputError, match=r"\(B, 3, T, H, W\)"):
        tiny()(torch.randn(1, 3, 32, 32))
    with pytest.raises(InputError, match="same"):
        X3DConfig(stage_out=(8, 16), stage_inner=(18,), stage_blocks=(1, 1), spatial_strides=(2, 2))
    with pytest.raises(InputError, match="num_classes"):
        X3DConfig(num_classes=0)


# ----------------------------------------------------------------------------- X3D-M size and compute
def test_x3d_m_layout_matches_the_thesis_table():
    cfg = x3d_m()
    assert (cfg.stem_channels, cfg.stage_out, cfg.stage_inner, cfg.stage_blocks) == (
        24, (24, 48, 96, 192), (54, 108, 216, 432), (3, 5, 11, 7))
    assert (cfg.conv5_channels, cfg.head_channels, cfg.dropout, cfg.spatial_stride) == (432, 2048, 0.5, 32)
    model = meta_x3d_m()
    # Squeeze-Excitation on every other block, reduced width rounded as in the reference code
    se = [[blk.se is not None for blk in stage] for stage in model.stages]
    assert se[0] == [True, False, True] and sum(map(sum, se)) == 2 + 3 + 6 + 4
    assert [round_width(c, 1 / 16) for c in cfg.stage_inner] == [8, 8, 16, 32]
    assert model.stages[3][0].conv_b.groups == 432  # depthwise


def test_x3d_m_parameter_count():
    n = sum(p.numel() for p in meta_x3d_m(num_classes=400).parameters())
    print(f"X3D-M (400 classes): {n:,} parameters (pytorchvideo model zoo: 3.79M)")
    assert abs(n - X3D_M_PARAMS) / X3D_M_PARAMS < 0.02
    # the thesis's Table 3.2 lists X3D on Charades (157 classes) at 3.29M parameters
    n157 = sum(p.numel() for p in meta_x3d_m(num_classes=157).parameters())
    assert abs(n157 - 3.29e6) / 3.29e6 < 0.02


def test_x3d_m_flops_linear_in_time():
    model = meta_x3d_m(num_classes=157)
    f16, f32 = flops(model, 16), flops(model, 32)
    print(f"X3D-M FLOPs at 224^2: 16 frames {f16 / 1e9:.2f} G, 32 frames {f32 / 1e9:.2f} G "
          f"(FlopCounterMode counts 2 per multiply-add)")
    assert abs(f32 / f16 - 2.0) < 0.1  # within 5%
    # Thesis Table 3.2: X3D takes 37.96 GFLOPs (multiply-adds) for a 128-frame clip at 224^2
    macs128 = flops(model, 128) / 2
    assert abs(macs128 - 37.96e9) / 37.96e9 < 0.03


def test_tiny_flops_linear_in_time():
    model = tiny(num_classes=4)
    x4, x8 = torch.randn(1, 3, 4, 64, 64), torch.randn(1, 3, 8, 64, 64)
    counts = []
    for x in (x4, x8):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
        counts.append(counter.get_total_flops())
    assert abs(counts[1] / counts[0] - 2.0) < 0.1


# ----------------------------------------------------------------------------- weights
def test_round_trip_own_layout(tmp_path):
    src = tiny(seed=1, num_classes=5)
    path = tmp_path / "x3d.pt"
    torch.save(src.state_dict(), path)
    dst = tiny(seed=2, num_classes=5)
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(src(x), dst(x))
    report = load_x3d_weights(dst, path)
    assert report.layout == "momentkit" and report.complete
    assert report.missing == [] and report.unexpected == [] and len(report.loaded) == len(src.state_dict())
    with torch.no_grad():
        assert torch.allclose(src(x), dst(x))


def test_round_trip_safetensors_and_wrapped(tmp_path):
    from safetensors.torch import save_file

    src = tiny(seed=1, num_classes=5)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": {"module." + k: v for k, v in src.state_dict().items()}, "epoch": 3},
               tmp_path / "w.ckpt")
    for name in ("w.safetensors", "w.ckpt"):
        dst = tiny(seed=2, num_classes=5)
        assert load_x3d_weights(dst, tmp_path / name).complete
        for k, v in src.state_dict().items():
            assert torch.equal(dst.state_dict()[k], v), (name, k)


def test_pytorchvideo_key_names():
    """The names of pytorchvideo's ``create_x3d`` (hub ``x3d_m``): ``blocks.0`` stem (a Conv2plus1d
    whose ``conv_t`` is the spatial conv), ``blocks.1-4`` ``res_blocks``, ``blocks.5`` head."""
    model = meta_x3d_m(num_classes=400)
    names = pytorchvideo_key_map(model)
    assert len(names) == 563  # as many tensors as pytorchvideo's X3D-M state dict
    sd = model.state_dict()
    shapes = {pv: tuple(sd[ours].shape) for pv, ours in names.items()}
    assert shapes["blocks.0.conv.conv_t.weight"] == (24, 3, 1, 3, 3)
    assert shapes["blocks.0.conv.conv_xy.weight"] == (24, 1, 5, 1, 1)
    assert shapes["blocks.0.norm.running_var"] == (24,)
    assert shapes["blocks.1.res_blocks.0.branch1_conv.weight"] == (24, 24, 1, 1, 1)
    assert "blocks.1.res_blocks.0.branch1_norm.weight" not in shapes  # same width: no shortcut BN
    assert shapes["blocks.2.res_blocks.0.branch1_norm.weight"] == (48,)
    assert shapes["blocks.4.res_blocks.6.branch2.conv_b.weight"] == (432, 1, 3, 3, 3)
    assert shapes["blocks.4.res_blocks.0.branch2.norm_b.0.weight"] == (432,)
    assert shapes["blocks.4.res_blocks.0.branch2.norm_b.1.block.0.weight"] == (32, 432, 1, 1, 1)
    assert shapes["blocks.4.res_blocks.0.branch2.norm_b.1.block.2.bias"] == (432,)
    assert "blocks.4.res_blocks.1.branch2.norm_b.1.block.0.weight" not in shapes
    assert shapes["blocks.5.pool.pre_conv.weight"] == (432, 192, 1, 1, 1)
    assert shapes["blocks.5.pool.pre_norm.weight"] == (432,)
    assert shapes["blocks.5.pool.post_conv.weight"] == (2048, 432, 1, 1, 1)
    assert shapes["blocks.5.proj.weight"] == (400, 2048)
    assert shapes["blocks.5.proj.bias"] == (400,)


def test_load_pytorchvideo_layout(tmp_path):
    src = tiny(seed=3, num_classes=6)
    path = tmp_path / "X3D_TINY.pyth"
    torch.save({"model_state": to_pytorchvideo_state_dict(src), "epoch": 1}, path)  # as the model zoo saves
    dst = tiny(seed=4, num_classes=6)
    report = load_x3d_weights(dst, path)
    assert report.layout == "pytorchvideo" and report.complete and report.unexpected == []
    x = torch.randn(1, 3, 5, 32, 32)
    with torch.no_grad():
        assert torch.allclose(src(x), dst(x))


def test_missing_and_unexpected_keys_are_reported():
    src = tiny(seed=1, num_classes=5)
    sd = to_pytorchvideo_state_dict(src)
    del sd["blocks.2.res_blocks.0.branch2.conv_a.weight"]
    for k in [k for k in sd if k.endswith("num_batches_tracked")]:
        del sd[k]  # converted checkpoints often lack the counters: not reported
    sd["blocks.9.extra.weight"] = torch.zeros(1)
    report = load_x3d_weights(tiny(seed=2, num_classes=5), sd)
    assert report.missing == ["stages.1.0.conv_a.weight"]
    assert report.unexpected == ["blocks.9.extra.weight"]
    assert not report.complete
    assert "1 missing" in str(report)


def test_shape_mismatch_names_the_parameter_and_both_shapes(tmp_path):
    src = tiny(seed=1, num_classes=5)
    torch.save(src.state_dict(), tmp_path / "own.pt")
    dst = tiny(seed=2, num_classes=7)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(InputError, match=r"head\.fc2\.weight.*\(5, 64\).*\(7, 64\)"):
        load_x3d_weights(dst, tmp_path / "own.pt")
    assert all(torch.equal(before[k], v) for k, v in dst.state_dict().items())  # nothing copied
    with pytest.raises(InputError, match=r"blocks\.5\.proj\.weight.*head\.fc2\.weight.*\(5, 64\).*\(7, 64\)"):
        load_x3d_weights(dst, to_pytorchvideo_state_dict(src))
    # fine-tuning on another label set: keep the fresh classifier
    report = load_x3d_weights(dst, tmp_path / "own.pt", skip=("head.fc2",))
    assert report.skipped == ["head.fc2.weight", "head.fc2.bias"] and report.missing == []
    # a backbone without classes reports the checkpoint's classifier as unexpected
    report = load_x3d_weights(tiny(num_classes=None), to_pytorchvideo_state_dict(src))
    assert report.unexpected == ["blocks.5.proj.weight", "blocks.5.proj.bias"] and report.complete
    wide = tiny(stem_channels=12)
    with pytest.raises(InputError, match=r"stem\.conv_s\.weight.*\(8, 3, 1, 3, 3\).*\(12, 3, 1, 3, 3\)"):
        load_x3d_weights(wide, tmp_path / "own.pt")


def test_unreadable_checkpoint(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_x3d_weights(tiny(), tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read checkpoint"):
        load_x3d_weights(tiny(), bad)
