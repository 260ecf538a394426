"""SetCriterion: per-level matching of all levels at once against each level on its own, the same
term names for every model, pluggable terms."""

from __future__ import annotations

import pytest
import torch

from momentkit.errors import InputError
from momentkit.models import create_model
from momentkit.models.criterion import PER_LEVEL, TERMS, LevelMatch, SetCriterion, register_term
from momentkit.models.losses import label_ce_loss, label_focal_loss, pack_spans, span_iou_loss, span_l1_loss
from momentkit.models.matcher import HungarianMatcher

pytestmark = pytest.mark.usefixtures("one_thread")

SET = ("span", "iou", "label")
TARGETS = [torch.tensor([[0.3, 0.2], [0.7, 0.1]]), torch.zeros(0, 2),
           torch.tensor([[0.5, 0.5], [0.2, 0.1], [0.8, 0.3]]), torch.tensor([[0.45, 0.3]])]
# (label_loss, iou_loss, class logits, matcher class cost): Moment-DETR / QD-DETR and SDST
KINDS = [("ce", "giou", 2, "prob"), ("focal", "iou", 1, "focal")]


def _levels(levels=3, b=4, q=5, c=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(levels, b, q, c, generator=g)
    spans = torch.stack([torch.rand(levels, b, q, generator=g) * 0.8 + 0.1,
                         torch.rand(levels, b, q, generator=g) * 0.4 + 0.05], -1)
    return logits, spans


def _outputs(logits, spans, stacked=False):
    out = {"pred_logits": logits[-1], "pred_spans": spans[-1], "saliency_scores": torch.zeros(spans.shape[1], 3)}
    if stacked:
        return {**out, "level_logits": logits, "level_spans": spans}
    return {**out, "aux_outputs": [{"pred_logits": a, "pred_spans": s} for a, s in zip(logits[:-1], spans[:-1])]}


def _batch(targets=TARGETS):
    return {"spans": targets, "video_mask": torch.ones(len(targets), 3, dtype=torch.bool)}


def _name(term, level, levels):
    return f"loss_{term}" if level == levels - 1 else f"loss_{term}_{level}"


@pytest.mark.parametrize("label_loss, iou_loss, c, class_cost", KINDS)
def test_per_level_matching_equals_each_level_on_its_own(label_loss, iou_loss, c, class_cost):
    logits, spans = _levels(c=c)
    matcher = HungarianMatcher(1.0, 1.0, 1.0, class_cost)
    crit = SetCriterion(matcher, dict.fromkeys(SET, 1.0), label_loss=label_loss, iou_loss=iou_loss)
    total, terms = crit(_outputs(logits, spans), _batch())
    _, stacked = crit(_outputs(logits, spans, stacked=True), _batch())
    assert terms.keys() == stacked.keys() and all(torch.equal(terms[k], stacked[k]) for k in terms)

    # one cost matrix for all levels = each level's own matching
    match = LevelMatch(logits, spans, pack_spans(TARGETS), matcher)
    windows = torch.cat(TARGETS)
    alone = SetCriterion(matcher, dict.fromkeys(SET, 1.0), label_loss=label_loss, iou_loss=iou_loss, aux_loss=False)
    for level in range(3):
        own = matcher({"pred_logits": logits[level], "pred_spans": spans[level]}, TARGETS)
        sample = torch.cat([torch.full_like(p, i) for i, (p, _) in enumerate(own)])
        pred = torch.cat([p for p, _ in own])
        tgt = torch.cat([t[j] for t, (_, j) in zip(TARGETS, own)])
        n = len(pred)
        at = slice(level * n, (level + 1) * n)
        assert torch.equal(match.index[1][at], sample) and torch.equal(match.index[2][at], pred)
        assert torch.equal(match.target[level], tgt)
        # the terms of the level, from its own matching and the elementary losses
        p = spans[level][sample, pred]
        label = (label_focal_loss(logits[level], (sample, pred)) if label_loss == "focal"
                 else label_ce_loss(logits[level], (sample, pred)))
        expected = {"span": span_l1_loss(p, tgt), "iou": span_iou_loss(p, tgt, iou_loss), "label": label}
        _, by_itself = alone({"pred_logits": logits[level], "pred_spans": spans[level]}, _batch())
        for term in SET:
            torch.testing.assert_close(terms[_name(term, level, 3)], expected[term], rtol=1e-6, atol=1e-7)
            torch.testing.assert_close(terms[_name(term, level, 3)], by_itself[f"loss_{term}"], rtol=1e-6, atol=1e-7)
    assert torch.isclose(total, sum(terms.values()))
    assert match.index[0].tolist() == [level for level in range(3) for _ in range(6)]  # 2 + 0 + 3 + 1 per level


def test_no_window_in_the_batch_gives_zeros_with_gradient():
    logits, spans = _levels(c=1)
    logits.requires_grad_()
    crit = SetCriterion(HungarianMatcher(class_cost="focal"), dict.fromkeys(SET, 1.0), label_loss="focal",
                        iou_loss="iou")
    total, terms = crit(_outputs(logits, spans), _batch([torch.zeros(0, 2)] * 4))
    assert all(torch.isfinite(v) for v in terms.values())
    assert terms["loss_span"] == 0 and terms["loss_iou_0"] == 0 and terms["loss_label"] > 0
    total.backward()
    assert torch.isfinite(logits.grad).all()


def _model_batch(b=3, t=8, length=6):
    g = torch.Generator().manual_seed(0)
    vm = torch.arange(t)[None] < torch.tensor([5, 3, 8])[:, None]
    tm = torch.arange(length)[None] < torch.tensor([3, 6, 2])[:, None]
    sal = torch.randint(0, 13, (b, t), generator=g).float() * vm
    return {
        "video_feats": torch.randn(b, t, 6, generator=g), "video_mask": vm,
        "text_feats": torch.randn(b, length, 5, generator=g), "text_mask": tm,
        "spans": [torch.tensor([[0.3, 0.2]]), torch.tensor([[0.2, 0.2], [0.7, 0.3]]), torch.tensor([[0.6, 0.5]])],
        "saliency": sal, "saliency_pos_idx": sal.argmax(1, keepdim=True).repeat(1, 2),
        "saliency_neg_idx": torch.zeros(b, 2, dtype=torch.long), "saliency_valid": torch.ones(b, dtype=torch.bool),
        "meta": [{"qid": i, "vid": f"v{i}"} for i in range(b)],
    }


def _tiny(name, **cfg):
    torch.manual_seed(0)
    common = dict(video_dim=6, text_dim=5, hidden_dim=16, nheads=2, ffn_dim=32, num_queries=4)
    if name == "sdst":
        return create_model(name, **common, num_levels=3, cnn_hidden=8, rdsa_query_dim=8, roi_size=4,
                            num_points=2, **cfg)
    return create_model(name, **common, enc_layers=1, dec_layers=3, **cfg)


MODELS = ["moment_detr", "qd_detr", "sdst"]


def test_every_model_reports_the_same_term_names():
    batch = _model_batch()
    shared = {"span": 10.0, "iou": 1.0, "label": 4.0, "saliency": 1.0}
    expected = {"loss_saliency"} | {f"loss_{t}{s}" for t in SET for s in ("", "_0", "_1")}
    for name in MODELS:
        model = _tiny(name, loss_weights=shared).train()
        total, terms = model.loss(model(batch), batch)
        assert set(terms) == expected, name
        per_level = sum(shared[k.split("_")[1]] * v for k, v in terms.items() if k != "loss_saliency")
        assert torch.isclose(total, per_level + terms["loss_saliency"]), name
    # with each model's own defaults: the names are all `loss_<registered term>[_<level>]`, the set
    # terms at every level
    for name in MODELS:
        model = _tiny(name).train()
        _, terms = model.loss(model(batch), batch)
        weights = model.config.loss_weights
        names = {f"loss_{t}" for t in weights} | {f"loss_{t}_{i}" for t in weights if t in PER_LEVEL for i in (0, 1)}
        assert set(terms) == names and set(weights) <= set(TERMS), name


def test_registered_terms_plug_in():
    @register_term("spread")
    def spread(c, x):
        """Mean width of the last level's spans, ``pred_spans (B, Q, 2)`` -> scalar."""
        return x.outputs["pred_spans"][..., 1].mean()

    try:
        logits, spans = _levels()
        crit = SetCriterion(HungarianMatcher(), {"span": 1.0, "spread": 2.0})
        total, terms = crit(_outputs(logits, spans), _batch())
        assert set(terms) == {"loss_span", "loss_span_0", "loss_span_1", "loss_spread"}
        assert torch.isclose(terms["loss_spread"], spans[-1][..., 1].mean())
        span = terms["loss_span"] + terms["loss_span_0"] + terms["loss_span_1"]
        assert torch.isclose(total, span + 2 * terms["loss_spread"])
        with pytest.raises(ValueError, match="already registered"):
            register_term("spread")(spread)
    finally:
        TERMS.pop("spread")
    with pytest.raises(InputError, match="spread"):
        SetCriterion(HungarianMatcher(), {"spread": 1.0})
    with pytest.raises(ValueError, match="iou_loss"):
        SetCriterion(HungarianMatcher(), {"iou": 1.0}, iou_loss="diou")
