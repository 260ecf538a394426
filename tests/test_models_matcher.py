"""Hungarian matcher against an exhaustive search over assignments, with an independent cost."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from momentkit.models.matcher import HungarianMatcher


def _cost_by_hand(logits, spans, targets, wc, ws, wg):
    """Cost written out per pair: -wc * softmax[0] + ws * L1(cxw) - wg * gIoU(start-end)."""
    e = np.exp(logits - logits.max(-1, keepdims=True))
    p = (e / e.sum(-1, keepdims=True))[:, 0]
    cost = np.zeros((len(spans), len(targets)))
    for i, (c1, w1) in enumerate(spans):
        for j, (c2, w2) in enumerate(targets):
            s1, e1, s2, e2 = c1 - w1 / 2, c1 + w1 / 2, c2 - w2 / 2, c2 + w2 / 2
            inter = max(0.0, min(e1, e2) - max(s1, s2))
            union = (e1 - s1) + (e2 - s2) - inter
            hull = max(e1, e2) - min(s1, s2)
            giou = inter / union - (hull - union) / hull
            cost[i, j] = -wc * p[i] + ws * (abs(c1 - c2) + abs(w1 - w2)) - wg * giou
    return cost


def _brute_force(cost):
    q, n = cost.shape
    return min(sum(cost[r, j] for j, r in enumerate(rows)) for rows in itertools.permutations(range(q), n))


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_on_a_padded_batch(seed):
    g = torch.Generator().manual_seed(seed)
    b, q = 4, 5
    sizes = [3, 0, 1, 5]
    logits = torch.randn(b, q, 2, generator=g, dtype=torch.float64)
    spans = torch.stack([torch.rand(b, q, generator=g), 0.05 + 0.5 * torch.rand(b, q, generator=g)], -1).double()
    targets = [torch.stack([torch.rand(n, generator=g), 0.05 + 0.5 * torch.rand(n, generator=g)], -1).double()
               for n in sizes]
    matcher = HungarianMatcher(cost_class=4, cost_span=10, cost_giou=1)
    out = matcher({"pred_logits": logits, "pred_spans": spans}, targets)
    assert len(out) == b
    for i, (rows, cols) in enumerate(out):
        assert rows.dtype == torch.int64 and len(rows) == len(cols) == min(q, sizes[i])
        assert len(set(rows.tolist())) == len(rows) and sorted(cols.tolist()) == list(range(sizes[i]))
        if sizes[i] == 0:
            continue
        cost = _cost_by_hand(logits[i].numpy(), spans[i].numpy(), targets[i].numpy(), 4, 10, 1)
        assert np.allclose(matcher.cost_matrix(logits[i], spans[i], targets[i]).numpy(), cost)
        assert cost[rows.numpy(), cols.numpy()].sum() == pytest.approx(_brute_force(cost))


def test_obvious_assignment_and_empty_batch():
    spans = torch.tensor([[[0.2, 0.1], [0.8, 0.1], [0.5, 0.5]]])
    logits = torch.zeros(1, 3, 2)
    m = HungarianMatcher()
    (rows, cols), = m({"pred_logits": logits, "pred_spans": spans}, [torch.tensor([[0.8, 0.1], [0.2, 0.1]])])
    assert dict(zip(cols.tolist(), rows.tolist())) == {0: 1, 1: 0}
    (rows, cols), = m({"pred_logits": logits, "pred_spans": spans}, [torch.zeros(0, 2)])
    assert len(rows) == len(cols) == 0


def test_focal_class_cost_prefers_confident_queries():
    m = HungarianMatcher(cost_class=1, cost_span=0, cost_giou=0, class_cost="focal")
    logits = torch.tensor([[[-3.0], [3.0]]])
    spans = torch.tensor([[[0.5, 0.2], [0.5, 0.2]]])
    (rows, _), = m({"pred_logits": logits, "pred_spans": spans}, [torch.tensor([[0.5, 0.2]])])
    assert rows.tolist() == [1]
