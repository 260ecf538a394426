"""Cross-domain TAL benchmark builders: EPIC-Kitchens S1-S6 and Charades -> CharadesEgo."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import DATA
from momentkit.cli.main import main
from momentkit.data.annotations import AnnotationWarning, read_detection_json
from momentkit.errors import InputError
from momentkit.tal.benchmarks import (
    EPIC_VERBS,
    THESIS_VERB_COUNTS,
    build_charades_ego,
    build_epic_benchmark,
    hash_split,
    read_colour_map,
)

EPIC = DATA / "epic_kitchens_100"
VERBS = ["take", "put", "wash", "open", "close", "insert", "turn-on", "cut", "turn-off", "pour"]  # thesis Sec. 2.4.1


# ------------------------------------------------------------------ S5 / S6 on the real EPIC files
def _era(video: str) -> str:
    return "55" if len(video.split("_")[1]) == 2 else "100"


@pytest.fixture(scope="module")
def independent_counts():
    """Videos and per-verb segments per era straight from the CSVs, without the builder's helpers."""
    with open(EPIC / "EPIC_100_verb_classes.csv", newline="") as fh:
        key_to_id = {row["key"]: int(row["id"]) for row in csv.DictReader(fh)}
    wanted = {key_to_id[v]: v for v in VERBS}
    videos = {"55": set(), "100": set()}
    per_video = Counter()
    segs = {"55": Counter(), "100": Counter()}

    def add(video, verb):
        if video.startswith("P35_"):  # the thesis's "100" domain has no P35 video
            return
        videos[_era(video)].add(video)
        if verb in wanted:
            segs[_era(video)][wanted[verb]] += 1
            per_video[video] += 1

    with open(EPIC / "EPIC_100_train_new.txt") as fh:
        for line in fh:
            path, _, _, verb, _ = line.split()
            add(path.split("/")[-1], int(verb))
    with open(EPIC / "EPIC_100_validation.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            add(row["video_id"], int(row["verb_class"]))
    return videos, segs, per_video


@pytest.fixture(scope="module")
def s5():
    return build_epic_benchmark("s5", EPIC)


@pytest.fixture(scope="module")
def s6():
    return build_epic_benchmark("S6", EPIC)


def test_s5_counts_match_the_csvs_and_the_thesis_totals(s5, independent_counts, tmp_path_factory):
    videos, segs, per_video = independent_counts
    # Thesis Tab. 2.1 / 2.2 (training + validation): All(55) 342 + 90 videos, 25634 + 5510 segments;
    # All(100) 150 + 44 videos, 20512 + 6526 segments.
    assert (len(videos["55"]), sum(segs["55"].values())) == (342 + 90, 25634 + 5510)
    assert (len(videos["100"]), sum(segs["100"].values())) == (150 + 44, 20512 + 6526)
    for role, era in (("source", "55"), ("target", "100")):
        total = s5.summary[role]["total"]
        assert total["videos"] == len(videos[era])
        assert total["segments"] == sum(segs[era].values())
        assert total["per_verb"] == {v: segs[era][v] for v in VERBS}
    # the written files say the same
    paths = s5.write(tmp_path_factory.mktemp("s5"))
    for role, era in (("source", "55"), ("target", "100")):
        db = json.loads(paths[role].read_text())["database"]
        assert set(db) == videos[era]
        assert Counter(a["label"] for e in db.values() for a in e["annotations"]) == segs[era]
        assert {e["subset"] for e in db.values()} == {"training", "validation"}
        for video, entry in db.items():
            assert len(entry["annotations"]) == per_video[video]
            assert all(a["label_id"] == VERBS.index(a["label"]) for a in entry["annotations"])
        # the trainer's reader takes the file back
        assert len(read_detection_json(paths[role], subset="training")) == sum(
            e["subset"] == "training" for e in db.values())


def test_thesis_verb_columns_pair_up_uniquely(independent_counts):
    """Tab. 2.1 rows as printed (columns c1..c10); every verb total is one training + validation pair."""
    _, segs, _ = independent_counts
    printed = {"All(55)": ([5529, 6449, 1762, 2717, 1708, 1013, 3828, 760, 1109, 759],
                           [1352, 1110, 451, 587, 400, 170, 715, 209, 284, 232]),
               "All(100)": ([930, 6347, 1319, 788, 1173, 5021, 1715, 545, 459, 2215],
                            [1573, 540, 395, 306, 1964, 241, 228, 291, 812, 176])}
    for name, era in (("All(55)", "55"), ("All(100)", "100")):
        train, val = printed[name]
        used_t, used_v = set(), set()
        for k, verb in enumerate(VERBS):
            pairs = [(i, j) for i in range(10) for j in range(10) if train[i] + val[j] == segs[era][verb]]
            assert len(pairs) == 1, (name, verb, pairs)
            i, j = pairs[0]
            used_t.add(i)
            used_v.add(j)
            assert THESIS_VERB_COUNTS[name]["training"][k] == train[i]
            assert THESIS_VERB_COUNTS[name]["validation"][k] == val[j]
        assert used_t == used_v == set(range(10))


def test_epic_segments_verbs_and_times(s5):
    src = {s.video: s for s in s5.source}
    first = src["P01_01"].segments[0]  # train_new.txt line 1: "P01/rgb_frames/P01_01 8 202 3 3" (open door)
    assert (first.label, first.label_id) == ("open", 3)
    assert first.start == pytest.approx(8 / 60) and first.end == pytest.approx(202 / 60)
    assert src["P01_01"].duration == pytest.approx(1652.152817)
    val = src["P01_11"].segments[0]  # EPIC_100_validation.csv P01_11_0 take plate 00:00:00.00 - 00:00:01.89
    assert (val.label, val.start, val.end) == ("take", 0.0, pytest.approx(1.89))
    assert "put-down" not in {g.label for s in s5.source for g in s.segments}  # only class keys, only 10
    assert {g.label for s in s5.source + s5.target for g in s.segments} == set(VERBS)
    assert src["P04_15"].segments == ()  # no segment of the 10 verbs: kept, as the thesis's 432 videos
    assert s5.classes == tuple(VERBS)


def test_s5_s6_domains_are_disjoint_and_share_one_split(s5, s6):
    src, tgt = {s.video for s in s5.source}, {s.video for s in s5.target}
    assert not src & tgt
    assert all(_era(v) == "55" for v in src) and all(_era(v) == "100" for v in tgt)
    assert not any(v.startswith("P35_") for v in src | tgt)
    split5 = {s.video: s.subset for s in s5.source + s5.target}
    split6 = {s.video: s.subset for s in s6.source + s6.target}
    assert split5 == split6
    assert {s.video for s in s6.source} == tgt and {s.video for s in s6.target} == src
    # the thesis's validation sizes: 90 of the old videos, 44 of the new
    assert Counter(s.subset for s in s5.source)["validation"] == 90
    assert Counter(s.subset for s in s5.target)["validation"] == 44


def test_hash_split_is_the_documented_sha256_order():
    vids = [f"P01_{i:02d}" for i in range(10)]
    got = hash_split(vids, 3, seed=7)
    ranked = sorted(vids, key=lambda v: hashlib.sha256(f"7:{v}".encode()).hexdigest())
    assert {v for v, s in got.items() if s == "validation"} == set(ranked[:3])
    assert hash_split(vids, 3, seed=8) != got


# ------------------------------------------------------------------ tiny EPIC folder: S1-S4, errors
VERB_KEYS = VERBS + ["mix", "move"]


@pytest.fixture()
def tiny_epic(tmp_path):
    d = tmp_path / "epic"
    d.mkdir()
    (d / "EPIC_100_verb_classes.csv").write_text(
        "id,key,instances,category\n" + "".join(f"{i},{k},\"['{k}']\",x\n" for i, k in enumerate(VERB_KEYS)))
    info = [("P01_01", 100, 59.94), ("P01_02", 50, 59.94), ("P02_01", 80, 59.94), ("P03_01", 60, 59.94),
            ("P01_101", 70, 50.0), ("P02_101", 40, 50.0), ("P03_101", 30, 50.0), ("P03_102", 20, 50.0)]
    (d / "EPIC_100_video_info.csv").write_text(
        "video_id,duration,fps,resolution\n" + "".join(f"{v},{t},{f},1920x1080\n" for v, t, f in info))
    # frames: 60 per second for PXX_YY, 50 for PXX_1YY
    (d / "EPIC_100_train_new.txt").write_text(
        "P01/rgb_frames/P01_01 60 180 0 1\n"      # take 1-3 s
        "P01/rgb_frames/P01_01 300 420 10 1\n"    # mix: dropped
        "P01/rgb_frames/P01_01 600 660 3 2\n"     # open 10-11 s
        "P01/rgb_frames/P01_02 120 240 1 1\n"     # put 2-4 s
        "P02/rgb_frames/P02_01 240 360 9 5\n"     # pour 4-6 s
        "P01/rgb_frames/P01_101 50 100 6 0\n"     # turn-on 1-2 s
        "P02/rgb_frames/P02_101 100 250 8 0\n"    # turn-off 2-5 s
        "P03/rgb_frames/P03_101 0 50 2 0\n"       # wash 0-1 s
        "P03/rgb_frames/P03_102 25 75 10 0\n")    # mix: P03_102 left empty
    head = ("narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,start_frame,"
            "stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes\n")
    (d / "EPIC_100_validation.csv").write_text(
        head + "P03_01_0,P03,P03_01,00:00:01.000,00:00:01.00,00:00:02.50,60,150,cut x,cut,7,x,0,['x'],[0]\n"
        "P03_01_1,P03,P03_01,00:00:03.000,00:00:03.00,00:00:04.00,180,240,move x,move,11,x,0,['x'],[0]\n")
    return d


@pytest.fixture()
def colour_csv(tmp_path):
    p = tmp_path / "colours.csv"
    p.write_text("kitchen,colour\nP01,dark\nP02,white\nP03,other\nP01@100,white\nP03@100,Dark\n")
    return p


def _segs(samples):
    return {s.video: [(g.label, g.start, g.end) for g in s.segments] for s in samples}


@pytest.mark.parametrize("scenario, source, target, names", [
    ("s1", {"P01_01", "P01_02"}, {"P02_01", "P03_01"}, ("Dark(55)", "All-Dark(55)")),
    ("s2", {"P02_01"}, {"P01_01", "P01_02", "P03_01"}, ("White(55)", "All-White(55)")),
    ("s3", {"P03_101", "P03_102"}, {"P01_101", "P02_101"}, ("Dark(100)", "All-Dark(100)")),
    ("s4", {"P01_101", "P02_101"}, {"P03_101", "P03_102"}, ("White(100)", "All-White(100)")),
])
def test_colour_scenarios(tiny_epic, colour_csv, scenario, source, target, names):
    b = build_epic_benchmark(scenario, tiny_epic, colours=colour_csv)
    assert {s.video for s in b.source} == source and {s.video for s in b.target} == target
    assert (b.summary["source"]["domain"], b.summary["target"]["domain"]) == names
    expected = {"P01_01": [("take", 1.0, 3.0), ("open", 10.0, 11.0)], "P01_02": [("put", 2.0, 4.0)],
                "P02_01": [("pour", 4.0, 6.0)], "P03_01": [("cut", 1.0, 2.5)],
                "P01_101": [("turn-on", 1.0, 2.0)], "P02_101": [("turn-off", 2.0, 5.0)],
                "P03_101": [("wash", 0.0, 1.0)], "P03_102": []}
    got = _segs(b.source + b.target)
    assert got == {v: expected[v] for v in source | target}
    assert all(s.extra["colour"] in ("dark", "white", "other") for s in b.source + b.target)


def test_tiny_s5_split_file_and_json_colour_map(tiny_epic, tmp_path):
    split = tmp_path / "split.csv"
    split.write_text("video_id,subset\nP01_01,training\nP01_02,validation\nP02_01,training\nP03_01,validation\n"
                     "P01_101,training\nP02_101,training\nP03_101,validation\nP03_102,training\n")
    b = build_epic_benchmark("s5", tiny_epic, split=split)
    src = b.summary["source"]
    assert (src["training"]["videos"], src["training"]["segments"]) == (2, 3)  # P01_01 (2), P02_01 (1)
    assert (src["validation"]["videos"], src["validation"]["segments"]) == (2, 2)  # P01_02, P03_01
    assert src["total"]["avg_segment_s"] == pytest.approx((2 + 1 + 2 + 2 + 1.5) / 5, abs=1e-3)
    tgt = b.summary["target"]
    assert (tgt["total"]["videos"], tgt["total"]["segments"]) == (4, 3)
    assert tgt["validation"]["per_verb"]["wash"] == 1 and tgt["validation"]["segments"] == 1
    # hash split: one validation video per era (round(4 * 90/432) = round(4 * 44/194) = 1)
    h = build_epic_benchmark("s5", tiny_epic)
    assert [s.subset for s in h.source].count("validation") == 1
    assert [s.subset for s in h.target].count("validation") == 1
    # dropping empty videos removes P03_102
    d = build_epic_benchmark("s6", tiny_epic, keep_empty=False)
    assert "P03_102" not in {s.video for s in d.source}
    # JSON colour map, same result as the CSV one
    cmap = tmp_path / "colours.json"
    cmap.write_text(json.dumps({"P01": "dark", "P02": "white", "P03": "other", "P01@100": "white"}))
    j = build_epic_benchmark("s1", tiny_epic, colours=cmap)
    assert {s.video for s in j.source} == {"P01_01", "P01_02"}


def test_exclude_participants(tiny_epic):
    b = build_epic_benchmark("s5", tiny_epic, exclude_participants=["P02"])
    assert not any(s.video.startswith("P02") for s in b.source + b.target)
    assert any("P02: 2 videos, 2 segments" in n for n in b.summary["notes"])
    with pytest.raises(InputError, match="participant id"):
        build_epic_benchmark("s5", tiny_epic, exclude_participants=["2"])


@pytest.mark.parametrize("text, line, field, message", [
    ("kitchen,colour\nP01,dark\nP09,white\n", 3, "kitchen", "unknown kitchen 'P09'"),
    ("kitchen,colour\nP01,dark\nP02,grey\n", 3, "colour", "dark, white or other"),
    ("kitchen,colour\nP01,dark\nP02,\n", 3, "colour", "missing colour"),
    ("kitchen,colour\nP01,dark\nP01,white\n", 3, "kitchen", "duplicate kitchen"),
    ("kitchen,colour\nP01@77,dark\n", 2, "kitchen", "kitchen id"),
    ("kitchen,colour\nP01,dark,extra\n", 2, None, "2 cells"),
    ("room,colour\nP01,dark\n", 1, "kitchen", "missing required column"),
])
def test_colour_map_errors(tiny_epic, tmp_path, text, line, field, message):
    p = tmp_path / "c.csv"
    p.write_text(text)
    with pytest.raises(InputError, match=message) as e:
        build_epic_benchmark("s1", tiny_epic, colours=p)
    assert (e.value.path, e.value.line, e.value.field) == (str(p), line, field)


def test_colour_map_missing_kitchen_and_bad_json(tiny_epic, tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("kitchen,colour\nP01,dark\nP02,white\n")
    with pytest.raises(InputError, match=r"missing colour for kitchen\(s\) P03") as e:
        build_epic_benchmark("s1", tiny_epic, colours=p)
    assert (e.value.path, e.value.field) == (str(p), "colour")
    # S1 uses old videos only: P03@100 not needed there, but S3 (new videos) needs P01..P03 of that era
    build_epic_benchmark("s1", tiny_epic, colours={"P01": "dark", "P02": "white", "P03": "other"})
    j = tmp_path / "c.json"
    j.write_text('{"P01": "dark",')
    with pytest.raises(InputError, match="malformed JSON") as e:
        read_colour_map(j)
    assert e.value.path == str(j)
    j.write_text('["P01", "dark"]')
    with pytest.raises(InputError, match="JSON object"):
        read_colour_map(j)
    j.write_text('{"P01": "pink"}')
    with pytest.raises(InputError, match="dark, white or other") as e:
        read_colour_map(j)
    assert e.value.field == "P01"
    with pytest.raises(InputError, match="colour map") as e:
        build_epic_benchmark("s2", tiny_epic)
    assert e.value.field == "colours"


def test_split_file_and_folder_errors(tiny_epic, tmp_path):
    p = tmp_path / "split.csv"
    p.write_text("video_id,subset\nP01_01,training\nP01_02,test\n")
    with pytest.raises(InputError, match="training or validation") as e:
        build_epic_benchmark("s5", tiny_epic, split=p)
    assert (e.value.line, e.value.field) == (3, "subset")
    p.write_text("video_id,subset\nP01_01,training\nP99_01,training\n")
    with pytest.raises(InputError, match="unknown video 'P99_01'") as e:
        build_epic_benchmark("s5", tiny_epic, split=p)
    assert (e.value.line, e.value.field) == (3, "video_id")
    p.write_text("video_id,subset\nP01_01,training\n")
    with pytest.raises(InputError, match="have no subset"):
        build_epic_benchmark("s5", tiny_epic, split=p)
    (tiny_epic / "EPIC_100_train_new.txt").unlink()
    with pytest.raises(InputError, match="EPIC_100_train_new.txt") as e:
        build_epic_benchmark("s5", tiny_epic)
    assert e.value.path == str(tiny_epic)
    with pytest.raises(InputError, match="unknown EPIC-Kitchens scenario"):
        build_epic_benchmark("s7", tiny_epic)


def test_cli_epic(tiny_epic, colour_csv, tmp_path, capsys):
    out = tmp_path / "s3"
    assert main(["make-da-benchmark", "S3", "--epic", str(tiny_epic), "--colours", str(colour_csv),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Dark(100)" in printed and "All-Dark(100)" in printed
    src = json.loads((out / "source.json").read_text())["database"]
    assert set(src) == {"P03_101", "P03_102"}
    assert src["P03_101"]["annotations"] == [{"label": "wash", "segment": [0.0, 1.0], "label_id": 2}]
    assert json.loads((out / "summary.json").read_text())["scenario"] == "S3"
    assert main(["make-da-benchmark", "s3", "--epic", str(tiny_epic), "--out", str(out)]) == 2
    assert "colour map" in capsys.readouterr().err


# ------------------------------------------------------------------ Charades -> CharadesEgo
HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length"


def _row(vid, actions, length, script="A person holds a cup, then sits.", extra=""):
    return f'{vid},S1,Kitchen,6,7,Yes,"{script}",cup;chair,"A person, a cup.",{actions},{length}{extra}\r\n'


@pytest.fixture()
def charades(tmp_path):
    c, e = tmp_path / "Charades", tmp_path / "CharadesEgo"
    c.mkdir()
    e.mkdir()
    verbs = ["hold", "take", "awaken", "put", "sit", "walk", "stand", "open", "drink", "smile", "laugh"]
    (c / "Charades_v1_verbclasses.txt").write_text("".join(f"v{i:03d} {v}\n" for i, v in enumerate(verbs)))
    # c000 and c001 both collapse to "hold", c002 -> take, c003 -> awaken (not one of the 10 verbs)
    (c / "Charades_v1_mapping.txt").write_text("c000 o000 v000\nc001 o001 v000\nc002 o002 v001\nc003 o003 v002\n")
    (c / "Charades_v1_train.csv").write_text(
        HEADER + "\r\n" + _row("AAA01", "c000 1.00 5.00;c001 1.00 5.00;c002 2.50 4.00;c003 0.00 3.00", "30.00")
        + _row("BBB02", "", "12.50"))
    (c / "Charades_v1_test.csv").write_text(HEADER + "\r\n" + _row("CCC03", "c002 0.00 2.00;c000 9.00 20.00", "10.00"))
    (e / "CharadesEgo_v1_train.csv").write_text(
        HEADER + ",egocentric,charades_video\r\n"
        + _row("AAA01EGO", "c001 0.50 3.00;c003 1.00 2.00", "20.00", extra=",Yes,AAA01")
        + _row("DDD04", "c002 1.00 2.00", "15.00", extra=",No,DDD04EGO"))
    (e / "CharadesEgo_v1_test.csv").write_text(  # v0 layout: no egocentric column, ego ids end in EGO
        HEADER + "\r\n" + _row("CCC03EGO", "c002 1.00 3.00;c002 1.00 3.00", "8.00") + _row("CCC03", "c000 1 2", "9"))
    return c, e


def _charades(c, e, **kw):
    return build_charades_ego(c / "Charades_v1_train.csv", c / "Charades_v1_test.csv", e / "CharadesEgo_v1_train.csv",
                              e / "CharadesEgo_v1_test.csv", c / "Charades_v1_mapping.txt",
                              c / "Charades_v1_verbclasses.txt", **kw)


@pytest.mark.filterwarnings("ignore::momentkit.data.annotations.AnnotationWarning")
def test_charades_ego(charades):
    c, e = charades
    with pytest.warns(AnnotationWarning, match="dropped 1 invalid segment"):
        b = _charades(c, e)
    assert b.classes == ("take", "put", "sit", "walk", "hold", "stand", "open", "drink", "smile", "laugh")
    src = {s.video: s for s in b.source}
    tgt = {s.video: s for s in b.target}
    assert set(src) == {"AAA01", "BBB02", "CCC03"} and set(tgt) == {"AAA01EGO", "CCC03EGO"}
    assert [(s.video, s.subset) for s in b.source] == [("AAA01", "training"), ("BBB02", "training"),
                                                       ("CCC03", "validation")]
    # the two hold classes at the same times are one segment; awaken is dropped
    assert [(g.label, g.label_id, g.start, g.end) for g in src["AAA01"].segments] == [
        ("hold", 4, 1.0, 5.0), ("take", 0, 2.5, 4.0)]
    assert src["BBB02"].segments == () and src["BBB02"].duration == 12.5
    # CCC03's hold 9-20 s ends 10 s past its 10 s video: an invalid window, dropped
    assert [(g.label, g.start, g.end) for g in src["CCC03"].segments] == [("take", 0.0, 2.0)]
    assert [(g.label, g.start, g.end) for g in tgt["AAA01EGO"].segments] == [("hold", 0.5, 3.0)]
    assert tgt["CCC03EGO"].subset == "validation" and len(tgt["CCC03EGO"].segments) == 1
    s = b.summary
    assert (s["source"]["actions_read"], s["source"]["total"]["segments"]) == (6, 3)
    assert s["target"]["retained_fraction"] == pytest.approx(2 / 4)
    assert any("1 repeats" in n and "1 invalid" in n for n in s["notes"])
    kept_all = _charades(c, e, dedupe=False, keep_empty=False)
    assert len({x.video: x for x in kept_all.source}["AAA01"].segments) == 3
    assert "BBB02" not in {x.video for x in kept_all.source}
    # segments per verb in the videos used: take 3 (AAA01, CCC03, CCC03EGO), hold 2, awaken 2 (tie: by name)
    assert _charades(c, e, verbs=None, num_verbs=2).classes == ("take", "awaken")


def test_charades_errors(charades, tmp_path):
    c, e = charades
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "\r\n" + _row("X1", "c000 1.00", "10"))
    with pytest.raises(InputError, match="cNNN start end") as err:
        build_charades_ego(bad, c / "Charades_v1_test.csv", e / "CharadesEgo_v1_train.csv",
                           e / "CharadesEgo_v1_test.csv", c / "Charades_v1_mapping.txt",
                           c / "Charades_v1_verbclasses.txt")
    assert (err.value.path, err.value.line, err.value.field) == (str(bad), 2, "actions")
    bad.write_text(HEADER + "\r\n" + _row("X1", "c000 1.00 2.00", "10") + _row("X2", "c099 1.00 2.00", "10"))
    with pytest.raises(InputError, match="unknown action class 'c099'") as err:
        build_charades_ego(bad, c / "Charades_v1_test.csv", e / "CharadesEgo_v1_train.csv",
                           e / "CharadesEgo_v1_test.csv", c / "Charades_v1_mapping.txt",
                           c / "Charades_v1_verbclasses.txt")
    assert err.value.line == 3
    (c / "Charades_v1_mapping.txt").write_text("c000 o000 v000\nc001 v000\n")
    with pytest.raises(InputError, match="cNNN oNNN vNNN") as err:
        _charades(c, e)
    assert err.value.line == 2
    (c / "Charades_v1_mapping.txt").write_text("c000 o000 v000\n")
    with pytest.raises(InputError, match="not in Charades_v1_verbclasses.txt") as err:
        _charades(c, e, verbs=["hold", "jump"])
    assert err.value.field == "verbs"


@pytest.mark.filterwarnings("ignore::momentkit.data.annotations.AnnotationWarning")
def test_cli_charades(charades, tmp_path, capsys):
    c, e = charades
    out = tmp_path / "ego"
    assert main(["make-da-benchmark", "charades-ego", "--charades", str(c), "--charades-ego", str(e),
                 "--out", str(out)]) == 0
    tgt = json.loads((out / "target.json").read_text())["database"]
    assert set(tgt) == {"AAA01EGO", "CCC03EGO"} and tgt["AAA01EGO"]["view"] == "egocentric"
    assert main(["make-da-benchmark", "charades-ego", "--charades", str(c), "--out", str(out)]) == 2
    assert "--charades-ego" in capsys.readouterr().err


# ------------------------------------------------------------------ configs
@pytest.mark.parametrize("name, alpha, levels", [
    ("epic100_s5.yaml", 0.5, [1.0, 0.4, 0.8, 0.7, 0.9, 0.6]),  # thesis Tab. 2.3, S5
    ("epic100_s6.yaml", 0.3, [0.6, 0.1, 1.0, 0.6, 0.2, 0.4]),  # thesis Tab. 2.3, S6
])
def test_scenario_configs(name, alpha, levels):
    from momentkit.training.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "tal" / name)
    align = cfg.model["align"]
    assert align["mode"] == "sada" and align["alpha"] == alpha and align["level_weights"] == levels
    assert align["weight"] == 2.0 and cfg.model["num_classes"] == 10 and cfg.data.classes == VERBS
    assert cfg.data.target is not None and cfg.eval.domains == ["source", "target"]
    assert list(EPIC_VERBS) == VERBS
