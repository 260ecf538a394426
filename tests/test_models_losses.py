"""Loss functions against hand-computed values, their level-batched forms, and SetCriterion's bookkeeping."""

from __future__ import annotations

import math

import pytest
import torch

from momentkit.models.criterion import SetCriterion
from momentkit.models.losses import (
    info_nce_loss,
    label_ce_loss,
    label_focal_loss,
    neg_pair_saliency_loss,
    rank_contrastive_loss,
    saliency_margin_loss,
    sigmoid_focal_loss,
    span_iou_loss,
    span_l1_loss,
)
from momentkit.models.matcher import HungarianMatcher

LN2 = math.log(2)


def test_focal_loss_hand():
    logits = torch.tensor([0.0, 0.0, math.log(3)])
    targets = torch.tensor([1.0, 0.0, 1.0])
    out = sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0, reduction="none")
    # p = 0.5: ce = ln 2, (1 - p_t)^2 = 1/4; alpha_t = 0.25 (pos) / 0.75 (neg)
    # p = 0.75, target 1: ce = -ln 0.75, (0.25)^2, alpha 0.25
    expected = torch.tensor([0.25 * 0.25 * LN2, 0.75 * 0.25 * LN2, 0.25 * 0.0625 * -math.log(0.75)])
    assert torch.allclose(out, expected)
    assert torch.isclose(sigmoid_focal_loss(logits, targets), expected.mean())
    assert torch.isclose(sigmoid_focal_loss(logits[:1], targets[:1], alpha=-1, gamma=0), torch.tensor(LN2))


def test_span_losses_hand():
    pred = torch.tensor([[0.5, 0.2], [0.3, 0.2]])
    tgt = torch.tensor([[0.5, 0.4], [0.6, 0.2]])
    assert torch.isclose(span_l1_loss(pred, tgt), torch.tensor((0.2 + 0.3) / 4))
    # pair 1: [0.4,0.6] in [0.3,0.7]: IoU 0.5 = gIoU; pair 2: [0.2,0.4] vs [0.5,0.7]: IoU 0, hull 0.5, union 0.4
    assert torch.isclose(span_iou_loss(pred, tgt, "iou"), torch.tensor((0.5 + 1.0) / 2))
    assert torch.isclose(span_iou_loss(pred, tgt, "giou"), torch.tensor((0.5 + 1.2) / 2))
    empty = torch.zeros(0, 2, requires_grad=True)
    assert span_l1_loss(empty, empty) == 0 and span_iou_loss(empty, empty) == 0


def test_set_losses_reduce_only_their_own_axes():
    # (L, ...) inputs give, level by level, the value of the level alone
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 5, 2, generator=g) * 0.5 + 0.25
    tgt = torch.rand(3, 5, 2, generator=g) * 0.5 + 0.25
    logits2, logits1 = torch.randn(3, 2, 4, 2, generator=g), torch.randn(3, 2, 4, 1, generator=g)
    matched = (torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0, 1, 0, 1, 0, 1]), torch.tensor([1, 3, 0, 0, 2, 3]))
    l1, giou, iou = span_l1_loss(pred, tgt), span_iou_loss(pred, tgt, "giou"), span_iou_loss(pred, tgt, "iou")
    ce, focal = label_ce_loss(logits2, matched), label_focal_loss(logits1, matched)
    assert all(v.shape == (3,) for v in (l1, giou, iou, ce, focal))
    for level in range(3):
        own = (matched[1][2 * level:2 * level + 2], matched[2][2 * level:2 * level + 2])
        assert torch.isclose(l1[level], span_l1_loss(pred[level], tgt[level]))
        assert torch.isclose(giou[level], span_iou_loss(pred[level], tgt[level], "giou"))
        assert torch.isclose(iou[level], span_iou_loss(pred[level], tgt[level], "iou"))
        assert torch.isclose(ce[level], label_ce_loss(logits2[level], own))
        assert torch.isclose(focal[level], label_focal_loss(logits1[level], own))
    none = torch.zeros(3, 0, 2)
    assert span_l1_loss(none, none).tolist() == [0.0] * 3 and span_iou_loss(none, none).tolist() == [0.0] * 3


def test_label_focal_hand():
    logits = torch.tensor([[[0.0], [math.log(3)]]])  # p = 0.5, 0.75
    matched = (torch.tensor([0]), torch.tensor([1]))
    # query 0 negative: 0.75 * 0.25 * ln 2; query 1 positive: 0.25 * 0.0625 * -ln 0.75; over 1 match
    expected = 0.75 * 0.25 * LN2 + 0.25 * 0.0625 * -math.log(0.75)
    assert torch.isclose(label_focal_loss(logits, matched), torch.tensor(expected))


def test_saliency_margin_hand():
    scores = torch.tensor([[0.9, 0.1, 0.5], [0.0, 0.3, 0.2]])
    pos = torch.tensor([[0, 2], [1, 1]])
    neg = torch.tensor([[1, 1], [0, 2]])
    # hinges: max(0, .2 + .1 - .9)=0, max(0, .2 + .1 - .5)=0, max(0, .2 + 0 - .3)=0, max(0, .2 + .2 - .3)=.1
    assert torch.isclose(saliency_margin_loss(scores, pos, neg, 0.2), torch.tensor(0.1 / 4 * 2))
    # only sample 1 has valid pairs: mean over its 2 hinges
    valid = torch.tensor([False, True])
    assert torch.isclose(saliency_margin_loss(scores, pos, neg, 0.2, valid), torch.tensor(0.1 / 2 * 2))
    assert saliency_margin_loss(scores, pos, neg, 0.2, torch.tensor([False, False])) == 0


def test_rank_contrastive_hand():
    scores = torch.tensor([[1.0, 0.0, 5.0]])
    labels = torch.tensor([[2.0, 0.0, 7.0]])
    mask = torch.tensor([[1, 1, 0]])  # clip 2 is padding: ignored whatever its score and label
    # thresholds 1 and 2 (levels 3): positive = clip 0 both times; log p = 2 - log(e^2 + 1)
    expected = 2 * math.log(1 + math.exp(-2)) / 3
    assert torch.isclose(rank_contrastive_loss(scores, labels, mask, levels=3, tau=0.5), torch.tensor(expected))
    # negative-pair clips join the softmax as label-0 candidates
    neg = torch.tensor([[1.0, -10.0, 9.0]])  # logits / tau: 2, -20 (third is padding)
    with_neg = (math.log(math.exp(2) + 1 + math.exp(2) + math.exp(-20)) - 2) * 2 / 3
    got = rank_contrastive_loss(scores, labels, mask, levels=3, tau=0.5, neg_scores=neg)
    assert math.isclose(float(got), with_neg, rel_tol=1e-5)
    # a sample without positives contributes 0 but still counts in the mean over samples
    two = rank_contrastive_loss(torch.cat([scores, scores]), torch.cat([labels, torch.zeros(1, 3)]),
                                torch.cat([mask, mask]), levels=3, tau=0.5)
    assert torch.isclose(two, torch.tensor(expected / 2))


def test_neg_pair_hand():
    s = torch.tensor([[0.0, math.log(3), 100.0]])
    mask = torch.tensor([[1, 1, 0]])
    # -log(1 - sigmoid(0)) = ln 2, -log(1 - sigmoid(ln 3)) = ln 4
    assert torch.isclose(neg_pair_saliency_loss(s, mask), torch.tensor(math.log(8)))


def test_info_nce_hand():
    sim = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    # row 0: -log(e^10 / (e^10 + 1)); row 1: ln 2
    r0 = math.log(1 + math.exp(-10))
    assert torch.isclose(info_nce_loss(sim, torch.tensor([0, 1]), temperature=0.1), torch.tensor((r0 + LN2) / 2))
    pos = torch.tensor([[True, False], [True, True]])
    # row 1 with two positives: mean(-log 1/2, -log 1/2)
    assert torch.isclose(info_nce_loss(sim, pos, temperature=0.1), torch.tensor((r0 + LN2) / 2))
    valid = torch.tensor([[True, False], [True, True]])
    assert torch.isclose(info_nce_loss(sim, torch.tensor([0, 1]), 0.1, valid=valid), torch.tensor(LN2 / 2))


def test_label_ce_hand():
    logits = torch.zeros(1, 2, 2)  # every query: p = (0.5, 0.5)
    matched = (torch.tensor([0]), torch.tensor([1]))
    # query 1 foreground: ln2 * 1; query 0 background: ln2 * eos 0.1; mean over the 2 queries
    assert torch.isclose(label_ce_loss(logits, matched, 0.1), torch.tensor(LN2 * 1.1 / 2))


def test_set_criterion_weights_and_aux_terms():
    torch.manual_seed(0)
    crit = SetCriterion(HungarianMatcher(), {"span": 10, "iou": 1, "label": 4, "saliency": 1})
    b, q, t = 2, 4, 6
    out = {"pred_logits": torch.randn(b, q, 2), "pred_spans": torch.rand(b, q, 2) * 0.5 + 0.25,
           "saliency_scores": torch.randn(b, t)}
    out["aux_outputs"] = [{"pred_logits": torch.randn(b, q, 2), "pred_spans": torch.rand(b, q, 2) * 0.5 + 0.25}]
    batch = {"spans": [torch.tensor([[0.5, 0.2]]), torch.tensor([[0.3, 0.2], [0.7, 0.1]])],
             "video_mask": torch.ones(b, t), "saliency_pos_idx": torch.tensor([[0, 1], [2, 3]]),
             "saliency_neg_idx": torch.tensor([[4, 5], [0, 1]])}
    total, terms = crit(out, batch)
    assert set(terms) == {"loss_span", "loss_iou", "loss_label", "loss_saliency",
                          "loss_span_0", "loss_iou_0", "loss_label_0"}
    w = {"span": 10, "iou": 1, "label": 4, "saliency": 1}
    manual = sum(w[k.split("_")[1]] * v for k, v in terms.items())
    assert torch.isclose(total, manual)
    assert torch.isclose(terms["loss_saliency"], saliency_margin_loss(
        out["saliency_scores"], batch["saliency_pos_idx"], batch["saliency_neg_idx"]))


def test_set_criterion_rejects_unknown_terms():
    from momentkit.errors import InputError

    with pytest.raises(InputError, match="loss_weights"):
        SetCriterion(HungarianMatcher(), {"spam": 1})
