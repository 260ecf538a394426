"""``momentkit data stats`` and :mod:`momentkit.data.stats`.

Expected values come from hand computation on the small fixtures and from plain-Python counts on
the raw QVHighlights file, independent of momentkit.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from conftest import DATA
from momentkit.cli.main import main
from momentkit.data.annotations import read_annotations
from momentkit.data.records import DetectionSample, GroundingSample
from momentkit.data.stats import annotation_stats, length_stats
from momentkit.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "annotations"
QVH_TRAIN = DATA / "qvhighlights" / "highlight_train_release.jsonl"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["data", "stats", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def table_value(out: str, name: str) -> str:
    """The value cell of the table row whose statistic starts with ``name``."""
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) == 2 and cells[0].startswith(name):
            return cells[1]
    raise AssertionError(f"no row {name!r} in:\n{out}")


# ----------------------------------------------------------------------------- statistics by hand

def test_grounding_stats_by_hand():
    # windows: [0,10] [20,40] | [100,150] | [1.5,4.5] -> lengths 10, 20, 50, 3
    st = annotation_stats(read_annotations(FIXTURES / "grounding_small.jsonl"))
    assert (st["kind"], st["queries"], st["videos"], st["moments"]) == ("grounding", 3, 2, 4)
    assert st["moments_per_query"] == {"mean": pytest.approx(4 / 3), "max": 2, "multi_moment_pct": pytest.approx(100 / 3)}
    assert st["queries_per_video"] == {"mean": 1.5, "max": 2}
    assert st["with_saliency"] == 1
    wl = st["window_length"]
    assert (wl["min"], wl["median"], wl["mean"], wl["max"]) == (3.0, 15.0, 20.75, 50.0)
    assert wl["bins"] == {"short": 2, "middle": 1, "long": 1, "over_150": 0}  # 10 is short: (0, 10]
    assert st["duration"] == {"min": 60.0, "mean": 105.0, "max": 150.0}


def test_detection_stats_by_hand():
    # kept: [2,7] Jump, [40,100] Run (clipped from 100.5) | [10,25] Run, [20,190] Swim | none
    with pytest.warns(UserWarning):
        st = annotation_stats(read_annotations(FIXTURES / "detection_small.json"))
    assert (st["kind"], st["videos"], st["segments"], st["classes"]) == ("detection", 3, 4, 3)
    assert st["segments_per_video"] == {"mean": pytest.approx(4 / 3), "max": 2,
                                        "multi_segment_pct": pytest.approx(200 / 3)}
    assert st["subsets"] == {"training": 1, "validation": 2}
    assert st["skipped_invalid_segments"] == 1 and st["unlabelled_segments"] == 0
    wl = st["window_length"]
    assert (wl["min"], wl["median"], wl["mean"], wl["max"]) == (5.0, 37.5, 62.5, 170.0)
    assert wl["bins"] == {"short": 1, "middle": 1, "long": 1, "over_150": 1}
    assert st["duration"] == {"min": 30.0, "mean": 110.0, "max": 200.0}


def test_length_bins_edges():
    b = length_stats([0.5, 10.0, 10.01, 30.0, 30.5, 150.0, 150.5])["bins"]
    assert b == {"short": 2, "middle": 2, "long": 2, "over_150": 1}


def test_stats_refuses_empty_and_mixed():
    with pytest.raises(InputError, match="no samples"):
        annotation_stats([])
    with pytest.raises(TypeError):
        annotation_stats([GroundingSample(1, "q", "v", 5.0, ((0.0, 1.0),)), DetectionSample("v", 5.0, ())])


# ----------------------------------------------------------------------------- the command

def qvh_facts() -> dict:
    rows = [json.loads(line) for line in QVH_TRAIN.read_text().splitlines() if line.strip()]
    n = [len(r["relevant_windows"]) for r in rows]
    lengths = [e - s for r in rows for s, e in r["relevant_windows"]]
    return {
        "queries": len(rows), "videos": len({r["vid"] for r in rows}), "moments": sum(n),
        "max": max(n), "multi": 100 * sum(k > 1 for k in n) / len(n),
        "median": statistics.median(lengths), "mean": statistics.fmean(lengths),
        "short": sum(0 < x <= 10 for x in lengths), "middle": sum(10 < x <= 30 for x in lengths),
        "long": sum(30 < x <= 150 for x in lengths),
    }


def test_cli_table_qvhighlights_train(capsys):
    code, out, err = run(capsys, QVH_TRAIN)
    assert code == 0 and err == ""
    facts = qvh_facts()
    assert facts["queries"] == 7218
    assert table_value(out, "queries") == "7218"
    assert table_value(out, "format") == "grounding-jsonl"
    assert table_value(out, "videos") == str(facts["videos"]) == "7100"
    assert table_value(out, "moments short") == str(facts["short"])
    assert table_value(out, "multi-moment queries") == f"{facts['multi']:.2f} %"


def test_cli_json_qvhighlights_train(capsys):
    code, out, _ = run(capsys, QVH_TRAIN, "--json")
    assert code == 0
    st = json.loads(out)
    facts = qvh_facts()
    assert (st["path"], st["format"], st["queries"], st["videos"], st["moments"]) == (
        str(QVH_TRAIN), "grounding-jsonl", 7218, facts["videos"], facts["moments"])
    assert st["moments_per_query"]["max"] == facts["max"]
    assert st["moments_per_query"]["multi_moment_pct"] == pytest.approx(facts["multi"])
    assert st["window_length"]["median"] == facts["median"]
    assert st["window_length"]["mean"] == pytest.approx(facts["mean"])
    assert st["window_length"]["bins"] == {"short": facts["short"], "middle": facts["middle"],
                                           "long": facts["long"], "over_150": 0}
    assert st["with_saliency"] == 7218


def test_cli_detection_with_options_and_warning(capsys):
    code, out, err = run(capsys, DATA / "multithumos" / "multithumos.json", "--json", "-o", "index_base=1")
    assert code == 0
    st = json.loads(out)
    assert (st["videos"], st["segments"], st["classes"], st["skipped_invalid_segments"]) == (413, 38690 - 72, 65, 72)
    assert err.startswith("momentkit data: warning: dropped 72 invalid segment(s)") and err.count("\n") == 1
    code, out, err = run(capsys, DATA / "thumos14" / "thumos14.json", "--option", "on_invalid=skip",
                         "--option", "subset=Validation", "--json")
    assert code == 0 and json.loads(out)["subsets"] == {"Validation": 200}
    # 2 + 2 segments of video_validation_0000364 / _0000856 start after their stated durations.
    assert "dropped 4 invalid segment(s)" in err and json.loads(out)["skipped_invalid_segments"] == 4


def test_cli_charades_durations(capsys, tmp_path):
    p = tmp_path / "sta.txt"
    p.write_text((FIXTURES / "charades_sta_small.txt").read_text())
    code, _, err = run(capsys, p)
    assert code == 2 and "no duration for video 'AB12C'" in err
    code, out, _ = run(capsys, p, "--durations", FIXTURES / "Charades_v1_small.csv", "--json")
    assert code == 0 and json.loads(out)["duration"] == {"min": 25.5, "mean": pytest.approx(27.95), "max": 30.4}


@pytest.mark.parametrize("content, argv, message", [
    ('{"qid": 1, "query": "a", "vid": "v", "duration": 10, "relevant_windows": [[1, 2]]}\n{"qid": 2,\n',
     (), "bad.jsonl:2: malformed JSON"),
    ('{"qid": 1, "query": "a", "vid": "v", "duration": 10, "relevant_windows": [[3, 2]]}\n',
     (), "bad.jsonl:1, field 'relevant_windows[0]': window [3, 2] does not end after it starts"),
    ('{"qid": 1, "query": "a", "vid": "v", "duration": 10, "relevant_windows": [[1, 2]]}\n',
     ("--format", "tsv"), "unknown annotation format 'tsv'"),
    ('{"qid": 1, "query": "a", "vid": "v", "duration": 10, "relevant_windows": [[1, 2]]}\n',
     ("-o", "label=noun"), "has no option 'label'"),
    ('{"qid": 1, "query": "a", "vid": "v", "duration": 10, "relevant_windows": [[1, 2]]}\n',
     ("-o", "label"), "expected KEY=VALUE"),
    ("", (), "file is empty"),
])
def test_cli_bad_input_one_line_exit_2(capsys, tmp_path, content, argv, message):
    p = tmp_path / "bad.jsonl"
    p.write_text(content)
    code, out, err = run(capsys, p, *argv)
    assert code == 2 and out == ""
    assert err.startswith("momentkit data: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, tmp_path / "nope.json")
    assert code == 2 and err.strip().endswith("nope.json: file not found")


@pytest.mark.parametrize("path, option, message", [
    (FIXTURES / "charades_sta_small.txt", "durations=5", "field 'durations': expected a mapping or Charades CSV"),
    (FIXTURES / "detection_small.json", "subset=5", "field 'subset': expected a subset name"),
    (FIXTURES / "detection_small.json", "on_invalid=ignore", "field 'on_invalid': must be one of error, skip"),
    (FIXTURES / "detection_small.json", "clip_tolerance=-1", "field 'clip_tolerance'"),
    (DATA / "epic_kitchens_100" / "EPIC_100_validation.csv", "classes=3", "field 'classes': expected a file path"),
    (DATA / "epic_kitchens_100" / "EPIC_100_validation.csv", "label=action", "field 'label': must be one of verb, noun"),
    (DATA / "multithumos" / "multithumos.json", "class_names=[1, 2]", "field 'class_names'"),
    (FIXTURES / "grounding_small.jsonl", "require_windows=maybe", "field 'require_windows'"),
])
def test_cli_bad_option_values(capsys, path, option, message):
    code, out, err = run(capsys, path, "-o", option)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1
