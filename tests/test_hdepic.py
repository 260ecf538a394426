"""HD-EPIC narrations -> HD-EPIC-S caption queries: the reader on a small hand-made file in the real
format (the 16 columns of ``HD_EPIC_Narrations.pkl`` written as CSV by pandas, real video ids and the
real ``HD_EPIC_YouTube_URLs.csv`` rows of their durations), the 500-frame windows at 3 fps, windows
without ground truth dropped, the 80/20 split per participant, and the search-query builder on top
(its manifest, the command line)."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings

import numpy as np
import pytest

from momentkit.cli.main import main
from momentkit.data.annotations import AnnotationWarning, detect_format, read_annotations, write_annotations
from momentkit.errors import InputError
from momentkit.searchq import ChatClient, SearchQueryOptions, build_benchmark, load_prompts

from conftest import REPO

ROOT = REPO / "tests" / "fixtures" / "hdepic"
NARR = ROOT / "narrations-and-action-segments" / "HD_EPIC_Narrations.csv"
EXAMPLES = REPO / "configs" / "searchq" / "hd-epic.json"
A, B, C, D, E = ("P01-20240202-110250", "P01-20240202-161354", "P01-20240202-161948", "P01-20240202-171220",
                 "P01-20240202-175627")
F, G, H, I = "P02-20240209-184316", "P02-20240209-194141", "P02-20240209-231412", "P03-20240216-084005"
W = 166.666667  # 500 frames at 3 fps, rounded to the microsecond


def read(path=NARR, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnnotationWarning)
        return read_annotations(path, **options)


def rows(samples):
    return [(s.qid, s.vid, s.duration, s.windows, s.extra["split"]) for s in samples]


# ----------------------------------------------------------------------------- windows
def test_windows_by_hand():
    assert detect_format(NARR) == "hd-epic-csv"
    with pytest.warns(AnnotationWarning, match=r"skipped 1 narration\(s\) without text \(first on line 6\)"):
        samples = read_annotations(NARR)
    # window k covers [k, k + 1) * 500 / 3 s; videos in order of first appearance (P03 is first in the file),
    # then windows, then file order (A-4 comes before A-1 in the file but lies in a later window)
    assert rows(samples) == [
        (f"{I}-1", f"{I}_1000_1500", W, ((66.666667, 71.666667),), "train"),  # 400 - 333.33, 405 - 333.33
        (f"{A}-1", f"{A}_0_500", W, ((7.44, 8.75),), "train"),
        (f"{A}-2", f"{A}_0_500", W, ((160.0, W),), "train"),  # 160-170 crosses 166.67: clipped ...
        (f"{A}-2_w1", f"{A}_500_1000", W, ((0.0, 3.333333),), "train"),  # ... and continued in window 1
        (f"{A}-4", f"{A}_1000_1500", 62.933334, ((17.166667, 18.666667),), "train"),  # last window: 396.266667 - 333.33
        (f"{B}-1", f"{B}_0_500", W, ((10.0, 12.5),), "train"),
        (f"{B}-2", f"{B}_0_500", W, ((20.0, 28.0),), "train"),
        (f"{C}-1", f"{C}_2000_2500", 102.933333, ((33.333333, 38.333333),), "train"),  # window 4: 666.67-769.6
        (f"{D}-1", f"{D}_0_500", W, ((1.0, 2.0),), "train"),
        (f"{E}-1", f"{E}_0_500", W, ((100.0, 101.5),), "test"),
        (f"{F}-1", f"{F}_3000_3500", W, ((0.0, 10.0),), "train"),  # starts exactly at window 6 (1000 s)
        (f"{G}-1", f"{G}_0_500", W, ((5.0, 9.0),), "train"),
        (f"{H}-1", f"{H}_0_500", 32.3, ((30.0, 32.3),), "test"),  # a 32.3 s video: one short window
    ]
    s = samples[3]
    assert s.extra == {"participant_id": "P01", "video_id": A, "narration_id": f"{A}-2", "split": "train",
                       "window": 1, "window_start": W, "frames": [500, 1000]}
    assert samples[0].query.startswith("Pick up the recipe book using the right hand")


def test_windows_without_ground_truth_are_dropped():
    vids = {s.vid for s in read()}
    # C (769.6 s) has 5 windows, only window 4 holds a narration; B's second window has none; A's second
    # window holds only the end of a narration, and the text-less narration at 200-201 s makes no window
    assert sorted(v for v in vids if v.startswith(C)) == [f"{C}_2000_2500"]
    assert f"{B}_500_1000" not in vids and f"{D}_500_1000" not in vids
    assert len(vids) == 11
    dropped = read(boundary="drop")  # narrations crossing a boundary are dropped, and with them A's window 1
    assert len(dropped) == 11 and f"{A}-2" not in {s.qid for s in dropped}
    assert f"{A}_500_1000" not in {s.vid for s in dropped}


def test_other_window_sizes_and_whole_videos():
    small = {s.qid: (s.vid, s.duration, s.windows) for s in read(window_frames=45, fps=3)}  # 15 s windows
    assert small[f"{B}-2"] == (f"{B}_45_90", 15.0, ((5.0, 13.0),))  # 20-28 s in window 1 (15-30 s)
    assert small[f"{A}-2"] == (f"{A}_450_495", 15.0, ((10.0, 15.0),))  # 160-170 s: window 10 (150-165 s) ...
    assert small[f"{A}-2_w11"] == (f"{A}_495_540", 15.0, ((0.0, 5.0),))  # ... and window 11
    assert small[f"{H}-1"] == (f"{H}_90_135", 2.3, ((0.0, 2.3),))  # 30-32.3 s of a 32.3 s video
    whole = read(window_frames=None)
    assert len(whole) == 12 and {s.vid for s in whole} == {A, B, C, D, E, F, G, H, I}
    a2 = next(s for s in whole if s.qid == f"{A}-2")
    assert (a2.vid, a2.duration, a2.windows) == (A, 396.266667, ((160.0, 170.0),)) and "window" not in a2.extra


def test_durations(tmp_path):
    # without HD_EPIC_YouTube_URLs.csv beside the file: a video lasts until its last narration ends, windows
    # keep their nominal length
    lone = tmp_path / "HD_EPIC_Narrations.csv"
    shutil.copy(NARR, lone)
    by_qid = {s.qid: s for s in read(lone)}
    assert by_qid[f"{A}-4"].duration == W and by_qid[f"{A}-4"].extra["duration_estimated"] is True
    assert by_qid[f"{H}-1"].duration == W
    # durations given as a mapping or as the URLs CSV
    by_qid = {s.qid: s for s in read(lone, durations={A: 351.5})}
    assert by_qid[f"{A}-4"].windows == ((17.166667, 18.166667),)  # 352 clipped to 351.5 (within 1 s)
    assert by_qid[f"{A}-4"].duration == 18.166667 and "duration_estimated" not in by_qid[f"{A}-4"].extra
    assert by_qid[f"{H}-1"].extra["duration_estimated"] is True  # a video the mapping does not name
    with pytest.raises(InputError, match=r"ends 1.25 s after the end of the video \(duration 350.75\)"):
        read(lone, durations={A: 350.75})
    urls = ROOT / "youtube-links" / "HD_EPIC_YouTube_URLs.csv"
    assert rows(read(lone, durations=str(urls))) == rows(read())


# ----------------------------------------------------------------------------- the split
def test_split_per_participant_by_hand():
    def test_videos(samples):
        return sorted({s.extra["video_id"] for s in samples if s.extra["split"] == "test"})

    # P01: 5 videos -> round(0.2 * 5) = 1 test video, the last by id (recording time): E;
    # P02: 3 videos -> round(0.6) = 1: H; P03: 1 video -> round(0.2) = 0
    assert test_videos(read()) == [E, H]
    assert [s.vid for s in read(split="test")] == [f"{E}_0_500", f"{H}_0_500"]
    assert len(read(split="train")) == 11 and not {s.extra["video_id"] for s in read(split="train")} & {E, H}
    # half: P01 round(2.5) = 3 (C, D, E), P02 round(1.5) = 2 (G, H), P03 round(0.5) = 1 (I) -- halves round up
    assert test_videos(read(test_fraction=0.5)) == [C, D, E, G, H, I]
    assert test_videos(read(test_fraction=0.0)) == [] and len(test_videos(read(test_fraction=1.0))) == 9
    # a seed shuffles each participant's videos first: still 1 / 1 / 0 test videos, the same for the same seed
    seeded = test_videos(read(split_seed=3))
    assert seeded == test_videos(read(split_seed=3))
    assert [v[:3] for v in seeded] == ["P01", "P02"]
    assert {tuple(test_videos(read(split_seed=s))) for s in range(8)} != {(E, H)}  # not always the last ones


def test_written_captions_round_trip(tmp_path):
    train = read(split="train")
    out = tmp_path / "hd_epic_train.jsonl"
    write_annotations(out, train, "grounding-jsonl")
    back = read_annotations(out)
    assert [(s.qid, s.vid, s.duration, s.windows) for s in back] == [(s.qid, s.vid, s.duration, s.windows)
                                                                     for s in train]
    assert back[0].extra["frames"] == [1000, 1500] and back[0].extra["participant_id"] == "P03"


# ----------------------------------------------------------------------------- bad input
def _csv(tmp_path, text, name="n.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


HEADER = "unique_narration_id,participant_id,video_id,narration,start_timestamp,end_timestamp,nouns\n"


def test_bad_files_and_options(tmp_path):
    pkl = tmp_path / "HD_EPIC_Narrations.pkl"
    pkl.write_bytes(b"\x80\x04\x95 not read")
    assert detect_format(pkl) == "hd-epic-csv"
    with pytest.raises(InputError, match=r"does not unpickle.*to_csv\('HD_EPIC_Narrations.csv', index=False\)"):
        read_annotations(pkl)
    bad = _csv(tmp_path, HEADER.replace(",end_timestamp", ",stop") + "x,P01,v,a,1,2,[]\n")
    with pytest.raises(InputError, match=r"n.csv:1, field 'end_timestamp': missing required column"):
        read_annotations(bad, "hd-epic-csv")
    cases = [
        ("x,P01,v,a,one,2,[]\n", r"n.csv:2, field 'start_timestamp': expected a number, got 'one'"),
        ("x,P01,v,a,1,2,[]\nx,P01,v,b,3,4,[]\n", r"n.csv:3, field 'unique_narration_id': duplicate .* line 2"),
        ("x,P01,v,a,5,2,[]\n", r"n.csv:2, field 'start_timestamp/end_timestamp': window \[5, 2\] does not end after"),
        ("x,P01,v,a,1,2,[]\ny,P02,v,b,3,4,[]\n", r"n.csv:3, field 'participant_id': video 'v' belongs to participant"),
        (",P01,v,a,1,2,[]\n", r"n.csv:2, field 'unique_narration_id': is empty"),
    ]
    for body, message in cases:
        with pytest.raises(InputError, match=message):
            read_annotations(_csv(tmp_path, HEADER + body), "hd-epic-csv")
    for option, value in (("split", "val"), ("boundary", "start"), ("window_frames", 0), ("fps", 0),
                          ("test_fraction", 1.5), ("split_seed", -1)):
        with pytest.raises(InputError) as e:
            read_annotations(NARR, **{option: value})
        assert e.value.field == option


# ----------------------------------------------------------------------------- the search-query builder
class Scripted(ChatClient):
    """Answers without a network: rewrites mention the object, ``tissue`` and ``cupboard`` captions become one
    search query; the validator agrees."""

    def _request(self, messages):
        user = messages[-1]["content"]
        if user.startswith("Caption:") and "Search query:" in user:
            return '{"consistent": true, "reason": "fits"}'
        if user.startswith("Caption:"):
            caption = user.removeprefix("Caption: ")
            if "tissue" in caption or "cupboard" in caption:
                return '{"query": "handle things in the kitchen"}'
            return json.dumps({"query": " ".join(caption.split()[:3])})
        return '{"query": "do something"}'


def one_hot(texts):
    return np.eye(len(texts))  # the pipeline encodes distinct texts: equal rewrites group, others do not


def test_builder_on_hdepic_with_manifest(tmp_path):
    client = Scripted(base_url="http://127.0.0.1:9/v1", model="scripted", params={"temperature": 0.0, "seed": 3})
    prompts = load_prompts(str(EXAMPLES))
    out = tmp_path / "hd_epic_s_train.jsonl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnnotationWarning)
        report = build_benchmark(NARR, out, client=client, prompts=prompts, encoder=one_hot,
                                 options=SearchQueryOptions(), reader_options={"split": "train"})
    queries = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(queries) == 10  # 11 train captions, two of one window grouped
    multi = [q for q in queries if len(q["relevant_windows"]) > 1]
    assert len(multi) == 1 and multi[0]["vid"] == f"{A}_0_500"
    assert multi[0]["query"] == "handle things in the kitchen" and multi[0]["relevant_windows"] == [[7.44, 8.75],
                                                                                                     [160.0, W]]
    assert {q["vid"] for q in queries if q["query"] == "handle things in the kitchen"} == {
        f"{A}_0_500", f"{A}_500_1000", f"{A}_1000_1500"}  # one query per window: windows are videos
    assert report["source"]["reader_options"] == {"split": "train"} and report["source"]["captions_in_file"] == 11
    m = report["manifest"]
    assert m["source"] == {"path": str(NARR), "sha256": hashlib.sha256(NARR.read_bytes()).hexdigest(),
                           "format": "hd-epic-csv", "reader_options": {"split": "train"}}
    assert m["llm"] == {"model": "scripted", "base_url": "http://127.0.0.1:9/v1",
                        "params": {"temperature": 0.0, "seed": 3}, "seed": 3}
    assert m["prompts"]["dataset"] == "hd-epic" and m["prompts"]["examples"] == prompts.examples
    assert m["prompts"]["templates"]["rewriter"]["sections"] == prompts.templates["rewriter"].sections
    assert m["encoder"] == "one_hot" and m["options"]["threshold"] == 0.85
    assert json.loads((tmp_path / "hd_epic_s_train.report.json").read_text()) == report


def test_make_search_queries_command(tmp_path, monkeypatch, capsys):
    from test_searchq import ScriptedLLM

    import momentkit.searchq.pipeline as pipeline

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    as_encoder = pipeline.as_encoder
    monkeypatch.setattr(pipeline, "as_encoder", lambda encoder: as_encoder(one_hot))  # no sentence model
    server = ScriptedLLM(lambda body: Scripted._request(None, body["messages"]))
    try:
        out = tmp_path / "hd_epic_s_test.jsonl"
        code = main(["make-search-queries", str(NARR), "--out", str(out), "-o", "split=test", "--llm-seed", "7",
                     "--dataset", str(EXAMPLES), "--base-url", server.base_url, "--llm-model", "m", "--no-cache"])
        assert code == 0
        assert all(body["seed"] == 7 and body["temperature"] == 0.0 for body in server.bodies)
    finally:
        server.close()
    queries = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(q["vid"], q["query"], q["relevant_windows"]) for q in queries] == [
        (f"{E}_0_500", "Close the fridge", [[100.0, 101.5]]), (f"{H}_0_500", "Throw away the", [[30.0, 32.3]])]
    manifest = json.loads((tmp_path / "hd_epic_s_test.report.json").read_text())["manifest"]
    assert manifest["llm"]["seed"] == 7 and manifest["source"]["reader_options"] == {"split": "test"}
    printed = capsys.readouterr()
    assert "search-query benchmark" in printed.out
    assert printed.err.count("momentkit make-search-queries: warning: ") == 1
    assert "skipped 1 narration(s) without text" in printed.err
    # a reader option the format does not have, and a selection without captions: one error line, exit 2
    assert main(["make-search-queries", str(NARR), "--out", str(out), "-o", "splitt=test"]) == 2
    assert "field 'splitt': format 'hd-epic-csv' has no option 'splitt'" in capsys.readouterr().err
    assert main(["make-search-queries", str(NARR), "--out", str(out), "-o", "split=test", "-o", "test_fraction=0"]) == 2
    assert "HD_EPIC_Narrations.csv: no captions to rewrite with these reader options" in capsys.readouterr().err
