"""Annotation readers and writers, on the real files of ../shared/data and on small hand-made files.

Expected counts were obtained independently of momentkit (plain ``json``/``csv`` counts; see the
helpers below that recompute them from the raw files), and the window rule is re-implemented here
in plain Python to count what must be dropped.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import warnings
from pathlib import Path

import pytest

from conftest import DATA
from momentkit.data.annotations import (
    AnnotationFormat,
    AnnotationWarning,
    available_formats,
    detect_format,
    get_format,
    read_annotations,
    read_captions_json,
    read_charades_txt,
    read_detection_json,
    read_epic_csv,
    read_grounding_jsonl,
    read_superevents_json,
    register_format,
    unregister_format,
    write_annotations,
)
from momentkit.data.annotations.epic import frame_rate, parse_timestamp
from momentkit.data.annotations.windows import check_windows
from momentkit.data.records import DetectionSample, GroundingSample, Segment
from momentkit.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "annotations"
QVH = DATA / "qvhighlights"
TACOS = DATA / "tacos"
ANET = DATA / "activitynet_captions"
YC2 = DATA / "youcook2"
THUMOS = DATA / "thumos14"
MTH = DATA / "multithumos"
EPIC = DATA / "epic_kitchens_100"


@functools.cache
def real(rel: str, **opts):
    """Read a shared file once per test session (keyword options must be hashable)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnnotationWarning)
        return read_annotations(DATA / rel, **opts)


def raw_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def invalid(start: float, end: float, duration: float, tol: float = 1.0) -> bool:
    """The window rule, written out independently of momentkit."""
    return not (0 <= start < end) or start >= duration or end > duration + tol


# ----------------------------------------------------------------------------- format detection

@pytest.mark.parametrize("rel, expected", [
    ("qvhighlights/highlight_train_release.jsonl", "grounding-jsonl"),
    ("tacos/tacos_val_release.jsonl", "grounding-jsonl"),
    ("activitynet_captions/val_1.json", "captions-json"),
    ("youcook2/yc2_val.json", "captions-json"),
    ("thumos14/thumos14.json", "detection-json"),
    ("thumos14/thumos_14_anno.json", "detection-json"),
    ("multithumos/tridetplus/multithumos.json", "detection-json"),
    ("multithumos/multithumos.json", "superevents-json"),
    ("epic_kitchens_100/EPIC_100_validation.csv", "epic-csv"),
    ("epic_kitchens_100/EPIC_100_test_timestamps.csv", "epic-csv"),
    ("epic_kitchens_100/EPIC_100_train_new.txt", "epic-frames-txt"),
])
def test_detect_format_real_files(shared_data, rel, expected):
    assert detect_format(shared_data / rel) == expected


def test_detect_format_fixtures():
    assert detect_format(FIXTURES / "charades_sta_small.txt") == "charades-txt"
    assert detect_format(FIXTURES / "grounding_small.jsonl") == "grounding-jsonl"
    assert detect_format(FIXTURES / "detection_small.json") == "detection-json"


def test_detect_format_refuses_other_files(shared_data):
    for rel in ("thumos14/category_idx.txt", "epic_kitchens_100/EPIC_100_verb_classes.csv"):
        with pytest.raises(InputError, match="cannot tell the annotation format") as e:
            detect_format(shared_data / rel)
        assert e.value.path == str(shared_data / rel)


def test_every_real_annotation_file_reads(shared_data):
    """Every annotation file in the shared data reads with the default options."""
    readable = 0
    for path in sorted(p for p in shared_data.rglob("*") if p.is_file()):
        try:
            fmt = detect_format(path)
        except InputError:
            continue  # licences, READMEs, class lists, id lists
        samples = real(str(path.relative_to(shared_data)))
        assert samples, path
        kind = get_format(fmt).kind
        assert all(isinstance(s, GroundingSample if kind == "grounding" else DetectionSample) for s in samples)
        for s in samples:  # the window rule holds for everything that comes out
            spans = s.windows if kind == "grounding" else [(g.start, g.end) for g in s.segments]
            assert all(0 <= a < b <= s.duration for a, b in spans), (path, s)
        readable += 1
    # 6 + 2 (QV-M²) JSON Lines, 3 + 2 captions, 3 detection JSON, 1 super-events, 8 EPIC CSVs, 1 frames txt
    assert readable == 26


# ----------------------------------------------------------------------------- grounding JSON Lines

@pytest.mark.parametrize("name, queries, windows, videos", [
    ("highlight_train_release.jsonl", 7218, 12803, 7100),
    ("highlight_val_release.jsonl", 1550, 2803, 1519),
    ("highlight_test_with_gt.jsonl", 1542, 2761, 1529),
])
def test_qvhighlights_counts_and_fields(shared_data, name, queries, windows, videos):
    samples = real(f"qvhighlights/{name}")
    raw = raw_jsonl(shared_data / "qvhighlights" / name)
    assert len(samples) == len(raw) == queries
    assert sum(len(s.windows) for s in samples) == windows
    assert len({s.vid for s in samples}) == videos
    for s, r in zip(samples, raw):  # every field, against the raw line
        assert (s.qid, s.query, s.vid, s.duration) == (r["qid"], r["query"], r["vid"], r["duration"])
        assert [list(w) for w in s.windows] == r["relevant_windows"]
        assert list(s.relevant_clip_ids) == r["relevant_clip_ids"]
        assert [list(x) for x in s.saliency_scores] == r["saliency_scores"]
        assert s.num_annotators == 3


@pytest.mark.parametrize("name, queries, videos", [
    ("tacos_train_release.jsonl", 9790, 75),
    ("tacos_val_release.jsonl", 4436, 27),
    ("tacos_test_release.jsonl", 4001, 25),
])
def test_tacos_counts(name, queries, videos):
    samples = real(f"tacos/{name}")
    assert len(samples) == queries
    assert len({s.vid for s in samples}) == videos
    assert all(len(s.windows) == 1 and not s.saliency_scores for s in samples)
    assert all(isinstance(s.qid, str) for s in samples)


def test_first_qvhighlights_sample_by_hand(shared_data):
    s = real("qvhighlights/highlight_train_release.jsonl")[0]
    assert s.qid == 9769 and s.vid == "j7rJstUseKg_360.0_510.0" and s.duration == 150.0
    assert s.windows == ((72, 82), (84, 94), (96, 106), (108, 118), (120, 130), (136, 142), (144, 146))
    assert s.relevant_clip_ids[:3] == (36, 37, 38) and s.saliency_scores[0] == (4.0, 3.0, 2.0)


@pytest.mark.parametrize("rel", ["qvhighlights/highlight_val_release.jsonl", "tacos/tacos_test_release.jsonl"])
def test_grounding_jsonl_round_trip(shared_data, tmp_path, rel):
    samples = real(rel)
    out = tmp_path / "out.jsonl"
    write_annotations(out, samples, "grounding-jsonl")
    assert raw_jsonl(out) == raw_jsonl(shared_data / rel)  # same objects, line by line
    again = read_annotations(out)
    assert again == samples


def test_grounding_jsonl_small_fixture_keeps_extra_keys(tmp_path):
    samples = read_annotations(FIXTURES / "grounding_small.jsonl")
    assert [s.qid for s in samples] == [1, 2, "q3"]
    assert samples[1].extra == {"source": "handmade"} and samples[0].extra == {}
    assert samples[2].windows == ((1.5, 4.5),)
    write_annotations(tmp_path / "g.jsonl", samples, "grounding-jsonl")
    assert raw_jsonl(tmp_path / "g.jsonl") == raw_jsonl(FIXTURES / "grounding_small.jsonl")


def test_grounding_jsonl_without_windows(tmp_path):
    p = tmp_path / "test.jsonl"
    p.write_text('{"qid": 1, "query": "a cat", "vid": "v", "duration": 10}\n')
    with pytest.raises(InputError, match="missing required key 'relevant_windows'"):
        read_grounding_jsonl(p)
    (s,) = read_annotations(p, require_windows=False)
    assert s.windows == ()


# ----------------------------------------------------------------------------- bad input

def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = '{"qid": 1, "query": "a cat", "vid": "v", "duration": 10, "relevant_windows": [[1, 2]]}\n'


@pytest.mark.parametrize("second_line, line, field, message", [
    ('{"qid": 2, "query": "x", "vid": "v", "duration": 10, "relevant_windows": [[1, 2]]\n', 2, None, "malformed JSON"),
    ('{"qid": 2, "vid": "v", "duration": 10, "relevant_windows": [[1, 2]]}\n', 2, "query", "missing required key 'query'"),
    ('{"qid": 2, "query": "x", "vid": "v", "relevant_windows": [[1, 2]]}\n', 2, "duration", "'duration'"),
    ('{"qid": 1, "query": "x", "vid": "v", "duration": 10, "relevant_windows": [[1, 2]]}\n', 2, "qid",
     "duplicate qid 1 \\(first seen on line 1\\)"),
    ('{"qid": 2, "query": "x", "vid": "v", "duration": 10, "relevant_windows": [[1, 2], [5, 5]]}\n', 2,
     "relevant_windows[1]", "does not end after it starts"),
    ('{"qid": 2, "query": "x", "vid": "v", "duration": 10, "relevant_windows": [[6, 3]]}\n', 2,
     "relevant_windows[0]", "does not end after it starts"),
    ('{"qid": 2, "query": "x", "vid": "v", "duration": 10, "relevant_windows": [[-0.5, 3]]}\n', 2,
     "relevant_windows[0]", "starts before 0"),
    ('{"qid": 2, "query": "x", "vid": "v", "duration": 10, "relevant_windows": [[10, 12]]}\n', 2,
     "relevant_windows[0]", "starts at or after the end of the video"),
    ('{"qid": 2, "query": "x", "vid": "v", "duration": 10, "relevant_windows": [[8, 11.5]]}\n', 2,
     "relevant_windows[0]", "ends 1.5 s after the end of the video"),
    ('{"qid": 2, "query": "x", "vid": "v", "duration": 10, "relevant_windows": [[1, "2"]]}\n', 2,
     "relevant_windows[0]", "expected a number"),
    ('{"qid": 2, "query": "x", "vid": "v", "duration": 0, "relevant_windows": [[1, 2]]}\n', 2,
     "duration", "duration must be > 0"),
    ('{"qid": 2, "query": "x", "vid": "v", "duration": 10, "relevant_windows": []}\n', 2,
     "relevant_windows", "no ground-truth window"),
    ('{"qid": 2, "query": "x", "vid": "v", "duration": 10, "relevant_windows": [[1, 2]], '
     '"relevant_clip_ids": [0, 1], "saliency_scores": [[1, 2, 3]]}\n', 2, "saliency_scores", "1 score rows for 2"),
    ('{"qid": 2, "query": "x", "vid": "v", "duration": 10, "relevant_windows": [[1, 2]], '
     '"saliency_scores": [[1]]}\n', 2, "relevant_clip_ids", "missing required key 'relevant_clip_ids'"),
    ('{"qid": 2, "query": "x", "vid": "v", "duration": 10, "relevant_windows": [[1, 2]], '
     '"relevant_clip_ids": [0, 1], "saliency_scores": [[1, 2, 3], [1, 2]]}\n', 2, "saliency_scores[1]",
     "expected 3 annotator score"),
    ('{"qid": 2, "query": "x", "vid": "v", "duration": 10, "relevant_windows": [[1, 2]], '
     '"relevant_clip_ids": [-1], "saliency_scores": [[1]]}\n', 2, "relevant_clip_ids[0]", "integer >= 0"),
    ('[1, 2]\n', 2, None, "expected a JSON object"),
])
def test_grounding_jsonl_bad_input(tmp_path, second_line, line, field, message):
    p = write(tmp_path, "bad.jsonl", GOOD + second_line)
    with pytest.raises(InputError, match=message) as e:
        read_annotations(p)
    assert (e.value.path, e.value.line, e.value.field) == (str(p), line, field)
    assert str(e.value).startswith(f"{p}:{line}")


def test_small_overshoot_is_clipped(tmp_path):
    p = write(tmp_path, "clip.jsonl", GOOD.replace("[[1, 2]]", "[[8, 10.4], [1, 2]]"))
    (s,) = read_annotations(p)
    assert s.windows == ((8.0, 10.0), (1.0, 2.0))
    with pytest.raises(InputError, match="ends 0.4 s after"):
        read_annotations(p, clip_tolerance=0.1)


def test_skip_drops_invalid_windows_and_empty_queries(tmp_path):
    p = write(tmp_path, "skip.jsonl", GOOD.replace("[[1, 2]]", "[[1, 2], [4, 3]]")
              + GOOD.replace('"qid": 1', '"qid": 2').replace("[[1, 2]]", "[[-1, 2]]"))
    with pytest.warns(AnnotationWarning, match=r"dropped 2 invalid window\(s\).*skip.jsonl:1, field 'relevant_windows\[1\]'"):
        samples = read_annotations(p, on_invalid="skip")
    assert [(s.qid, s.windows) for s in samples] == [(1, ((1.0, 2.0),))]


def test_empty_and_missing_files(tmp_path):
    empty = write(tmp_path, "empty.jsonl", "\n\n")
    for call in (lambda: read_annotations(empty), lambda: read_annotations(empty, "grounding-jsonl")):
        with pytest.raises(InputError, match="file is empty") as e:
            call()
        assert e.value.path == str(empty)
    with pytest.raises(InputError, match="file not found"):
        read_annotations(tmp_path / "nope.jsonl")
    for fmt in ("charades-txt", "captions-json", "detection-json", "epic-csv", "epic-frames-txt", "superevents-json"):
        p = write(tmp_path, f"empty-{fmt}", "")
        with pytest.raises(InputError, match="empty|no annotation rows"):
            read_annotations(p, fmt, **({"video_info": EPIC / "EPIC_100_video_info.csv"} if "epic" in fmt else {}))


def test_unknown_format_and_option(tmp_path):
    with pytest.raises(InputError, match="unknown annotation format 'qvh'") as e:
        read_annotations(FIXTURES / "grounding_small.jsonl", format="qvh")
    assert e.value.field == "format"
    with pytest.raises(InputError, match="has no option 'durations'") as e:
        read_annotations(FIXTURES / "grounding_small.jsonl", durations={})
    assert e.value.field == "durations"
    with pytest.raises(InputError, match="must be one of error, skip") as e:
        read_annotations(FIXTURES / "grounding_small.jsonl", on_invalid="ignore")
    with pytest.raises(InputError, match="cannot be written"):
        write_annotations(tmp_path / "x.csv", [], "epic-csv")
    with pytest.raises(InputError, match="cannot tell"):
        read_annotations(write(tmp_path, "x.txt", "hello world\n"))


def test_writer_refuses_duplicate_qids_and_wrong_records(tmp_path):
    s = GroundingSample(1, "q", "v", 10.0, ((1.0, 2.0),))
    with pytest.raises(InputError, match="duplicate qid 1"):
        write_annotations(tmp_path / "d.jsonl", [s, s], "grounding-jsonl")
    with pytest.raises(TypeError):
        write_annotations(tmp_path / "d.jsonl", [DetectionSample("v", 1.0, ())], "grounding-jsonl")
    assert not (tmp_path / "d.jsonl").exists()


def test_register_a_new_format(tmp_path):
    def read_lines(path, *, duration=100.0):
        return [GroundingSample(i, line, "v", duration, ((0.0, 1.0),))
                for i, line in enumerate(Path(path).read_text().split("\n")) if line]

    fmt = AnnotationFormat("test-lines", "grounding", read_lines, suffixes=(".lines",),
                           sniff=lambda path, head: path.suffix == ".lines")
    register_format(fmt)
    try:
        p = write(tmp_path, "a.lines", "one\ntwo\n")
        assert "test-lines" in available_formats() and detect_format(p) == "test-lines"
        assert [s.query for s in read_annotations(p, duration=5.0)] == ["one", "two"]
        with pytest.raises(ValueError, match="already registered"):
            register_format(fmt)
    finally:
        unregister_format("test-lines")
    assert "test-lines" not in available_formats()


# ----------------------------------------------------------------------------- Charades-STA text

def test_charades_txt_with_sibling_durations():
    samples = read_annotations(FIXTURES / "charades_sta_small.txt")
    assert [s.qid for s in samples] == [0, 1, 2, 3]
    assert [s.vid for s in samples] == ["AB12C", "AB12C", "XY34Z", "XY34Z"]
    assert [s.duration for s in samples] == [25.5, 25.5, 30.4, 30.4]
    assert samples[0].query == "a person opens a door."
    assert samples[0].windows == ((0.0, 6.9),)
    assert samples[3].windows == ((18.0, 30.4),)  # 31.0 is 0.6 s past 30.4: clipped
    assert all(s.extra == {} for s in samples)


def test_charades_txt_durations_option_and_estimate(tmp_path):
    p = write(tmp_path, "sta.txt", "AB12C 0.0 6.9##a person opens a door.\nQQ77R 2.0 8.5##a person sneezes.\n")
    with pytest.raises(InputError, match="no duration for video 'QQ77R'") as e:
        read_charades_txt(p, durations=FIXTURES / "Charades_v1_small.csv")
    assert (e.value.path, e.value.line) == (str(p), 2)
    with pytest.raises(InputError, match="no duration for video 'AB12C'"):
        read_charades_txt(p)  # no Charades_v1_*.csv beside it
    a, b = read_charades_txt(p, durations={"AB12C": 20, "QQ77R": 30.5})
    assert (a.duration, b.duration) == (20.0, 30.5)
    a, b = read_charades_txt(p, durations=FIXTURES / "Charades_v1_small.csv", missing_duration="estimate")
    assert (a.duration, a.extra) == (25.5, {})
    assert (b.duration, b.extra) == (8.5, {"duration_estimated": True})


@pytest.mark.parametrize("text, line, field, message", [
    ("AB12C 0.0 6.9 a person opens a door.\n", 1, None, "expected 'VIDEOID start end##sentence'"),
    ("AB12C 0.0##a person.\n", 1, None, "expected 'VIDEOID start end##sentence'"),
    ("AB12C 0.0 x##a person.\n", 1, "end", "expected a number, got 'x'"),
    ("AB12C 0.0 6.9##   \n", 1, "sentence", "empty sentence"),
    ("AB12C 0.0 6.9##ok\nAB12C 7.0 7.0##zero length\n", 2, None, "does not end after it starts"),
    ("AB12C 0.0 6.9##ok\nAB12C 20.0 30.0##too long\n", 2, None, "ends 4.5 s after the end of the video"),
])
def test_charades_txt_bad_input(tmp_path, text, line, field, message):
    p = write(tmp_path, "bad.txt", text)
    with pytest.raises(InputError, match=message) as e:
        read_charades_txt(p, durations={"AB12C": 25.5})
    assert (e.value.path, e.value.line, e.value.field) == (str(p), line, field)


def test_charades_txt_round_trip(tmp_path):
    samples = read_annotations(FIXTURES / "charades_sta_small.txt")
    out = tmp_path / "out.txt"
    write_annotations(out, samples, "charades-txt")
    text = (FIXTURES / "charades_sta_small.txt").read_text()
    expected = [line for line in text.splitlines() if line.strip()]
    expected[3] = "XY34Z 18.0 30.4##a person laughs at a phone."  # the clipped window
    assert out.read_text().splitlines() == expected
    assert read_charades_txt(out, durations=FIXTURES / "Charades_v1_small.csv") == samples
    with pytest.raises(InputError, match="exactly one window"):
        write_annotations(out, [GroundingSample(1, "q", "v", 10.0, ((1.0, 2.0), (3.0, 4.0)))], "charades-txt")


# ----------------------------------------------------------------------------- dense captions

def caption_facts(path: Path) -> tuple[int, list[str]]:
    """(number of sentences, fields of the windows the rule refuses), from the raw JSON."""
    data = json.loads(path.read_text())
    total = sum(len(v["sentences"]) for v in data.values())
    bad = [f"{vid}.timestamps[{i}]" for vid, v in data.items() for i, (s, e) in enumerate(v["timestamps"])
           if invalid(s, e, v["duration"])]
    return total, bad


@pytest.mark.parametrize("rel, sentences, videos, dropped", [
    ("activitynet_captions/train.json", 37421, 10009, 4),
    ("activitynet_captions/val_1.json", 17505, 4917, 0),
    ("activitynet_captions/val_2.json", 17031, 4885, 0),
    ("youcook2/yc2_train.json", 10337, 1333, 0),
    ("youcook2/yc2_val.json", 3492, 457, 0),
])
def test_captions_counts(shared_data, rel, sentences, videos, dropped):
    total, bad = caption_facts(shared_data / rel)
    assert (total, len(bad)) == (sentences, dropped)
    samples = real(rel)
    assert len(samples) == sentences - dropped
    assert len({s.vid for s in samples}) == videos
    assert len({s.qid for s in samples}) == len(samples)
    assert all(s.qid == f"{s.vid}_{s.qid.rsplit('_', 1)[1]}" for s in samples)


def test_activitynet_captions_invalid_windows(shared_data):
    path = shared_data / "activitynet_captions" / "train.json"
    _, bad = caption_facts(path)
    with pytest.warns(AnnotationWarning, match="dropped 4 invalid window"):
        samples = read_captions_json(path)
    qids = {s.qid for s in samples}
    assert not any(f.replace(".timestamps[", "_").rstrip("]") in qids for f in bad)
    with pytest.raises(InputError, match="does not end after it starts") as e:
        read_captions_json(path, on_invalid="error")
    assert e.value.field == bad[0] == "v_N7ppHQNikv8.timestamps[2]"


def test_activitynet_captions_first_video_by_hand():
    samples = [s for s in real("activitynet_captions/val_1.json") if s.vid == "v_uqiMw7tQ1Cc"]
    data = json.loads((ANET / "val_1.json").read_text())["v_uqiMw7tQ1Cc"]
    assert [s.qid for s in samples] == [f"v_uqiMw7tQ1Cc_{i}" for i in range(len(data["sentences"]))]
    assert [s.query for s in samples] == [t.strip() for t in data["sentences"]]
    assert [s.windows[0] for s in samples] == [tuple(min(x, data["duration"]) for x in t) for t in data["timestamps"]]


def test_captions_round_trip(tmp_path):
    samples = real("youcook2/yc2_val.json")
    write_annotations(tmp_path / "c.json", samples, "captions-json")
    expected = json.loads((YC2 / "yc2_val.json").read_text())
    for v in expected.values():  # the reader strips white space around sentences (3 in this file)
        v["sentences"] = [t.strip() for t in v["sentences"]]
    assert json.loads((tmp_path / "c.json").read_text()) == expected
    assert read_annotations(tmp_path / "c.json") == samples


@pytest.mark.parametrize("text, field, message", [
    ('{"v1": {"duration": 10, "timestamps": [[1, 2]], "sentences": []}}', "v1.timestamps", "1 timestamps for 0"),
    ('{"v1": {"timestamps": [[1, 2]], "sentences": ["a"]}}', "v1.duration", "missing required key 'duration'"),
    ('{"v1": {"duration": 10, "timestamps": [[1]], "sentences": ["a"]}}', "v1.timestamps[0]", "pair"),
    ('{"v1": {"duration": 10, "timestamps": [[1, 2]], "sentences": [3]}}', "v1.sentences[0]", "expected a string"),
    ('{"v1": [1, 2]}', "v1", "expected a JSON object"),
])
def test_captions_bad_input(tmp_path, text, field, message):
    p = write(tmp_path, "bad.json", text)
    with pytest.raises(InputError, match=message) as e:
        read_captions_json(p)
    assert (e.value.path, e.value.field) == (str(p), field)


# ----------------------------------------------------------------------------- detection JSON

def detection_facts(path: Path) -> tuple[int, int, int]:
    """(videos, raw segments, segments the rule refuses), from the raw JSON."""
    data = json.loads(path.read_text())
    db = data.get("database", data)
    key = "annotations" if "annotations" in next(iter(db.values())) else "actions"
    segs = [(a["segment"] if key == "annotations" else a[1:], v["duration"]) for v in db.values() for a in v[key]]
    return len(db), len(segs), sum(invalid(s, e, d) for (s, e), d in segs)


@pytest.mark.parametrize("rel, videos, segments, dropped, classes, subsets", [
    ("thumos14/thumos14.json", 412, 6365, 30, 20, {"Validation": 200, "Test": 212}),
    ("thumos14/thumos_14_anno.json", 411, 6328, 0, 20, {"training": 200, "validation": 211}),
    ("multithumos/tridetplus/multithumos.json", 412, 38668, 72, 65, {"Validation": 200, "Test": 212}),
    ("multithumos/multithumos.json", 413, 38690, 72, 65, {"training": 200, "testing": 213}),
])
def test_detection_counts(shared_data, rel, videos, segments, dropped, classes, subsets):
    assert detection_facts(shared_data / rel) == (videos, segments, dropped)
    samples = real(rel)
    assert len(samples) == videos
    kept = sum(len(s.segments) for s in samples)
    skipped = sum(len(s.extra.get("invalid_segments", ())) for s in samples)
    assert (kept, skipped) == (segments - dropped, dropped)
    assert len({g.label for s in samples for g in s.segments}) == classes
    counts: dict = {}
    for s in samples:
        counts[s.subset] = counts.get(s.subset, 0) + 1
    assert counts == subsets


def test_thumos_files_agree(shared_data):
    af = {s.video: s for s in real("thumos14/thumos14.json")}
    ot = {s.video: s for s in real("thumos14/thumos_14_anno.json")}
    # OpenTAD "training" = THUMOS validation videos, "validation" = test videos; it drops video_test_0000270.
    assert {v for v, s in ot.items() if s.subset == "training"} == {v for v, s in af.items() if s.subset == "Validation"}
    assert set(af) - set(ot) == {"video_test_0000270"}
    assert all(abs(af[v].duration - ot[v].duration) <= 0.005 + 1e-9 for v in ot)
    # The ActionFormer segments skipped as invalid are exactly those the OpenTAD file lacks.
    fewer = {v for v in ot if len(af[v].segments) != len(ot[v].segments)}
    assert fewer == set()
    assert {v for v, s in af.items() if "invalid_segments" in s.extra} == {
        "video_test_0000270", "video_test_0000814", "video_test_0001081",
        "video_validation_0000364", "video_validation_0000856"}
    assert ot["video_validation_0000051"].extra["frame"] == 5091
    assert all(g.label_id is None for s in ot.values() for g in s.segments)


def test_thumos_first_video_by_hand():
    s = next(s for s in real("thumos14/thumos14.json") if s.video == "video_test_0000004")
    assert (s.duration, s.fps, s.subset) == (33.83, 30.0, "Test")
    assert s.segments[:2] == (Segment(0.2, 1.1, "CricketBowling", 5), Segment(11.4, 12.2, "CricketBowling", 5))
    bad = next(s for s in real("thumos14/thumos14.json") if s.video == "video_test_0000270")
    assert len(bad.segments) == 7 and len(bad.extra["invalid_segments"]) == 22
    assert bad.extra["invalid_segments"][0]["start"] == 187.3


def test_detection_subset_filter():
    val = read_detection_json(THUMOS / "thumos_14_anno.json", subset="training")
    assert len(val) == 200 and all(s.video.startswith("video_validation_") for s in val)
    with pytest.raises(InputError, match="no video has subset 'Validation'.*'training', 'validation'") as e:
        read_detection_json(THUMOS / "thumos_14_anno.json", subset="Validation")
    assert e.value.field == "subset"


def test_superevents_matches_tridet_conversion(tmp_path):
    tri = {s.video: s for s in real("multithumos/tridetplus/multithumos.json")}
    by_id = {g.label_id: g.label for s in tri.values() for g in s.segments}
    names = [by_id[i] for i in range(65)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnnotationWarning)
        pj = {s.video: s for s in read_superevents_json(MTH / "multithumos.json", index_base=1, class_names=names)}
    assert set(pj) - set(tri) == {"video_test_0001292"}
    same = [v for v in tri if sorted(tri[v].segments, key=repr) == sorted(pj[v].segments, key=repr)]
    # On the raw files 407 of the 412 videos agree; the 5 others differ only in invalid segments.
    assert len(same) == 412
    raw = real("multithumos/multithumos.json")  # no names, index_base 0: label = str(class index)
    assert raw[0].video == "video_test_0000896" and raw[0].segments[0] == Segment(18.6, 24.8, "12", 12)
    p = write(tmp_path, "se.json", '{"v": {"duration": 5, "actions": [[0, 1, 2]]}}')
    with pytest.raises(InputError, match="class index 0 is out of range") as e:
        read_superevents_json(p, index_base=1)
    assert e.value.field == "v.actions[0]"
    p = write(tmp_path, "se2.json", '{"v": {"duration": 5, "actions": [[0, 1]]}}')
    with pytest.raises(InputError, match=r"expected \[class_index, start, end\]"):
        read_superevents_json(p)


def test_detection_small_fixture_by_hand():
    with pytest.warns(AnnotationWarning, match=r"dropped 1 invalid segment.*vid_one.annotations\[2\].segment"):
        one, two, three = read_annotations(FIXTURES / "detection_small.json")
    assert one.segments == (Segment(2.0, 7.0, "Jump", 0), Segment(40.0, 100.0, "Run", 1))
    assert (one.fps, one.subset, one.extra["url"]) == (25.0, "training", "https://example.org/one")
    assert one.extra["invalid_segments"][0]["start"] == 50.0
    assert two.segments == (Segment(10.0, 25.0, "Run", 1), Segment(20.0, 190.0, "Swim", 2)) and two.fps is None
    assert three.segments == () and three.subset == "validation"
    with pytest.raises(InputError, match="does not end after it starts") as e:
        read_annotations(FIXTURES / "detection_small.json", on_invalid="error")
    assert e.value.field == "database.vid_one.annotations[2].segment"


@pytest.mark.parametrize("entry, field, message", [
    ('{"annotations": []}', "database.v.duration", "missing required key 'duration'"),
    ('{"duration": 10}', "database.v.annotations", "missing required key 'annotations'"),
    ('{"duration": 10, "annotations": [{"segment": [1, 2]}]}', "database.v.annotations[0].label", "'label'"),
    ('{"duration": 10, "annotations": [{"label": "a"}]}', "database.v.annotations[0].segment", "'segment'"),
    ('{"duration": 10, "annotations": [{"label": "a", "segment": [1, 2], "label_id": 0}, '
     '{"label": "a", "segment": [3, 4], "label_id": 1}]}', "database.v.annotations[1].segment",
     "label 'a' has label_id 1 here but 0 at database.v.annotations\\[0\\].segment"),
    ('{"duration": 10, "fps": -1, "annotations": []}', "database.v.fps", "fps must be > 0"),
])
def test_detection_bad_input(tmp_path, entry, field, message):
    p = write(tmp_path, "bad.json", '{"database": {"v": ' + entry + "}}")
    with pytest.raises(InputError, match=message) as e:
        read_detection_json(p)
    assert (e.value.path, e.value.field) == (str(p), field)


def test_detection_round_trip(tmp_path):
    for rel in ("thumos14/thumos14.json", "thumos14/thumos_14_anno.json"):
        samples = real(rel)
        write_annotations(tmp_path / "d.json", samples, "detection-json")
        assert read_annotations(tmp_path / "d.json") == samples
    # EPIC samples write too (their per-segment extras become lists).
    epic = real("epic_kitchens_100/EPIC_100_validation.csv")
    write_annotations(tmp_path / "e.json", epic, "detection-json")
    assert read_annotations(tmp_path / "e.json") == epic
    with pytest.raises(InputError, match="duplicate video"):
        write_annotations(tmp_path / "x.json", [epic[0], epic[0]], "detection-json")


# ----------------------------------------------------------------------------- EPIC-Kitchens-100

def epic_rows(name: str) -> list[dict]:
    with open(EPIC / name, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("name, segments, videos, labelled", [
    ("EPIC_100_validation.csv", 9668, 138, True),
    ("EPIC_100_uda_source_train.csv", 16115, 148, True),
    ("EPIC_100_uda_source_val.csv", 5002, 50, True),
    ("EPIC_100_uda_target_val.csv", 7906, 55, True),
    ("EPIC_100_test_timestamps.csv", 13092, 67, False),
    ("EPIC_100_uda_target_train_timestamps.csv", 26115, 136, False),
    ("EPIC_100_uda_source_test_timestamps.csv", 4298, 59, False),
    ("EPIC_100_uda_target_test_timestamps.csv", 5909, 26, False),
])
def test_epic_csv_counts(name, segments, videos, labelled):
    rows = epic_rows(name)
    assert (len(rows), len({r["video_id"] for r in rows})) == (segments, videos)
    samples = real(f"epic_kitchens_100/{name}")
    assert len(samples) == videos and sum(len(s.segments) for s in samples) == segments
    assert all(bool(s.extra.get("unlabelled")) is not labelled for s in samples)
    ids = [n for s in samples for n in s.extra["narration_ids"]]
    assert sorted(ids) == sorted(r["narration_id"] for r in rows)


def test_epic_validation_by_hand():
    samples = {s.video: s for s in real("epic_kitchens_100/EPIC_100_validation.csv")}
    s = samples["P01_11"]
    # P01_11_0: 00:00:00.00 - 00:00:01.89, verb_class 0 (take), noun_class 2 (plate).
    assert s.segments[0] == Segment(0.0, 1.89, "take", 0)
    assert (s.extra["narration_ids"][0], s.extra["verb_classes"][0], s.extra["noun_classes"][0]) == ("P01_11_0", 0, 2)
    assert s.duration == pytest.approx(float(next(r for r in epic_rows("EPIC_100_video_info.csv")
                                                  if r["video_id"] == "P01_11")["duration"]))
    # P29_05_563 ends at 30:21.75 = 1821.75 s, 0.013 s past the 1821.7366 s video: clipped.
    p29 = samples["P29_05"]
    k = p29.extra["narration_ids"].index("P29_05_563")
    assert p29.segments[k].end == p29.duration == 1821.7365670000002
    rows = epic_rows("EPIC_100_validation.csv")
    assert len({g.label_id for s in samples.values() for g in s.segments}) == len({r["verb_class"] for r in rows}) == 78
    nouns = read_epic_csv(EPIC / "EPIC_100_validation.csv", label="noun")
    assert nouns[0].segments[0] == Segment(0.0, 1.89, "plate", 2)
    assert len({g.label_id for s in nouns for g in s.segments}) == len({r["noun_class"] for r in rows}) == 211


def test_epic_timestamps_parse():
    assert parse_timestamp("00:00:01.89", path="x", field="f") == 1.89
    assert parse_timestamp("01:02:03.5", path="x", field="f") == 3723.5
    with pytest.raises(InputError, match="HH:MM:SS.ff"):
        parse_timestamp("1:2", path="x", line=3, field="start_timestamp")


def test_epic_frames_txt(shared_data):
    lines = (EPIC / "EPIC_100_train_new.txt").read_text().splitlines()
    samples = real("epic_kitchens_100/EPIC_100_train_new.txt")
    assert len(lines) == sum(len(s.segments) for s in samples) == 67217
    assert len(samples) == len({ln.split()[0] for ln in lines}) == 495
    first = samples[0]  # first line: "P01/rgb_frames/P01_01 8 202 3 3"
    verbs = {int(r["id"]): r["key"] for r in epic_rows("EPIC_100_verb_classes.csv")}
    assert first.video == "P01_01" and first.segments[0] == Segment(8 / 60, 202 / 60, verbs[3], 3)
    assert frame_rate("P01_01") == 60.0 and frame_rate("P01_101") == 50.0
    # Times from frames agree with the official timestamps within a frame (UDA source train rows).
    official = {(r["video_id"], int(r["start_frame"]), int(r["stop_frame"])): (
        parse_timestamp(r["start_timestamp"], path="", field=""), parse_timestamp(r["stop_timestamp"], path="", field=""))
        for r in epic_rows("EPIC_100_uda_source_train.csv")}
    joined = 0
    for s in samples:
        rate = s.extra["frame_rate"]
        for g in s.segments:
            key = (s.video, round(g.start * rate), round(g.end * rate))
            if key in official:
                joined += 1
                assert abs(official[key][0] - g.start) <= 1 / rate + 0.011
                assert abs(official[key][1] - g.end) <= 1 / rate + 0.011
    assert joined > 15000


@pytest.mark.parametrize("row, line, field, message", [
    ("P01_11_9,P01,P01_11,00:00:00.560,00:00:0x.00,00:00:01.89,1,113,take plate,take,0,plate,2,['plate'],[2]",
     3, "start_timestamp", "HH:MM:SS.ff"),
    ("P01_11_0,P01,P01_11,00:00:00.560,00:00:00.00,00:00:01.89,1,113,take plate,take,0,plate,2,['plate'],[2]",
     3, "narration_id", "duplicate narration_id"),
    ("P01_11_9,P01,P99_99,00:00:00.560,00:00:00.00,00:00:01.89,1,113,take plate,take,0,plate,2,['plate'],[2]",
     3, "video_id", "not in the video info file"),
    ("P01_11_9,P01,P01_11,00:00:00.560,00:00:00.00,00:00:01.89,1,113,take plate,take,999,plate,2,['plate'],[2]",
     3, "verb_class", "unknown class id 999"),
    ("P01_11_9,P01,P01_11,00:00:00.560,00:00:03.00,00:00:01.89,1,113,take plate,take,0,plate,2,['plate'],[2]",
     3, "start_timestamp/stop_timestamp", "does not end after it starts"),
])
def test_epic_csv_bad_input(tmp_path, row, line, field, message):
    lines = (EPIC / "EPIC_100_validation.csv").read_text().splitlines()[:2]
    p = write(tmp_path, "bad.csv", "\n".join(lines + [row]) + "\n")
    with pytest.raises(InputError, match=message) as e:
        read_epic_csv(p, video_info=EPIC / "EPIC_100_video_info.csv", classes=EPIC / "EPIC_100_verb_classes.csv")
    assert (e.value.path, e.value.line, e.value.field) == (str(p), line, field)


def test_epic_needs_video_info_and_classes(tmp_path):
    p = write(tmp_path, "v.csv", "\n".join((EPIC / "EPIC_100_validation.csv").read_text().splitlines()[:3]) + "\n")
    with pytest.raises(InputError, match="video info file not found") as e:
        read_epic_csv(p)
    assert e.value.field == "video_info"
    with pytest.raises(InputError, match="classes file not found"):
        read_epic_csv(p, video_info=EPIC / "EPIC_100_video_info.csv")
    (s,) = read_epic_csv(p, video_info=EPIC / "EPIC_100_video_info.csv", classes=EPIC / "EPIC_100_noun_classes.csv",
                         label="noun")
    assert [g.label for g in s.segments] == ["plate", "plate"]
    with pytest.raises(InputError, match="must be one of verb, noun"):
        read_epic_csv(p, label="action")


# ----------------------------------------------------------------------------- window rule

def test_check_windows_vectorised_by_hand():
    c = check_windows([0, 1, -1, 5, 10, 8, math.nan], [10.5, 2, 2, 5, 11, 12, 3], 10.0, clip_tolerance=1.0)
    assert c.reasons.tolist() == [0, 0, 2, 3, 4, 5, 1]
    assert c.ends.tolist()[:2] == [10.0, 2.0]
    assert c.num_invalid == 5


@pytest.mark.parametrize("fmt, suffix", [("grounding-jsonl", ".jsonl"), ("charades-txt", ".txt"),
                                         ("captions-json", ".json"), ("detection-json", ".json")])
def test_binary_file_is_refused_cleanly(tmp_path, fmt, suffix):
    p = tmp_path / f"blob{suffix}"
    p.write_bytes(b'{"a": "\xff\xfe\xfa"}\n')
    with pytest.raises(InputError, match="not UTF-8 text") as e:
        read_annotations(p, fmt, **({"durations": {}} if fmt == "charades-txt" else {}))
    assert e.value.path == str(p)


# ----------------------------------------------------------------------------- Charades CSV
# The Charades / CharadesEgo CSVs may not be redistributed (none is in the shared data): the tests
# use the small fixture and files written here, in the official column layout.
CHARADES_HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length"


def charades_row(vid: str, actions: str, length: str, extra: str = "") -> str:
    script = '"A person holds a cup, then sits."'
    return f'{vid},S1,Kitchen,6,7,Yes,{script},cup;chair,"A person.",{actions},{length}{extra}\n'


def test_charades_csv_fixture_by_hand():
    from momentkit.data.annotations import read_charades_csv

    path = FIXTURES / "Charades_v1_small.csv"
    assert detect_format(path) == "charades-csv" and get_format("charades-csv").kind == "detection"
    samples = read_annotations(path)
    assert samples == read_charades_csv(path)
    assert [(s.video, s.duration, s.subset) for s in samples] == [("AB12C", 25.5, None), ("XY34Z", 30.4, None)]
    assert samples[0].segments == (Segment(0.0, 6.9, "c006", 6), Segment(5.2, 12.4, "c059", 59))
    assert samples[1].segments == (Segment(3.1, 10.0, "c061", 61),)
    assert samples[0].extra == {"view": "third-person"}


@pytest.mark.filterwarnings("ignore::momentkit.data.annotations.AnnotationWarning")
def test_charades_csv_views_classes_subset_and_invalid_windows(tmp_path):
    p = write(tmp_path, "CharadesEgo_v1_train.csv", CHARADES_HEADER + ",egocentric,charades_video\n"
              + charades_row("AAA01EGO", "c001 0.50 3.00;c003 1.00 25.00", "20.00", ",Yes,AAA01")
              + charades_row("AAA01", "", "12.50", ",No,AAA01EGO")
              + charades_row("BBB02", "c003 2 4", "9", ",yes,BBB02X"))  # the column wins over the id
    classes = write(tmp_path, "Charades_v1_classes.txt", "c001 Holding a cup\n\nc003 Sitting down\n")
    with pytest.warns(AnnotationWarning, match="dropped 1 invalid segment"):
        samples = read_annotations(p, classes=str(classes), subset="training")
    assert [(s.video, s.extra["view"], s.subset) for s in samples] == [
        ("AAA01EGO", "egocentric", "training"), ("AAA01", "third-person", "training"),
        ("BBB02", "egocentric", "training")]
    assert samples[0].segments == (Segment(0.5, 3.0, "Holding a cup", 1),)
    assert samples[0].extra["invalid_segments"][0]["end"] == 25.0 and samples[1].segments == ()
    assert [s.video for s in read_annotations(p, view="ego")] == ["AAA01EGO", "BBB02"]
    assert [s.video for s in read_annotations(p, view="third")] == ["AAA01"]
    with pytest.raises(InputError, match="ends 5 s after the end") as e:
        read_annotations(p, on_invalid="error")
    assert (e.value.line, e.value.field) == (2, "actions")
    classes.write_text("c001 Holding a cup\n")
    with pytest.raises(InputError, match="unknown action class 'c003' \\(not in Charades_v1_classes.txt\\)"):
        read_annotations(p, classes=str(classes))
    with pytest.raises(InputError, match="unknown action class 'c003' \\(not in the class names\\)"):
        read_annotations(p, classes={"c001": "Holding a cup"})
    no_ego = write(tmp_path, "Charades_v1_test.csv", CHARADES_HEADER + "\n" + charades_row("CCC03", "", "8"))
    with pytest.raises(InputError, match="no egocentric video in the file"):
        read_annotations(no_ego, view="ego")
    with pytest.raises(InputError, match="must be one of all, third, ego") as e:
        read_annotations(no_ego, view="side")
    assert e.value.field == "view"


@pytest.mark.parametrize("text, line, field, message", [
    (CHARADES_HEADER.replace(",length", "") + "\n", 1, "length", "missing required column 'length'"),
    (CHARADES_HEADER + "\n" + charades_row("A1", "c001 1.0", "10"), 2, "actions", "expected 'cNNN start end'"),
    (CHARADES_HEADER + "\n" + charades_row("A1", "c001 1.0 x", "10"), 2, "actions", "not a number|expected a number"),
    (CHARADES_HEADER + "\n" + charades_row("A1", "x01 1 2", "10"), 2, "actions", "expected an action class cNNN"),
    (CHARADES_HEADER + "\n" + charades_row("A1", "", "0"), 2, "length", "length must be > 0"),
    (CHARADES_HEADER + "\n" + charades_row("A1", "", "5") + charades_row("A1", "", "6"), 3, "id",
     "duplicate video 'A1' \\(first on line 2\\)"),
    (CHARADES_HEADER + ",egocentric\n" + charades_row("A1", "", "5", ",maybe"), 2, "egocentric", "expected Yes or No"),
    ("", None, None, "file is empty"),
])
def test_charades_csv_bad_input(tmp_path, text, line, field, message):
    p = write(tmp_path, "bad.csv", text)
    with pytest.raises(InputError, match=message) as e:
        read_annotations(p, "charades-csv")
    assert (e.value.path, e.value.line, e.value.field) == (str(p), line, field)


def test_data_stats_reads_a_charades_csv(tmp_path, capsys):
    from momentkit.cli.main import main

    p = write(tmp_path, "Charades_v1_test.csv", CHARADES_HEADER + "\n"
              + charades_row("AB12C", "c006 0.00 6.90;c059 5.20 12.40;c006 20 40", "25.50")
              + charades_row("XY34Z", "", "30.40"))
    assert main(["data", "stats", str(p), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["format"], stats["videos"], stats["segments"], stats["classes"]) == ("charades-csv", 2, 2, 2)
    assert stats["skipped_invalid_segments"] == 1 and stats["subsets"] == {"none": 2}
    assert main(["data", "stats", str(p), "-o", "subset=test"]) == 0
    out = capsys.readouterr()
    assert "charades-csv" in out.out and "test: 2" in out.out and "1 invalid segment" in out.err


def test_clip_ids_without_scores_are_kept_as_qv_m2_writes_them(tmp_path, shared_data):
    from momentkit.data.annotations.grounding_jsonl import grounding_row

    samples = read_annotations(shared_data / "qv_m2" / "test.jsonl")  # the test split has no scores
    first = json.loads((shared_data / "qv_m2" / "test.jsonl").read_text().splitlines()[0])
    assert samples[0].saliency_scores == () and samples[0].extra["relevant_clip_ids"] == first["relevant_clip_ids"]
    assert grounding_row(samples[0])["relevant_clip_ids"] == first["relevant_clip_ids"]  # written back
