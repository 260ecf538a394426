"""Volume Freeze / MixUp / CutMix (thesis 004, Sec. 4.2.2 and appendix 4.5.2-4.5.3) on hand-made clips.

Every expected value below is computed by hand from the thesis' equations (1-based frames t).
"""

from __future__ import annotations

import pytest
import torch

from momentkit.errors import InputError
from momentkit.ops.volume import (
    VolumeAugment,
    cutmix_masks,
    frame_labels,
    mixup_alpha,
    transient_view_shifts,
    volume_cutmix,
    volume_freeze,
    volume_mixup,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def frames(values, c=1, h=2, w=3, dtype=torch.float32):
    """A (T, C, H, W) clip whose frame t is filled with values[t]."""
    v = torch.tensor(values, dtype=torch.float64).reshape(-1, 1, 1, 1)
    return v.expand(-1, c, h, w).to(dtype).clone()


def frame_values(clip):
    """The value of each frame of a clip built by ``frames`` (checks the frame is constant)."""
    flat = clip.reshape(clip.shape[0], -1).double()
    assert torch.all(flat == flat[:, :1])
    return flat[:, 0].tolist()


# ------------------------------------------------------------------------------ Volume Freeze


def test_freeze_positions_and_labels_r2_m3():
    clip = frames([0, 1, 2, 3, 4, 5])  # frame t (1-based) holds t - 1
    out, labels = volume_freeze(clip, 1, r=2, m=3, num_classes=3)
    # concat(v[1:1], {v[2]}^3, v[3:4]) -> frames 1, 2, 2, 2, 3, 4
    assert frame_values(out) == [0, 1, 1, 1, 2, 3]
    assert labels.tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 1, 0]]
    assert out.shape == clip.shape and labels.dtype == torch.float32
    assert labels.sum(1).tolist() == [1, 0, 0, 0, 1, 1]  # frozen frames sum to 0


@pytest.mark.parametrize(("r", "m", "order", "frozen"), [
    (1, 2, [0, 0, 1, 2, 3, 4], [1, 1, 0, 0, 0, 0]),
    (5, 2, [0, 1, 2, 3, 4, 4], [0, 0, 0, 0, 1, 1]),   # r = n - 1, m = n - r + 1 = 2
    (1, 6, [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]),   # the whole clip frozen
    (3, 4, [0, 1, 2, 2, 2, 2], [0, 0, 1, 1, 1, 1]),   # m = n - r + 1: nothing after the segment
])
def test_freeze_extremes(r, m, order, frozen):
    out, labels = volume_freeze(frames(range(6)), torch.tensor([1.0, 0.0]), r=r, m=m)
    assert frame_values(out) == order
    assert labels[:, 0].tolist() == [0.0 if f else 1.0 for f in frozen] and labels[:, 1].sum() == 0


def test_freeze_frame_labels_and_multi_hot():
    per_frame = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 1], [1, 0]], dtype=torch.float64)
    out, labels = volume_freeze(frames(range(5)), per_frame, r=2, m=2)
    assert frame_values(out) == [0, 1, 1, 2, 3]
    # l[1], 0, 0, l[3], l[4]
    assert labels.tolist() == [[1, 0], [0, 0], [0, 0], [1, 1], [0, 1]] and labels.dtype == torch.float64


def test_freeze_random_draws_stay_in_the_thesis_ranges():
    g = torch.Generator().manual_seed(0)
    n, seen = 7, set()
    for _ in range(300):
        out, labels = volume_freeze(frames(range(n)), 0, num_classes=2, generator=g)
        zero = (labels.sum(1) == 0).nonzero().flatten().tolist()
        r, m = zero[0] + 1, len(zero)
        assert zero == list(range(r - 1, r - 1 + m))  # one contiguous frozen segment
        assert 1 <= r <= n - 1 and 2 <= m <= n - r + 1
        assert frame_values(out)[r - 1:r - 1 + m] == [r - 1] * m
        seen.add((r, m))
    assert len(seen) == sum(n - r for r in range(1, n))  # every (r, m) of the thesis' ranges occurs
    a = volume_freeze(frames(range(n)), 0, num_classes=2, generator=torch.Generator().manual_seed(5))
    b = volume_freeze(frames(range(n)), 0, num_classes=2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_freeze_bad_inputs_name_the_argument():
    clip = frames(range(6))
    for kw, field in [({"r": 2, "m": 7}, "m"), ({"r": 1, "m": 7}, "m"), ({"r": 5, "m": 3}, "m"),
                      ({"r": 0, "m": 2}, "r"), ({"r": 6, "m": 2}, "r"), ({"m": 1}, "m")]:
        with pytest.raises(InputError) as e:
            volume_freeze(clip, 0, num_classes=2, **kw)
        assert e.value.field == field
    with pytest.raises(InputError) as e:
        volume_freeze(clip, 0)
    assert e.value.field == "num_classes"
    with pytest.raises(InputError) as e:
        volume_freeze(clip, 2, num_classes=2)
    assert e.value.field == "label"
    with pytest.raises(InputError) as e:
        volume_freeze(frames([0]), 0, num_classes=2)
    assert e.value.field == "clip"


# ------------------------------------------------------------------------------ Volume MixUp


def test_alpha_scenario_one_way():
    # n1 = n2 = 6, r = 2: T((6 - t) / 4) for t = 1..6 = 5/4, 1, 3/4, 1/2, 1/4, 0
    assert mixup_alpha(6, 2, "one-way").tolist() == [1, 1, 0.75, 0.5, 0.25, 0]
    assert mixup_alpha(6, 2, n2=6).tolist() == [1, 1, 0.75, 0.5, 0.25, 0]  # derived: 6 + 2 >= 6
    # r = 0: (4 - t) / 4
    assert mixup_alpha(4, 0, "one-way").tolist() == [0.75, 0.5, 0.25, 0]


def test_alpha_scenario_round_trip():
    # n1 = 10, n2 = 5, r = 3: T(|5 + 6 - 2t| / 5) = 9/5, 7/5, 1, 3/5, 1/5, 1/5, 3/5, 1, 7/5, 9/5
    alpha = mixup_alpha(10, 3, "round-trip", n2=5)
    assert alpha.tolist() == pytest.approx([1, 1, 1, 0.6, 0.2, 0.2, 0.6, 1, 1, 1], abs=1e-15)
    assert torch.equal(alpha, mixup_alpha(10, 3, n2=5))  # 5 + 3 < 10: derived round trip
    # n1 = 8, n2 = 4, r = 2: |8 - 2t| / 4 -> 1, 1, 1/2, 0, 1/2, 1, 1, 1
    assert mixup_alpha(8, 2, "round-trip", n2=4).tolist() == [1, 1, 0.5, 0, 0.5, 1, 1, 1]
    with pytest.raises(InputError) as e:  # 6 + 2 >= 6 is scenario 1
        mixup_alpha(6, 2, "round-trip", n2=6)
    assert e.value.field == "scenario"
    with pytest.raises(InputError) as e:
        mixup_alpha(6, 6, "one-way")
    assert e.value.field == "r"


def test_mixup_one_way_frames_and_soft_labels():
    v1 = frames([10, 20, 30, 40, 50, 60])
    v2 = frames([101, 102, 103, 104, 105, 106])
    out, labels = volume_mixup(v1, 0, v2, 2, r=2, num_classes=3)
    # alpha = 1, 1, .75, .5, .25, 0;  out[t] = alpha v1[t] + (1 - alpha) v2[t - 2]
    # t=3: .75*30 + .25*101 = 47.75; t=4: .5*40 + .5*102 = 71; t=5: .25*50 + .75*103 = 89.75; t=6: v2[4]
    assert frame_values(out) == [10, 20, 47.75, 71, 89.75, 104]
    assert labels.tolist() == [[1, 0, 0], [1, 0, 0], [0.75, 0, 0.25], [0.5, 0, 0.5], [0.25, 0, 0.75], [0, 0, 1]]
    assert labels.sum(1).tolist() == [1.0] * 6  # two different one-hot classes: rows sum to 1


def test_mixup_round_trip_with_a_shorter_clip():
    v1 = frames([10, 20, 30, 40, 50, 60, 70, 80, 90, 100])
    v2 = frames([1, 2, 3, 4, 5])
    out, labels = volume_mixup(v1, torch.tensor([1, 0]), v2, torch.tensor([0, 1]), r=3)
    # alpha = 1, 1, 1, .6, .2, .2, .6, 1, 1, 1; clip 2 frame s at t = s + 3
    # t=4: .6*40 + .4*1 = 24.4; t=5: .2*50 + .8*2 = 11.6; t=6: .2*60 + .8*3 = 14.4; t=7: .6*70 + .4*4 = 43.6
    assert frame_values(out) == pytest.approx([10, 20, 30, 24.4, 11.6, 14.4, 43.6, 80, 90, 100], abs=1e-5)
    assert labels[:, 0].tolist() == pytest.approx([1, 1, 1, 0.6, 0.2, 0.2, 0.6, 1, 1, 1])
    assert labels[:, 1].tolist() == pytest.approx([0, 0, 0, 0.4, 0.8, 0.8, 0.4, 0, 0, 0])
    # the same from equal-length clips, using the first n2 = 5 frames of clip 2
    v2long = frames([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    out2, labels2 = volume_mixup(v1, torch.tensor([1, 0]), v2long, torch.tensor([0, 1]), r=3, n2=5,
                                 scenario="round-trip")
    assert torch.equal(out2, out) and torch.equal(labels2, labels)


def test_mixup_scenario_draws():
    g = torch.Generator().manual_seed(1)
    v1, v2 = frames(range(8)), frames(range(100, 108))
    for _ in range(100):
        _, labels = volume_mixup(v1, 0, v2, 1, num_classes=2, scenario="round-trip", generator=g)
        alpha = labels[:, 0]
        k = int(alpha.argmin())  # Clip1 -> Clip2 -> Clip1: alpha falls, then rises back to 1
        assert alpha[-1] == 1 and alpha[k] < 1
        assert (alpha[:k].diff() <= 0).all() and (alpha[k:].diff() >= 0).all()
        _, labels = volume_mixup(v1, 0, v2, 1, num_classes=2, scenario="one-way", generator=g)
        assert labels[-1, 0] == 0  # ends on clip 2
        assert torch.allclose(labels.sum(1), torch.ones(8))
    with pytest.raises(InputError) as e:
        volume_mixup(v1, 0, v2, 1, num_classes=2, r=2, scenario="round-trip", n2=6)
    assert e.value.field == "scenario"


def test_mixup_uint8_stays_uint8_and_rounds():
    v1 = frames([10, 20, 30, 40, 50, 60], dtype=torch.uint8)
    v2 = frames([101, 102, 103, 104, 105, 106], dtype=torch.uint8)
    out, _ = volume_mixup(v1, 0, v2, 1, r=2, num_classes=2)
    assert out.dtype == torch.uint8
    assert frame_values(out) == [10, 20, 48, 71, 90, 104]  # 47.75 -> 48, 89.75 -> 90


def test_mixup_layouts_and_features():
    g = torch.Generator().manual_seed(3)
    v1 = torch.rand(6, 3, 4, 5, generator=g)
    v2 = torch.rand(6, 3, 4, 5, generator=g)
    ref, lab = volume_mixup(v1, 0, v2, 1, r=1, num_classes=2)
    out, lab_ctw = volume_mixup(v1.transpose(0, 1), 0, v2.transpose(0, 1), 1, r=1, num_classes=2, time_dim=1)
    assert torch.equal(out, ref.transpose(0, 1)) and torch.equal(lab, lab_ctw)
    f1, f2 = torch.arange(12.0).reshape(6, 2), 100 + torch.arange(12.0).reshape(6, 2)
    feat, _ = volume_mixup(f1, 0, f2, 1, r=2, num_classes=2)  # (T, D)
    # t=3: .75*[4, 5] + .25*[100, 101]
    assert feat[2].tolist() == [28.0, 29.0] and feat[5].tolist() == [106.0, 107.0] and feat.shape == (6, 2)


def test_mixup_bad_inputs():
    with pytest.raises(InputError) as e:
        volume_mixup(frames(range(6)), 0, frames(range(6), w=4), 1, num_classes=2)
    assert e.value.field == "clip2"
    with pytest.raises(InputError) as e:
        volume_mixup(frames(range(6)), 0, frames(range(6), dtype=torch.uint8), 1, num_classes=2)
    assert e.value.field == "clip2"
    with pytest.raises(InputError) as e:
        volume_mixup(frames(range(6)), torch.tensor([1, 0]), frames(range(6)), torch.tensor([0, 0, 1]))
    assert e.value.field == "label2"
    with pytest.raises(InputError) as e:
        volume_mixup(frames(range(6)), 0, frames(range(6)), 1, num_classes=2, r=-1)
    assert e.value.field == "r"
    with pytest.raises(InputError) as e:
        volume_mixup(frames(range(6)), 0, frames(range(6)), 1, num_classes=2, time_dim=4)
    assert e.value.field == "time_dim"


# ------------------------------------------------------------------------------ Volume CutMix


def test_view_mask_is_half_the_frame():
    # W = 8, delta = 1, w = 4: M = clip((5 - (j + 1/2)) / 2) = 1, 1, 1, .75, .25, 0, 0, 0
    masks = cutmix_masks(3, 8, mode="view", delta=1)
    assert masks.tolist() == [[1, 1, 1, 0.75, 0.25, 0, 0, 0]] * 3
    assert masks.mean(1).tolist() == [0.5] * 3


def test_window_masks_follow_alpha():
    # n1 = n2 = 6, r = 2, W = 8, delta = 1: alpha = 1, 1, .75, .5, .25, 0 -> w_t = -, -, 6, 4, 2, 0
    masks = cutmix_masks(6, 8, mode="window", r=2, n2=6, delta=1)
    assert masks.tolist() == [
        [1, 1, 1, 1, 1, 1, 1, 1],               # t=1, 2: before the overlap, clip 1 only
        [1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 0.75, 0.25, 0],         # w = 6
        [1, 1, 1, 0.75, 0.25, 0, 0, 0],         # w = 4
        [1, 0.75, 0.25, 0, 0, 0, 0, 0],         # w = 2
        [0.25, 0, 0, 0, 0, 0, 0, 0],            # w = 0: (1 - 1/2) / 2 in column 0
    ]
    assert masks.mean(1).tolist() == [1, 1, 0.75, 0.5, 0.25, 0.03125]
    # W = 10, alpha = .25 -> W alpha = 2.5 rounds half up to w = 3; hard boundary delta = 0
    hard = cutmix_masks(6, 10, mode="window", r=2, n2=6, delta=0)
    assert hard[4].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0] and hard[3].tolist() == [1] * 5 + [0] * 5


def test_window_cutmix_frames_and_area_labels():
    v1 = frames([10, 20, 30, 40, 50, 60], h=2, w=8)
    v2 = frames([101, 102, 103, 104, 105, 106], h=2, w=8)
    out, labels = volume_cutmix(v1, 0, v2, 1, mode="window", r=2, delta=1, num_classes=2)
    assert out.shape == v1.shape
    # t=4 (w = 4): M = 1, 1, 1, .75, .25, 0, 0, 0 over v1[4] = 40 and v2[2] = 102
    assert out[3, 0, 0].tolist() == [40, 40, 40, 55.5, 86.5, 102, 102, 102]
    assert torch.equal(out[3, 0, 0], out[3, 0, 1])  # the same on every row
    # t=6 (w = 0): .25*60 + .75*104 = 93 in column 0, v2[4] elsewhere
    assert out[5, 0, 0].tolist() == [93] + [104] * 7
    assert torch.equal(out[:2], v1[:2])
    assert labels[:, 0].tolist() == [1, 1, 0.75, 0.5, 0.25, 0.03125]
    assert labels[:, 1].tolist() == [0, 0, 0.25, 0.5, 0.75, 0.96875]


def test_view_shifts_and_frames():
    d1, d2 = transient_view_shifts(3, 4)  # w = 2, tau = 0, 1/2, 1
    assert d1.tolist() == [-2, -1, 0] and d2.tolist() == [0, 1, 2]
    cols = torch.arange(4.0)
    v1 = (cols + 10 * torch.arange(1.0, 4.0).reshape(3, 1)).reshape(3, 1, 1, 4).expand(3, 2, 2, 4)
    v2 = 100 + v1
    out, labels = volume_cutmix(v1, torch.tensor([1, 0, 0]), v2, torch.tensor([0, 0, 1]), mode="view", delta=0)
    # left window: clip 1 columns 2,3 -> 1,2 -> 0,1; right window: clip 2 columns 2,3 -> 1,2 -> 0,1
    assert out[:, 0, 0].tolist() == [[12, 13, 112, 113], [21, 22, 121, 122], [30, 31, 130, 131]]
    assert torch.equal(out[:, 1], out[:, 0]) and torch.equal(out[:, :, 1], out[:, :, 0])
    assert labels.tolist() == [[0.5, 0, 0.5]] * 3
    # odd W = 5: w = round(2.5) = 3 (halves up), area 0.6, the labels stay 0.5 / 0.5 as in the thesis
    assert cutmix_masks(2, 5, mode="view", delta=0).tolist() == [[1, 1, 1, 0, 0]] * 2
    _, labels = volume_cutmix(torch.rand(2, 1, 1, 5), 0, torch.rand(2, 1, 1, 5), 1, mode="view", delta=0,
                              num_classes=2)
    assert labels.tolist() == [[0.5, 0.5]] * 2


def test_view_with_a_ramp_repeats_edges():
    cols = torch.arange(8.0)
    v1 = cols.reshape(1, 1, 1, 8).expand(2, 1, 1, 8)
    v2 = 100 + v1
    out, _ = volume_cutmix(v1, 0, v2, 1, mode="view", delta=1, num_classes=2)
    # t=1: d1 = -4 -> clip 1 columns min(x + 4, 7), d2 = 0; M = 1, 1, 1, .75, .25, 0, 0, 0
    # col 3: .75*7 + .25*103 = 31; col 4: .25*7 (edge repeated) + .75*104 = 79.75
    assert out[0, 0, 0].tolist() == [4, 5, 6, 31, 79.75, 105, 106, 107]
    # t=2: d1 = 0, d2 = 4 -> clip 2 columns max(x - 4, 0)
    # col 3: .75*3 + .25*100 = 27.25; col 4: .25*4 + .75*100 = 76
    assert out[1, 0, 0].tolist() == [0, 1, 2, 27.25, 76, 101, 102, 103]


def test_cutmix_uint8_layouts_and_errors():
    g = torch.Generator().manual_seed(4)
    v1 = torch.randint(0, 256, (5, 3, 4, 6), generator=g, dtype=torch.uint8)
    v2 = torch.randint(0, 256, (5, 3, 4, 6), generator=g, dtype=torch.uint8)
    for mode, kw in [("view", {}), ("window", {"r": 1})]:
        ref, lab = volume_cutmix(v1, 0, v2, 1, mode=mode, num_classes=2, **kw)
        assert ref.dtype == torch.uint8 and ref.shape == v1.shape and lab.shape == (5, 2)
        out, lab2 = volume_cutmix(v1.transpose(0, 1), 0, v2.transpose(0, 1), 1, mode=mode, num_classes=2,
                                  time_dim=1, **kw)
        assert torch.equal(out, ref.transpose(0, 1)) and torch.equal(lab, lab2)
        assert torch.allclose(lab.sum(1), torch.ones(5))
    with pytest.raises(InputError) as e:
        volume_cutmix(torch.zeros(6, 4), 0, torch.zeros(6, 4), 1, num_classes=2)  # features
    assert e.value.field == "clip1"
    with pytest.raises(InputError) as e:
        volume_cutmix(v1, 0, v2[:4], 1, mode="view", num_classes=2)
    assert e.value.field == "clip2"
    with pytest.raises(InputError) as e:
        volume_cutmix(v1, 0, v2, 1, mode="view", r=2, num_classes=2)
    assert e.value.field == "r"
    with pytest.raises(InputError) as e:
        volume_cutmix(v1, 0, v2, 1, mode="diagonal", num_classes=2)
    assert e.value.field == "mode"
    with pytest.raises(InputError) as e:
        volume_cutmix(v1, 0, v2, 1, delta=4, num_classes=2)  # > W/2 = 3
    assert e.value.field == "delta"


def test_lengths_never_grow():
    g = torch.Generator().manual_seed(7)
    v1, v2 = torch.rand(9, 1, 2, 8, generator=g), torch.rand(12, 1, 2, 8, generator=g)
    for _ in range(30):
        assert volume_freeze(v1, 0, num_classes=2, generator=g)[0].shape == v1.shape
        for fn in (volume_mixup, lambda *a, **k: volume_cutmix(*a, mode="window", **k)):
            out, labels = fn(v1, 0, v2, 1, num_classes=2, generator=g, scenario="random")
            assert out.shape == v1.shape and labels.shape == (9, 2)
            assert torch.allclose(labels.sum(1), torch.ones(9))


# ------------------------------------------------------------------------------ the transform


def test_volume_augment_probabilities_and_pairs():
    g = torch.Generator().manual_seed(0)
    aug = VolumeAugment(freeze=0.2, mixup=0.3, cutmix=0.4, generator=g)
    counts = {"none": 0, "freeze": 0, "mixup": 0, "cutmix": 0}
    for _ in range(4000):
        counts[aug.choose()] += 1
    assert counts["freeze"] == pytest.approx(800, abs=90) and counts["mixup"] == pytest.approx(1200, abs=100)
    assert counts["cutmix"] == pytest.approx(1600, abs=110) and counts["none"] == pytest.approx(400, abs=70)
    clip = frames(range(6), w=8)
    with pytest.raises(InputError) as e:
        aug(clip, 0)
    assert e.value.field == "clip2"
    out, labels = VolumeAugment(num_classes=2)(clip, 1)
    assert torch.equal(out, clip) and labels.tolist() == [[0, 1]] * 6  # nothing drawn: pseudo labels


def test_volume_augment_matches_the_functions():
    clip, clip2 = frames(range(6), w=8), frames(range(100, 106), w=8)
    aug = VolumeAugment(freeze=1.0, num_classes=3)
    a = aug(clip, 2, generator=torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(9)
    torch.rand((), generator=g)  # the draw of the augmentation
    b = volume_freeze(clip, 2, num_classes=3, generator=g)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    out, labels = VolumeAugment(cutmix=1.0, num_classes=3)(clip, 0, clip2, 1)
    assert labels.tolist() == [[0.5, 0.5, 0]] * 6  # the transient view by default
    for kw, field in [({"freeze": 1.5}, "freeze"), ({"mixup": 0.7, "cutmix": 0.7}, "cutmix"),
                      ({"cutmix_mode": "x"}, "cutmix_mode"), ({"mixup_scenario": "x"}, "mixup_scenario")]:
        with pytest.raises(InputError) as e:
            VolumeAugment(**kw)
        assert e.value.field == field


def test_volume_augment_batch():
    g = torch.Generator().manual_seed(2)
    clips = torch.rand(4, 6, 3, 4, 8, generator=g)
    aug = VolumeAugment(freeze=0.3, mixup=0.3, cutmix=0.4, mixup_scenario="random", cutmix_mode="random",
                        num_classes=5, generator=g)
    out, labels = aug.batch(clips, torch.tensor([0, 1, 2, 3]))
    assert out.shape == clips.shape and labels.shape == (4, 6, 5)
    assert labels.sum(-1).le(1 + 1e-6).all() and labels.ge(0).all()
    assert frame_labels(torch.tensor(3), 2, num_classes=5).tolist() == [[0, 0, 0, 1, 0]] * 2


def test_label_and_clip_forms():
    import numpy as np

    assert frame_labels(np.int64(1), 2, num_classes=3).tolist() == [[0, 1, 0]] * 2
    assert frame_labels([True, False, True], 2).tolist() == [[1, 0, 1]] * 2  # multi-hot
    for bad, field in [(0.5, "label"), (torch.zeros(2, 2, 2), "label"), (torch.zeros(3, 2), "label")]:
        with pytest.raises(InputError) as e:
            frame_labels(bad, 2)
        assert e.value.field == field
    out, labels = volume_freeze(np.arange(4, dtype=np.uint8), [1.0], r=1, m=2)  # a numpy (T,) sequence
    assert out.tolist() == [0, 0, 1, 2] and out.dtype == torch.uint8 and labels.tolist() == [[0], [0], [1], [1]]
