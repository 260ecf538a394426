"""Span arithmetic (momentkit.spans): hand-computed values, numpy/torch agreement, real windows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from momentkit.spans import (
    cxw_to_xx,
    elementwise_giou,
    iou_np,
    pairwise_giou,
    pairwise_iou,
    pairwise_iou_np,
    xx_to_cxw,
)


def test_conversions_hand_values():
    xx = cxw_to_xx(torch.tensor([[0.5, 0.2], [0.1, 0.4]]))
    assert torch.allclose(xx, torch.tensor([[0.4, 0.6], [-0.1, 0.3]]))
    assert torch.allclose(xx_to_cxw(torch.tensor([[2.0, 6.0]])), torch.tensor([[4.0, 4.0]]))


def test_pairwise_iou_hand_values():
    a = torch.tensor([[0.0, 2.0]])
    b = torch.tensor([[1.0, 3.0], [2.0, 4.0], [0.0, 2.0], [0.5, 1.0]])
    iou, union = pairwise_iou(a, b)
    # [0,2]&[1,3]: inter 1, union 3; touching [2,4]: 0; identical: 1; inside [0.5,1]: 0.5 / 2
    assert torch.allclose(iou, torch.tensor([[1 / 3, 0.0, 1.0, 0.25]]))
    assert torch.allclose(union, torch.tensor([[3.0, 4.0, 2.0, 2.0]]))
    assert np.allclose(pairwise_iou_np(a.numpy(), b.numpy()), iou.numpy())


def test_giou_hand_values():
    a = torch.tensor([[0.0, 1.0], [0.0, 2.0]])
    b = torch.tensor([[2.0, 3.0], [1.0, 3.0]])
    # disjoint [0,1],[2,3]: iou 0, hull 3, union 2 -> -1/3; overlapping [0,2],[1,3]: hull == union -> 1/3
    assert torch.allclose(elementwise_giou(a, b), torch.tensor([-1 / 3, 1 / 3]))
    assert torch.allclose(torch.diagonal(pairwise_giou(a, b)), elementwise_giou(a, b))


def test_degenerate_spans_give_zero_iou():
    assert pairwise_iou_np([[1.0, 1.0]], [[1.0, 1.0]])[0, 0] == 0.0
    assert iou_np(np.array([3.0, 3.0]), np.array([3.0, 3.0])) == 0.0


def test_giou_is_differentiable():
    a = torch.tensor([[0.2, 0.6]], requires_grad=True)
    elementwise_giou(a, torch.tensor([[0.5, 0.9]])).sum().backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_real_qvhighlights_windows(shared_data):
    # 1,550 val queries, 2,803 GT windows (jq: map(.relevant_windows|length)|add), none with end <= start,
    # and no two windows of the same query overlap (jq pair check), 530 queries with several windows.
    rows = [json.loads(line) for line in open(shared_data / "qvhighlights/highlight_val_release.jsonl")]
    assert len(rows) == 1550
    windows = [np.asarray(r["relevant_windows"], dtype=np.float64) for r in rows]
    allw = np.concatenate(windows)
    assert allw.shape == (2803, 2)
    assert np.all(iou_np(allw, allw) == 1.0)
    multi = [w for w in windows if len(w) > 1]
    assert len(multi) == 530
    for w in multi:
        iou = pairwise_iou_np(w, w)
        assert np.allclose(iou, np.eye(len(w)))
    # torch round trip on normalised spans
    dur = np.concatenate([[r["duration"]] * len(r["relevant_windows"]) for r in rows])
    xx = torch.tensor(allw / dur[:, None])
    assert torch.allclose(cxw_to_xx(xx_to_cxw(xx)), xx, atol=1e-12)
    assert torch.allclose(torch.diagonal(pairwise_iou(xx[:50], xx[:50])[0]), torch.ones(50, dtype=xx.dtype))


@pytest.mark.parametrize("n,m", [(3, 4), (1, 1)])
def test_numpy_and_torch_agree(n, m):
    rng = np.random.default_rng(0)
    a = np.sort(rng.random((n, 2)), axis=1)
    b = np.sort(rng.random((m, 2)), axis=1)
    assert np.allclose(pairwise_iou_np(a, b), pairwise_iou(torch.tensor(a), torch.tensor(b))[0].numpy())


def test_elementwise_iou_by_hand_and_against_pairwise():
    import torch

    from momentkit.spans import elementwise_iou, pairwise_iou

    a = torch.tensor([[0.0, 4.0], [2.0, 3.0], [0.0, 1.0]])
    b = torch.tensor([[2.0, 6.0], [2.0, 3.0], [5.0, 6.0]])
    torch.testing.assert_close(elementwise_iou(a, b), torch.tensor([2.0 / 6.0, 1.0, 0.0]))
    torch.testing.assert_close(elementwise_iou(a, b), pairwise_iou(a, b)[0].diagonal())
