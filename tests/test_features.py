"""Feature stores: npz folders, concatenation, packed files, ``open_store`` and ``pack-features``."""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest

from momentkit.cli import main as cli_main
from momentkit.data.features import (
    ConcatStore,
    NpzFolderStore,
    PackedStore,
    open_store,
    pack_features,
)
from momentkit.errors import InputError


def write_video(folder, arrays: dict[str, np.ndarray], name="features"):
    folder.mkdir(parents=True, exist_ok=True)
    for vid, arr in arrays.items():
        np.savez(folder / f"{vid}.npz", **{name: arr})
    return folder


def write_text(folder, arrays: dict[int, tuple[np.ndarray, np.ndarray]]):
    folder.mkdir(parents=True, exist_ok=True)
    for qid, (tokens, pooled) in arrays.items():
        np.savez(folder / f"qid{qid}.npz", last_hidden_state=tokens, pooler_output=pooled)
    return folder


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.fixture
def video_dir(tmp_path):
    return write_video(tmp_path / "clip_features", {
        "vidB_0.0_150.0": rand(5, 4, seed=1),
        "vidA_30.0_180.0": rand(3, 4, seed=2),
        "vidC": rand(7, 4, seed=3).astype(np.float64),  # stored as float64, read as float32
    })


@pytest.fixture
def text_dir(tmp_path):
    return write_text(tmp_path / "clip_text_features", {
        7: (rand(6, 3, seed=4), rand(3, seed=5)),
        12: (rand(2, 3, seed=6), rand(3, seed=7)),
    })


# ----------------------------------------------------------------------------- npz folders
def test_video_folder_store(video_dir):
    (video_dir / "README.txt").write_text("not a feature file")
    s = NpzFolderStore(video_dir)
    assert s.keys() == ["vidA_30.0_180.0", "vidB_0.0_150.0", "vidC"]
    assert len(s) == 3 and "vidC" in s and "vidD" not in s
    assert s.missing(["vidC", "x", "x", "y"]) == ["x", "y"]
    assert (s.kind, s.field, s.dim, s.rank, s.num_layers, s.layered) == ("video", "features", 4, 2, None, False)
    a = s.get("vidB_0.0_150.0")
    assert a.dtype == np.float32 and a.shape == (5, 4)
    np.testing.assert_array_equal(a, rand(5, 4, seed=1))
    c = s.get("vidC")
    assert c.dtype == np.float32
    np.testing.assert_array_equal(c, rand(7, 4, seed=3))


def test_text_folder_store(text_dir):
    np.savez(text_dir / "other.npz", features=rand(2, 3))  # not qid*.npz: ignored
    s = NpzFolderStore(text_dir, kind="text")
    assert s.keys() == ["12", "7"]
    assert s.field == "last_hidden_state" and s.dim == 3 and s.rank == 2
    assert 7 in s and "7" in s
    np.testing.assert_array_equal(s.get(7), rand(6, 3, seed=4))
    pooled = NpzFolderStore(text_dir, kind="text", field="pooler_output")
    assert pooled.rank == 1 and pooled.get("12").shape == (3,)
    np.testing.assert_array_equal(pooled.get(12), rand(3, seed=7))
    assert open_store(text_dir).kind == "video"  # other.npz is not a qid file: folder looks like video
    (text_dir / "other.npz").unlink()
    assert open_store(text_dir).kind == "text"


def test_layered_store(tmp_path):
    d = write_video(tmp_path / "layers", {"a": rand(4, 6, 5), "b": rand(4, 3, 5, seed=1)})
    s = NpzFolderStore(d)
    assert (s.rank, s.num_layers, s.dim, s.layered) == (3, 4, 5, True)
    assert s.get("b").shape == (4, 3, 5)
    np.savez(d / "c.npz", features=rand(2, 3, 5))
    with pytest.raises(InputError, match=r"c\.npz.*2 layers.*expected 4"):
        NpzFolderStore(d).get("c")
    t = tmp_path / "text_layers"
    t.mkdir()
    np.savez(t / "qid3.npz", features=rand(4, 9, 2))
    ts = NpzFolderStore(t, kind="text")
    assert (ts.field, ts.num_layers, ts.dim) == ("features", 4, 2)
    assert ts.get(3).shape == (4, 9, 2)


# ----------------------------------------------------------------------------- concatenation
def test_concat_store_normalises_and_truncates(tmp_path):
    slow = write_video(tmp_path / "slowfast", {
        "v": np.array([[3, 4, 0], [0, 0, 2], [1, 0, 0], [9, 9, 9]], np.float32),
        "only_slow": np.ones((2, 3), np.float32),
    })
    clip = write_video(tmp_path / "clip", {"v": np.array([[0, 2], [5, 0], [0, 0.5]], np.float32)})
    s = ConcatStore([NpzFolderStore(slow), NpzFolderStore(clip)])
    assert s.keys() == ["v"] and "only_slow" not in s and s.dim == 5
    out = s.get("v")
    # each row / (its L2 norm + 1e-5), cut to the shorter length 3, then side by side
    expected = np.array([
        [3 / 5.00001, 4 / 5.00001, 0, 0, 2 / 2.00001],
        [0, 0, 2 / 2.00001, 5 / 5.00001, 0],
        [1 / 1.00001, 0, 0, 0, 0.5 / 0.50001],
    ])
    assert out.shape == (3, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    raw = ConcatStore([NpzFolderStore(slow), NpzFolderStore(clip)], normalize=False).get("v")
    np.testing.assert_array_equal(raw[:, 3:], [[0, 2], [5, 0], [0, 0.5]])
    with pytest.raises(InputError, match="only_slow"):
        ConcatStore([NpzFolderStore(slow), NpzFolderStore(clip)]).get("only_slow")


def test_concat_layered_and_mismatch(tmp_path):
    a = write_video(tmp_path / "a", {"v": rand(2, 5, 3)})
    b = write_video(tmp_path / "b", {"v": rand(2, 4, 2, seed=1)})
    s = ConcatStore([NpzFolderStore(a), NpzFolderStore(b)])
    out = s.get("v")
    assert out.shape == (2, 4, 5) and s.num_layers == 2
    np.testing.assert_allclose(np.linalg.norm(out[..., :3], axis=-1), 1.0, atol=1e-4)
    flat = write_video(tmp_path / "flat", {"v": rand(4, 2)})
    with pytest.raises(InputError, match="cannot concatenate"):
        ConcatStore([NpzFolderStore(a), NpzFolderStore(flat)])
    txt = tmp_path / "t"
    txt.mkdir()
    np.savez(txt / "qid1.npz", last_hidden_state=rand(3, 2), pooler_output=rand(2))
    with pytest.raises(InputError, match="text"):
        ConcatStore([NpzFolderStore(flat), NpzFolderStore(txt, kind="text")])


# ----------------------------------------------------------------------------- packing
@pytest.mark.parametrize("kind", ["video", "text", "layered"])
def test_pack_float32_identical(tmp_path, video_dir, text_dir, kind):
    if kind == "video":
        src = NpzFolderStore(video_dir)
    elif kind == "text":
        src = NpzFolderStore(text_dir, kind="text")
    else:
        src = NpzFolderStore(write_video(tmp_path / "l", {"a": rand(3, 5, 2), "b": rand(3, 1, 2, seed=9)}))
    info = pack_features(src, tmp_path / "packed.mkf")
    assert info.count == len(src) and info.path.stat().st_size == info.nbytes
    p = PackedStore(tmp_path / "packed.mkf")
    assert p.keys() == src.keys()
    assert (p.kind, p.field, p.dim, p.rank, p.num_layers) == (src.kind, src.field, src.dim, src.rank, src.num_layers)
    for k in src.keys():
        a, b = src.get(k), p.get(k)
        assert b.dtype == np.float32 and b.flags.writeable
        np.testing.assert_array_equal(a, b)
    assert isinstance(open_store(tmp_path / "packed.mkf"), PackedStore)


def test_pack_float16_halves_size(tmp_path):
    src = NpzFolderStore(write_video(tmp_path / "f", {f"v{i}": rand(50, 64, seed=i) for i in range(4)}))
    i32 = pack_features(src, tmp_path / "a32", dtype="float32")
    i16 = pack_features(src, tmp_path / "a16", dtype="float16")
    data32 = 4 * 50 * 64 * 4
    assert data32 < i32.nbytes < data32 + 1000  # arrays + small index
    assert data32 // 2 < i16.nbytes < data32 // 2 + 1000
    p = open_store(tmp_path / "a16")
    for k in src.keys():
        got = p.get(k)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, src.get(k).astype(np.float16).astype(np.float32))
        np.testing.assert_allclose(got, src.get(k), rtol=1e-3, atol=1e-3)
    big = NpzFolderStore(write_video(tmp_path / "big", {"v": np.full((2, 2), 1e6, np.float32)}))
    with pytest.raises(InputError, match="float16 range"):
        pack_features(big, tmp_path / "big16", dtype="float16")
    assert not (tmp_path / "big16").exists()


def test_pack_is_atomic(tmp_path):
    d = write_video(tmp_path / "f", {f"v{i}": rand(3, 2, seed=i) for i in range(5)})
    np.savez(d / "v3.npz", features=np.array([[1, 2], [np.nan, 0]], np.float32))
    dst = tmp_path / "out" / "feats.mkf"
    with pytest.raises(InputError, match=r"v3\.npz.*NaN"):
        pack_features(d, dst)
    assert not dst.parent.exists() or list(dst.parent.iterdir()) == []
    # a failed re-pack leaves the previous file untouched
    np.savez(d / "v3.npz", features=rand(3, 2, seed=3))
    pack_features(d, dst)
    before = dst.read_bytes()
    np.savez(d / "v4.npz", features=np.array([[np.inf, 0]], np.float32))
    with pytest.raises(InputError):
        pack_features(d, dst, dtype="float16")
    assert dst.read_bytes() == before and [p.name for p in dst.parent.iterdir()] == ["feats.mkf"]


def test_packed_store_pickles(tmp_path, video_dir):
    pack_features(video_dir, tmp_path / "p.mkf")
    p = PackedStore(tmp_path / "p.mkf")
    p.get("vidC")  # opens the memmap
    q = pickle.loads(pickle.dumps(p))
    np.testing.assert_array_equal(q.get("vidC"), rand(7, 4, seed=3))


def test_open_store(tmp_path, video_dir, text_dir):
    assert isinstance(open_store(video_dir), NpzFolderStore)
    t = open_store(text_dir)
    assert t.kind == "text" and t.keys() == ["12", "7"]
    other = write_video(tmp_path / "other", {"vidC": rand(2, 3)})
    c = open_store([video_dir, other])
    assert isinstance(c, ConcatStore) and c.keys() == ["vidC"] and c.get("vidC").shape == (2, 7)
    pack_features(text_dir, tmp_path / "t.mkf")
    with pytest.raises(InputError, match="holds text features, not video"):
        open_store(tmp_path / "t.mkf", kind="video")


# ----------------------------------------------------------------------------- bad input
def test_missing_feature_file_names_key_and_folder(video_dir, text_dir):
    with pytest.raises(InputError) as e:
        NpzFolderStore(video_dir).get("no_such_vid")
    assert "no_such_vid" in str(e.value) and str(video_dir) in str(e.value)
    with pytest.raises(InputError) as e:
        NpzFolderStore(text_dir, kind="text").get(99)
    assert "query '99'" in str(e.value) and "qid99.npz" in str(e.value) and str(text_dir) in str(e.value)


def test_wrong_rank_and_width(tmp_path):
    d = write_video(tmp_path / "f", {"a": rand(3, 4), "b": rand(3, 5), "c": rand(12)})
    s = NpzFolderStore(d)
    with pytest.raises(InputError) as e:
        s.get("b")
    assert "b.npz" in str(e.value) and "width 5" in str(e.value) and "expected 4" in str(e.value)
    with pytest.raises(InputError, match=r"c\.npz.*rank 1.*expected rank 2"):
        s.get("c")
    with pytest.raises(InputError, match=r"a\.npz.*width 4.*expected 8"):
        NpzFolderStore(d, dim=8)
    e1 = write_video(tmp_path / "g", {"a": rand(12)})
    with pytest.raises(InputError, match=r"a\.npz.*expected rank 2 or 3"):
        NpzFolderStore(e1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(tmp_path, bad):
    arr = rand(3, 2)
    arr[1, 1] = bad
    d = write_video(tmp_path / "f", {"a": rand(3, 2), "z": arr})
    with pytest.raises(InputError, match=r"z\.npz.*1 NaN or infinite"):
        NpzFolderStore(d).get("z")


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no \\*\\.npz feature files") as e:
        NpzFolderStore(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(e.value)
    v = write_video(tmp_path / "v", {"a": rand(2, 2)})
    with pytest.raises(InputError, match=r"no qid\*\.npz"):
        NpzFolderStore(v, kind="text")
    with pytest.raises(InputError, match="not found"):
        NpzFolderStore(tmp_path / "nope")
    with pytest.raises(InputError, match="found a file"):
        NpzFolderStore(v / "a.npz")
    with pytest.raises(InputError, match="unknown feature kind"):
        NpzFolderStore(v, kind="audio")
    with pytest.raises(InputError, match="not found"):
        open_store(tmp_path / "nope")


def test_corrupt_npz(tmp_path):
    d = write_video(tmp_path / "f", {"a": rand(3, 2), "b": rand(300, 2)})
    (d / "garbage.npz").write_bytes(b"this is not a zip archive at all")
    raw = (d / "b.npz").read_bytes()
    (d / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    np.save(d / "plain.npy", rand(3, 2))
    (d / "plain.npy").rename(d / "plain.npz")
    with zipfile.ZipFile(d / "wrongkey.npz", "w") as zf:
        zf.writestr("feats.npy", b"")
    s = NpzFolderStore(d)
    for key, pattern in [
        ("garbage", r"garbage\.npz.*corrupt"),
        ("truncated", r"truncated\.npz.*corrupt"),
        ("plain", r"plain\.npz.*not an \.npz archive"),
        ("wrongkey", r"wrongkey\.npz.*field 'features'.*no array 'features'.*feats"),
    ]:
        with pytest.raises(InputError, match=pattern):
            s.get(key)


def test_bad_packed_files(tmp_path, video_dir):
    dst = tmp_path / "p.mkf"
    pack_features(video_dir, dst)
    raw = dst.read_bytes()
    (tmp_path / "cut").write_bytes(raw[:-10])
    with pytest.raises(InputError, match=r"cut.*truncated or damaged"):
        PackedStore(tmp_path / "cut")
    (tmp_path / "junk").write_bytes(b"hello world, not packed")
    with pytest.raises(InputError, match=r"junk.*not a feature folder"):
        open_store(tmp_path / "junk")
    with pytest.raises(InputError, match="bad magic"):
        PackedStore(tmp_path / "junk")
    with pytest.raises(InputError, match=r"single \.npz file"):
        open_store(video_dir / "vidC.npz")
    with pytest.raises(InputError) as e:
        PackedStore(dst).get("missing_vid")
    assert "missing_vid" in str(e.value) and str(dst) in str(e.value)
    with pytest.raises(InputError, match="unsupported pack dtype"):
        pack_features(video_dir, tmp_path / "x", dtype="int8")
    with pytest.raises(InputError, match="destination is a folder"):
        pack_features(video_dir, tmp_path)


# ----------------------------------------------------------------------------- command line
def test_cli_pack_features(tmp_path, video_dir, monkeypatch, capsys):
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ("momentkit.cli.pack",))
    dst = tmp_path / "packs" / "clip.mkf"
    rc = cli_main.main(["pack-features", str(video_dir), str(dst), "--dtype", "float16", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "packed 3 video feature arrays" in out and "float16" in out and str(dst) in out
    size = dst.stat().st_size
    assert f"{size} B" in out  # under 1 KiB: printed in bytes
    p = open_store(dst)
    np.testing.assert_allclose(p.get("vidA_30.0_180.0"), rand(3, 4, seed=2), rtol=1e-3, atol=1e-3)

    rc = cli_main.main(["pack-features", str(tmp_path / "nowhere"), str(dst), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "pack-features: error:" in err and "nowhere" in err and "Traceback" not in err
