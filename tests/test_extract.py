"""The extraction job and ``momentkit extract``: stores, clip grouping, resuming, failures, sharding."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

pytest.importorskip("av")
pytest.importorskip("transformers")

from momentkit.cli.main import main  # noqa: E402
from momentkit.data.features import NpzFolderStore  # noqa: E402
from momentkit.errors import InputError  # noqa: E402
from momentkit.video.backbones import create_backbone  # noqa: E402
from momentkit.video.decode import read_frames  # noqa: E402
from momentkit.video.extract import (  # noqa: E402
    clip_of,
    dist_env,
    extract_video,
    list_videos,
    read_queries,
    run_extraction,
    shard,
)
from momentkit.video.testing import (  # noqa: E402
    make_empty,
    make_tiny_clip,
    make_tiny_internvideo2,
    make_truncated,
    make_video,
)

FIXTURE_QUERIES = os.path.join(os.path.dirname(__file__), "fixtures", "annotations", "grounding_small.jsonl")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    make_video(d / "alpha.mp4", duration=4.0, fps=10, width=64, height=48)
    make_video(d / "beta.mp4", duration=6.5, fps=10, width=48, height=64)
    make_video(d / "gamma.mkv", duration=3.0, fps=8, width=64, height=48, codec="mpeg4")
    full = make_video(d / "_src.mp4", duration=6.0, fps=10, width=64, height=48)
    make_truncated(full.path, d / "cut.mp4", 0.5)
    os.unlink(full.path)
    make_empty(d / "empty.mp4")
    (d / "notes.txt").write_text("not a video")
    return d


@pytest.fixture(scope="module")
def clip(clip_dir):
    return create_backbone("clip", str(clip_dir))


def test_clip_numbering_by_hand():
    # fps 2, 2 s clips: targets 0.25, 0.75, ..., so 4 samples per clip
    assert clip_of(np.arange(9), 2.0, 2.0).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2]
    # one frame per 2 s clip (targets 1, 3, 5 s)
    assert clip_of(np.arange(3), 0.5, 2.0).tolist() == [0, 1, 2]
    assert clip_of(np.arange(4), 1.5, 2.0).tolist() == [0, 0, 0, 1]  # targets 0.33, 1, 1.67, 2.33


def test_list_videos(videos, tmp_path):
    names = [p.name for p in list_videos(videos)]
    assert names == ["alpha.mp4", "beta.mp4", "cut.mp4", "empty.mp4", "gamma.mkv"]
    lst = tmp_path / "list.txt"
    lst.write_text(f"# my videos\n{videos / 'beta.mp4'}\n\n../x/rel.mp4\n")
    assert list_videos(lst) == [videos / "beta.mp4", tmp_path / "../x/rel.mp4"]
    assert list_videos(videos / "alpha.mp4") == [videos / "alpha.mp4"]
    with pytest.raises(InputError, match="no such"):
        list_videos(tmp_path / "nothing")
    (tmp_path / "empty_list.txt").write_text("# nothing\n")
    with pytest.raises(InputError, match="empty"):
        list_videos(tmp_path / "empty_list.txt")


def test_sharding_and_environment(monkeypatch):
    items = list("abcdefg")
    parts = [shard(items, r, 3) for r in range(3)]
    assert parts == [["a", "d", "g"], ["b", "e"], ["c", "f"]]
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert dist_env() == (2, 4, 1)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(InputError, match="RANK"):
        dist_env()


def test_features_are_the_mean_of_the_clip_frames(clip, videos):
    # 4 s video, 2 frames per second, 2 s clips: clip 0 = samples 0-3, clip 1 = samples 4-7
    feats = extract_video(clip, videos / "alpha.mp4", fps=2.0, clip_len=2.0, batch_size=1, chunk_size=3)
    frames = read_frames(videos / "alpha.mp4", 2.0, size=32, interpolation="BICUBIC").frames
    assert len(frames) == 8
    per_frame = clip.encode_video(torch.from_numpy(frames), torch.arange(8), 8).numpy()
    expected = np.stack([per_frame[:4].mean(0), per_frame[4:].mean(0)])
    assert feats.shape == (2, 16) and feats.dtype == np.float32
    assert np.allclose(feats, expected, atol=1e-5)
    # batching and chunking do not change the result
    again = extract_video(clip, videos / "alpha.mp4", fps=2.0, clip_len=2.0, batch_size=32, chunk_size=64)
    assert np.allclose(again, feats, atol=1e-5)


def test_default_rate_and_partial_last_clip(clip, videos):
    # 6.5 s, one frame per 2 s clip at its centre: 1, 3, 5 s; the 6-6.5 s remainder has no sample
    assert extract_video(clip, videos / "beta.mp4").shape == (3, 16)
    # 1 s clips: centres 0.5, 1.5, ..., 5.5; 6.5 is not before the end of the video
    assert extract_video(clip, videos / "beta.mp4", clip_len=1.0).shape == (6, 16)
    # 0.5 s clips: centres 0.25 ... 6.25 -> 13 rows, the last covering 6.0-6.5 s
    assert extract_video(clip, videos / "beta.mp4", clip_len=0.5).shape == (13, 16)
    with pytest.raises(InputError, match="less than one frame per clip"):
        extract_video(clip, videos / "beta.mp4", fps=0.25, clip_len=2.0)


def test_memory_stays_bounded(clip, tmp_path, monkeypatch):
    long = make_video(tmp_path / "long.mp4", duration=30.0, fps=10, width=32, height=32)
    seen = []
    real = clip.encode_video

    def spy(frames, clip_index, num_clips):
        seen.append((len(frames), num_clips))
        return real(frames, clip_index, num_clips)

    monkeypatch.setattr(clip, "encode_video", spy)
    feats = extract_video(clip, long.path, fps=2.0, clip_len=2.0, batch_size=3, chunk_size=5)
    assert feats.shape == (15, 16)
    assert max(n for n, _ in seen) <= 3 * 4 and max(c for _, c in seen) <= 3
    assert sum(c for _, c in seen) == 15


def test_cli_extracts_skips_bad_videos_and_resumes(clip_dir, videos, tmp_path, capsys):
    out = tmp_path / "feats"
    args = ["extract", "--backbone", "clip", "--backbone-model", str(clip_dir), "--videos", str(videos),
            "--out", str(out), "--layers", "-2", "-1", "--queries", FIXTURE_QUERIES, "--no-progress",
            "--device", "cpu"]
    assert main(args) == 2  # the good videos are done, the bad ones make the command fail
    printed = capsys.readouterr()
    assert "3 videos extracted, 0 already done, 2 failed" in printed.out
    assert "cut.mp4" in printed.err and "empty.mp4" in printed.err
    assert "  failed: cut: " in printed.err and "  failed: empty: " in printed.err
    last = printed.err.strip().splitlines()[-1]
    assert last.startswith("momentkit extract: error: ") and "2 of 5 videos could not be read" in last
    store = NpzFolderStore(out, "video")
    assert store.keys() == ["alpha", "beta", "gamma"]
    assert store.num_layers == 2 and store.dim == 32
    assert store.get("alpha").shape == (2, 2, 32) and store.get("beta").shape == (2, 3, 32)
    failed = [json.loads(line) for line in (out / "extract_failed.jsonl").read_text().splitlines()]
    assert {f["vid"] for f in failed} == {"cut", "empty"}
    assert all(f["path"].endswith(f["vid"] + ".mp4") and f["vid"] in f["error"] for f in failed)
    info = json.loads((out / "extract_info.json").read_text())
    assert info["backbone"] == "clip" and info["layers"] == [2, 3] and info["fps"] == 0.5
    # queries: one file per unique qid of the annotation file
    qids = sorted({str(q) for q, _ in read_queries(FIXTURE_QUERIES)})
    text = NpzFolderStore(tmp_path / "feats_text", "text", field="features")
    assert sorted(text.keys()) == qids and text.num_layers == 2
    with np.load(tmp_path / "feats_text" / f"qid{qids[0]}.npz") as z:
        assert z["pooler_output"].shape == (16,) and z["last_hidden_state"].shape[1] == 32
    # second run: nothing to do; files untouched
    stamp = os.stat(out / "alpha.npz").st_mtime_ns
    assert main(args) == 2
    assert "0 videos extracted, 3 already done, 2 failed" in capsys.readouterr().out
    assert os.stat(out / "alpha.npz").st_mtime_ns == stamp
    # a damaged output is extracted again
    (out / "beta.npz").write_bytes(b"garbage")
    assert main(args) == 2
    assert "1 videos extracted, 2 already done" in capsys.readouterr().out
    assert NpzFolderStore(out, "video").get("beta").shape == (2, 3, 32)


def test_cli_errors_are_one_line(clip_dir, tmp_path, capsys):
    assert main(["extract", "--backbone", "clip", "--backbone-model", str(clip_dir), "--videos",
                 str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "no such video folder" in capsys.readouterr().err
    make_video(tmp_path / "v.mp4", duration=2.0, fps=5, width=32, height=32)
    assert main(["extract", "--backbone", "clip", "--backbone-model", str(clip_dir), "--videos", str(tmp_path / "v.mp4"),
                 "--out", str(tmp_path / "o"), "--layers", "9", "--no-progress"]) == 2
    assert "layer 9 does not exist" in capsys.readouterr().err


def test_ranks_share_the_work(clip, videos, tmp_path, monkeypatch):
    out = tmp_path / "sharded"
    vids = list_videos(videos)
    reports = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        reports.append(run_extraction(clip, vids, out, progress=False, log=lambda m: None))
    # sorted ids alpha, beta, cut, empty, gamma: rank 0 takes alpha, cut, gamma; rank 1 beta, empty
    assert reports[0].written == ["alpha", "gamma"] and list(reports[0].failed) == ["cut"]
    assert reports[1].written == ["beta"] and list(reports[1].failed) == ["empty"]
    assert (out / "extract_failed.rank0.jsonl").exists() and (out / "extract_failed.rank1.jsonl").exists()
    assert sorted(p.name for p in out.glob("*.npz")) == ["alpha.npz", "beta.npz", "gamma.npz"]


def test_internvideo2_extraction(tmp_path, videos):
    model = make_tiny_internvideo2(tmp_path / "iv2")
    iv2 = create_backbone("internvideo2", str(model), layers=[2, 3])
    report = run_extraction(iv2, [videos / "alpha.mp4"], tmp_path / "out", progress=False,
                            queries=[(7, "red square"), (8, "blue circle")])
    assert report.written == ["alpha"] and report.texts_written == 2
    feats = NpzFolderStore(tmp_path / "out", "video").get("alpha")
    assert feats.shape == (2, 2, 24)  # 2 layers, 2 clips of 2 s, AdaptivePool width
    info = json.loads((tmp_path / "out" / "extract_info.json").read_text())
    assert info["fps"] == 1.0 and info["frames_per_clip"] == 2 and info["pool"] == "attn"
    with np.load(tmp_path / "out_text" / "qid7.npz") as z:
        assert z["features"].shape == (2, 4, 16) and z["pooler_output"].shape == (8,)


def test_refuses_to_mix_setups_in_one_folder(clip, clip_dir, videos, tmp_path):
    out = tmp_path / "mixed"
    run_extraction(clip, [videos / "alpha.mp4"], out, progress=False)
    layered = create_backbone("clip", str(clip_dir), layers=[-1])
    with pytest.raises(InputError, match="extracted differently") as e:
        run_extraction(layered, [videos / "alpha.mp4"], out, progress=False)
    assert "layers: None -> [3]" in str(e.value)
    with pytest.raises(InputError, match="clip_len: 2.0 -> 1.0"):
        run_extraction(clip, [videos / "alpha.mp4"], out, clip_len=1.0, progress=False)
    report = run_extraction(layered, [videos / "alpha.mp4"], out, overwrite=True, progress=False)
    assert report.written == ["alpha"] and NpzFolderStore(out, "video").num_layers == 1
