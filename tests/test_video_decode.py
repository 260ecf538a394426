"""Decoding with PyAV: sampling at a target fps with exact timestamps, resizing, chunks, errors."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("av")

from momentkit.errors import InputError  # noqa: E402
from momentkit.video.decode import (  # noqa: E402
    iter_frames,
    num_samples,
    output_size,
    probe,
    read_frames,
    sample_time,
)
from momentkit.video.testing import (  # noqa: E402
    frame_number_of,
    make_empty,
    make_truncated,
    make_video,
    marker_levels,
    render_frame,
)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    # 4 s at 10 fps: 40 frames, frame i shown during [i/10, (i+1)/10)
    return make_video(tmp_path_factory.mktemp("dec") / "v.mp4", duration=4.0, fps=10, width=96, height=64)


def test_generator_marker_encodes_the_frame_number():
    levels = marker_levels(5)
    assert np.allclose(levels, [40, 90, 140, 190, 240])
    img = render_frame(3, 10.0, 64, 32, shapes=(), levels=levels)
    assert img.shape == (32, 64, 3) and img.dtype == np.uint8
    assert (img[:, :16] == 190).all() and (img[:, 16:] == 24).all()
    assert frame_number_of(img, 5).tolist() == [3]


def test_probe(video):
    info = probe(video.path)
    assert (info.width, info.height) == (96, 64)
    assert info.fps == pytest.approx(10.0)
    assert info.duration == pytest.approx(4.0, abs=1e-6)
    assert info.num_frames == 40 and info.codec == "h264"


def test_every_frame_with_its_presentation_time(video):
    ch = read_frames(video.path)
    assert ch.frames.shape == (40, 64, 96, 3) and ch.frames.dtype == np.uint8
    assert ch.indices.tolist() == list(range(40))
    assert np.allclose(ch.times, np.arange(40) / 10.0, atol=1e-9)
    assert frame_number_of(ch.frames, 40).tolist() == list(range(40))


@pytest.mark.parametrize("fps", [0.5, 3.0, 25.0])
def test_sampling_takes_the_frame_shown_at_each_target_time(video, fps):
    ch = read_frames(video.path, fps)
    # sample k targets (k + 0.5) / fps; the frame shown then is floor(target * 10)
    n = math.floor(4.0 * fps + 0.5 - 1e-9)  # targets strictly before the 4 s end
    k = np.arange(n)
    expected = np.floor((k + 0.5) / fps * 10.0 + 1e-9).astype(int)
    assert ch.indices.tolist() == k.tolist()
    assert frame_number_of(ch.frames, 40).tolist() == expected.tolist()
    assert np.allclose(ch.times, expected / 10.0, atol=1e-9)


def test_sample_helpers_by_hand():
    assert sample_time(0, 0.5) == pytest.approx(1.0)
    assert np.allclose(sample_time(np.arange(3), 2.0), [0.25, 0.75, 1.25])
    assert num_samples(4.0, 0.5) == 2  # targets 1 s, 3 s
    assert num_samples(5.0, 0.5) == 2  # 5 s is not before the end
    assert num_samples(5.01, 0.5) == 3
    assert num_samples(0.0, 3.0) == 0


def test_ntsc_rate_timestamps_are_exact(tmp_path):
    rate = 30000 / 1001
    v = make_video(tmp_path / "ntsc.mp4", duration=1.0, fps=rate, width=32, height=32)
    ch = read_frames(v.path)
    step = float(Fraction(1001, 30000))
    assert len(ch) == v.num_frames == 30
    assert np.allclose(ch.times, np.arange(30) * step, atol=1e-6)


def test_chunks_are_bounded_and_concatenate_to_the_whole(video):
    chunks = list(iter_frames(video.path, 7.0, chunk_size=4))
    assert all(len(c) <= 4 for c in chunks) and len(chunks) == 7  # 28 samples
    whole = read_frames(video.path, 7.0, chunk_size=1000)
    assert np.array_equal(np.concatenate([c.frames for c in chunks]), whole.frames)
    assert np.array_equal(np.concatenate([c.indices for c in chunks]), np.arange(28))


def test_resize_short_side_and_exact(video):
    assert output_size(96, 64, 32) == (48, 32)  # (width, height): short side 64 -> 32
    assert output_size(64, 96, 32) == (32, 48)
    assert output_size(96, 64, (20, 30)) == (30, 20)
    assert read_frames(video.path, 1.0, size=32).frames.shape == (4, 32, 48, 3)
    small = read_frames(video.path, 1.0, size=(20, 30))
    assert small.frames.shape == (4, 20, 30, 3)
    assert frame_number_of(small.frames, 40).tolist() == [5, 15, 25, 35]


def test_bad_arguments(video):
    with pytest.raises(InputError, match="fps"):
        read_frames(video.path, 0.0)
    with pytest.raises(InputError, match="interpolation"):
        read_frames(video.path, 1.0, interpolation="nearest-ish")


def test_missing_empty_folder_and_junk_files(tmp_path):
    with pytest.raises(InputError, match="not found") as e:
        read_frames(tmp_path / "nope.mp4")
    assert "nope.mp4" in str(e.value)
    with pytest.raises(InputError, match=r"empty \(0 bytes\)") as e:
        read_frames(make_empty(tmp_path / "empty.mp4"))
    assert "empty.mp4" in str(e.value)
    with pytest.raises(InputError, match="folder"):
        probe(tmp_path)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"definitely not a video " * 50)
    with pytest.raises(InputError, match="cannot open video") as e:
        probe(junk)
    assert e.value.path == str(junk)


def test_truncated_files_name_the_file(tmp_path):
    # index at the end (PyAV's default): a cut file does not open
    plain = make_video(tmp_path / "plain.mp4", duration=6.0, fps=10, width=48, height=32)
    cut = make_truncated(plain.path, tmp_path / "cut.mp4", 0.5)
    with pytest.raises(InputError, match="truncated|not a video") as e:
        read_frames(cut, 1.0)
    assert e.value.path == str(cut)
    # index first (web "faststart" files): it opens, the frames stop early
    fast = make_video(tmp_path / "fast.mp4", duration=6.0, fps=10, width=96, height=64, faststart=True)
    cut2 = make_truncated(fast.path, tmp_path / "cut2.mp4", 0.8)
    with pytest.raises(InputError, match="truncated") as e:
        read_frames(cut2, 1.0)
    assert "cut2.mp4" in str(e.value) and "6.00 s" in str(e.value)
    partial = read_frames(cut2, 1.0, strict=False)  # what is there can still be read on request
    assert 0 < len(partial) < 6
    assert frame_number_of(partial.frames, 60).tolist() == [5, 15, 25, 35, 45][: len(partial)]
