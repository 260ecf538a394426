"""Generate every split of a preset, write annotations and features, score the oracle."""

from __future__ import annotations

from pathlib import Path

from momentkit.io import write_json
from momentkit.synth.config import SynthConfig
from momentkit.synth.generate import Generator
from momentkit.synth import oracle


def synthesize(cfg: SynthConfig, out: str | Path, seed: int = 0, preset: str | None = None) -> dict:
    """Write the benchmark described by ``cfg`` to ``out``; returns the summary written to synth.json."""
    from momentkit.data.annotations import write_annotations

    out = Path(out)
    gen = Generator(cfg, seed)
    summary: dict = {"preset": preset, "seed": seed, "config": cfg.to_dict(), "splits": {}, "oracle": {}}
    if cfg.task == "grounding":
        for i, (split, n) in enumerate(cfg.splits().items()):
            if n <= 0:
                continue
            samples, rendered, texts = gen.grounding_split(split, n, out, i)
            write_annotations(out / "annotations" / f"{split}.jsonl", samples, "grounding-jsonl")
            summary["splits"][split] = _grounding_counts(samples)
            if split != "train":
                preds = oracle.grounding_predictions(gen, samples, rendered, texts)
                summary["oracle"][split] = _score_grounding(cfg, preds, samples)
        summary["video_features"] = [f"features/{f}" for f in gen.video_folders]
        summary["text_features"] = f"features/{gen.text_folder}"
    elif cfg.task == "clips":
        rows = []
        for i, (split, n) in enumerate(cfg.splits().items()):
            if n <= 0:
                continue
            samples, rendered = gen.clips_split(split, n, out, i)
            rows += [(s.segments[0].label, s.video, s.duration, split) for s in samples]
            summary["splits"][split] = {"clips": len(samples), "classes": len({r[0] for r in rows if r[3] == split})}
        _write_clips_csv(out / "annotations" / "clips.csv", rows)
        summary["video_features"] = [f"features/{f}" for f in gen.video_folders]
    elif cfg.task == "classification":  # momentkit.synth.classification
        from momentkit.synth.classification import generate_classification

        summary.update(generate_classification(cfg, out, seed))
    elif cfg.task == "dense":
        all_samples = []
        for i, (split, n) in enumerate(cfg.splits().items()):
            if n <= 0:
                continue
            samples, rendered = gen.detection_split(split, n, out, i)
            subset = {"train": "training", "val": "validation"}.get(split, split)
            all_samples += [_with_subset(s, subset) for s in samples]
            summary["splits"][split] = _dense_counts(samples, cfg)
            if split != "train":
                summary["oracle"][split] = _score_dense(oracle.dense_predictions(gen, samples, rendered), samples, gen)
        write_annotations(out / "annotations" / "dense.json", all_samples, "detection-json")
        summary["video_features"] = [f"features/{f}" for f in gen.video_folders]
    else:
        for domain in range(cfg.domains):
            name = "source" if domain == 0 else "target"
            all_samples = []
            for i, (split, n) in enumerate(cfg.splits().items()):
                if n <= 0:
                    continue
                samples, rendered = gen.detection_split(split, n, out, i, domain)
                subset = {"train": "training", "val": "validation"}.get(split, split)
                all_samples += [_with_subset(s, subset) for s in samples]
                summary["splits"][f"{name}/{split}"] = _detection_counts(samples)
                if split != "train":
                    preds = oracle.detection_predictions(gen, samples, rendered)
                    summary["oracle"][f"{name}/{split}"] = _score_detection(preds, samples)
            write_annotations(out / "annotations" / f"{name}.json", all_samples, "detection-json")
        summary["video_features"] = [f"features/{f}" for f in gen.video_folders]
    write_json(out / "synth.json", summary)
    return summary


def _write_clips_csv(path: Path, rows) -> None:
    import csv

    from momentkit.io import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["label", "video", "duration", "split"])
        w.writerows(rows)


def _with_subset(sample, subset: str):
    from dataclasses import replace

    return replace(sample, subset=subset)


def _grounding_counts(samples) -> dict:
    import numpy as np

    n_win = np.array([len(s.windows) for s in samples])
    lengths = np.array([e - s for x in samples for s, e in x.windows])
    return {
        "queries": len(samples), "videos": len({s.vid for s in samples}),
        "moments_per_query": round(float(n_win.mean()), 3),
        "multi_moment_pct": round(100 * float((n_win > 1).mean()), 2),
        "window_len_mean": round(float(lengths.mean()), 2), "window_len_median": round(float(np.median(lengths)), 2),
    }


def _detection_counts(samples) -> dict:
    import numpy as np

    lengths = np.array([g.end - g.start for s in samples for g in s.segments])
    return {"videos": len(samples), "segments": int(lengths.size),
            "segment_len_mean": round(float(lengths.mean()), 2),
            "classes": len({g.label for s in samples for g in s.segments})}


def _dense_counts(samples, cfg: SynthConfig) -> dict:
    import numpy as np

    from momentkit.data.dense import frame_labels, frame_times

    counts = _detection_counts(samples)
    active, multi = [], []
    for s in samples:
        t = frame_times(s.duration, max(1, round(s.duration / cfg.clip_len)))
        lab = frame_labels(t, np.array([(g.start, g.end) for g in s.segments]).reshape(-1, 2),
                           np.array([g.label_id for g in s.segments]), cfg.num_actions)
        n = lab.sum(1)
        active.append((n > 0).mean())
        multi.append((n > 1).mean())
    counts["action_frames_pct"] = round(100 * float(np.mean(active)), 2)
    counts["multi_label_frames_pct"] = round(100 * float(np.mean(multi)), 2)
    return counts


def _score_dense(preds, samples, gen) -> dict:
    from momentkit.metrics import evaluate_dense

    gt = {"database": {s.video: {"duration": s.duration, "annotations": [
        {"segment": [g.start, g.end], "label_id": g.label_id} for g in s.segments]} for s in samples}}
    res = evaluate_dense({"results": preds}, gt, protocol="per-frame")
    loc = evaluate_dense({"results": preds}, gt, protocol="charades")
    return {"mAP": res["mAP"], "localize-mAP": loc["mAP"], "localize-weighted-mAP": loc["weighted-mAP"]}


def _score_grounding(cfg: SynthConfig, preds, samples) -> dict:
    from momentkit.data.annotations.grounding_jsonl import grounding_row
    from momentkit.tasks.grounding import score_predictions

    task = "grounding" if cfg.annotators else ("multimoment" if cfg.repeats[1] > 1 or max(cfg.specificity) > 0 else "single")
    # the flat metrics, with the query diagnostics a trained model's are compared with
    return score_predictions(preds, [grounding_row(s) for s in samples], task, clip_len=cfg.clip_len)


def _score_detection(preds, samples) -> dict:
    from momentkit.metrics import evaluate_detection

    gt = {"database": {s.video: {"subset": "validation", "duration": s.duration,
                                 "annotations": [{"segment": [g.start, g.end], "label": g.label} for g in s.segments]}
                       for s in samples}}
    return evaluate_detection({"results": preds}, gt, tiou="epic", per_class=False)
