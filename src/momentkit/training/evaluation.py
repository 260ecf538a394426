"""Score prediction rows during training with the same functions ``momentkit evaluate`` uses."""

from __future__ import annotations


def score_predictions(preds: list[dict], gt: list[dict], task: str, full: bool = False,
                      active_threshold: float = 0.5) -> dict:
    """Flat headline metrics (``full=False``, for logging) or the complete metrics dict.

    - ``grounding``: QVHighlights MR + HD (``MR-full-mAP``, ``HL-min-VeryGood-mAP``, ...);
    - ``single``: Charades-STA / TACoS R1@t, R5@t, mIoU, plus the QVHighlights MR keys;
    - ``multimoment``: R_m / mAP_m / mAP per threshold, the decoder diagnostics (predictions
      with confidence >= ``active_threshold`` per query, % predictions matched, % GT matched),
      plus the QVHighlights MR keys.
    """
    from momentkit.metrics import evaluate_grounding, evaluate_multimoment, evaluate_single_moment

    if task == "grounding":
        res = evaluate_grounding(preds, gt)
        return res if full else dict(res["brief"])
    mr = evaluate_grounding([{k: v for k, v in p.items() if k != "pred_saliency_scores"} for p in preds],
                            [{k: v for k, v in g.items() if k != "saliency_scores"} for g in gt])
    extra = evaluate_single_moment(preds, gt) if task == "single" else \
        evaluate_multimoment(preds, gt, active_threshold=active_threshold)
    flat = {**mr["brief"], **{k: v for k, v in extra.items() if isinstance(v, (int, float))}}
    if full:
        return {"brief": flat, task: extra, **{k: v for k, v in mr.items() if k != "brief"}}
    return flat
