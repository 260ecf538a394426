"""SDST: shapes, levels and the shared recurrence, the gate, losses on hand-made cases, training,
padding invariance, ablation switches, post-processing, configs, and real annotations end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import DATA, REPO, sync_op_counter
from momentkit.errors import InputError
from momentkit.models import count_parameters, create_model, list_models
from momentkit.models.rdsa import DeformableAttentionBlock
from momentkit.models.sdst import SDST, make_config
from momentkit.models.losses import pack_spans
from momentkit.models.matcher import HungarianMatcher
from momentkit.models.sdst_losses import (
    actionness_loss,
    clips_in_spans,
    layer_alignment_loss,
    max_iou_targets,
    sampled_nce_loss,
    video_alignment_loss,
)
from momentkit.models.transformer import AttentionBlock

TINY = dict(video_dim=6, text_dim=5, hidden_dim=16, nheads=2, ffn_dim=32, num_queries=4, num_levels=3,
            cnn_hidden=8, rdsa_query_dim=8, roi_size=4, num_points=2)
NO_DROPOUT = dict(drop_path=0.0, input_dropout=0.0)
CONFIGS = ["qvhighlights", "charades_sta", "tacos", "synthetic_layered"]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**cfg) -> SDST:
    torch.manual_seed(0)
    return SDST(make_config(**{**TINY, **cfg}))


def make_batch(k=4, valid_t=(5, 3, 8), valid_l=(3, 6, 2), t=8, length=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = len(valid_t)
    vm = torch.arange(t)[None] < torch.tensor(valid_t)[:, None]
    tm = torch.arange(length)[None] < torch.tensor(valid_l)[:, None]
    sal = torch.randint(0, 13, (b, t), generator=g).float() * vm
    return {
        "video_feats": torch.randn(b, k, t, 6, generator=g) * vm[:, None, :, None],
        "video_mask": vm,
        "text_feats": torch.randn(b, k, length, 5, generator=g) * tm[:, None, :, None],
        "text_mask": tm,
        "spans": [torch.tensor([[0.3, 0.2]]), torch.tensor([[0.2, 0.2], [0.7, 0.3]]), torch.tensor([[0.6, 0.5]])][:b],
        "saliency": sal,
        "saliency_pos_idx": sal.argmax(1, keepdim=True).repeat(1, 2),
        "saliency_neg_idx": torch.zeros(b, 2, dtype=torch.long),
        "saliency_valid": torch.ones(b, dtype=torch.bool),
        "meta": [{"qid": i, "vid": f"v{i}", "duration": 2.0 * n, "clip_len": 2.0, "num_clips": n}
                 for i, n in enumerate(valid_t)],
    }


# ----------------------------------------------------------------------------- shapes and levels
def test_output_shapes_and_levels():
    model = tiny().eval()
    out = model(make_batch())
    assert out["pred_logits"].shape == (3, 4, 1)
    assert out["pred_spans"].shape == (3, 4, 2)
    assert out["saliency_scores"].shape == (3, 8)
    assert out["pred_actionness"].shape == out["pred_confidence"].shape == (3, 4)
    assert len(out["aux_outputs"]) == 2  # levels 1 and 2 of 3
    assert all(a["pred_spans"].shape == (3, 4, 2) for a in out["aux_outputs"])
    assert out["level_video"].shape == (3, 3, 8, 16) and out["level_text"].shape == (3, 3, 16)
    assert ((out["pred_spans"] > 0) & (out["pred_spans"] < 1)).all()
    assert (out["saliency_scores"].abs() <= 1 + 1e-6).all()  # cosine
    p = out["pred_logits"][..., 0].sigmoid()
    assert torch.allclose(out["pred_confidence"], (p * out["pred_actionness"]).sqrt())


def test_uses_the_last_k_levels():
    model = tiny().eval()
    batch = make_batch()

    def outputs(b):
        out = model(b)
        return torch.cat([out["pred_logits"].flatten(), out["saliency_scores"].flatten()])

    ref = outputs(batch)
    first = dict(batch, video_feats=batch["video_feats"].clone(), text_feats=batch["text_feats"].clone())
    first["video_feats"][:, 0] += torch.randn(3, 8, 6)  # level 0 of 4 is not among the last 3
    first["text_feats"][:, 0] += torch.randn(3, 6, 5)
    assert torch.equal(outputs(first), ref)
    last = dict(batch, video_feats=batch["video_feats"].clone())
    last["video_feats"][:, 3] += torch.randn(3, 8, 6)  # (a constant shift would vanish in the LayerNorm)
    assert not torch.allclose(outputs(last), ref)


def test_single_layer_input_is_reused_at_every_level():
    model = tiny().eval()
    batch = make_batch(k=1)
    single = dict(batch, video_feats=batch["video_feats"][:, 0], text_feats=batch["text_feats"][:, 0])
    repeated = dict(batch, video_feats=batch["video_feats"].repeat(1, 3, 1, 1),
                    text_feats=batch["text_feats"].repeat(1, 3, 1, 1))
    a, b = model(single), model(repeated)
    assert torch.equal(a["pred_spans"], b["pred_spans"]) and torch.equal(a["saliency_scores"], b["saliency_scores"])


def test_bad_inputs_raise_input_error():
    model = tiny()
    with pytest.raises(InputError, match="levels"):
        model(make_batch(k=2))  # 2 levels for num_levels = 3
    bad = make_batch()
    bad["video_feats"] = bad["video_feats"][..., :5]
    with pytest.raises(InputError, match="video_feats"):
        model(bad)
    bad = make_batch()
    bad["text_mask"] = bad["text_mask"][:, :4]
    with pytest.raises(InputError, match="text_mask"):
        model(bad)
    bad = make_batch()
    bad["video_mask"] = bad["video_mask"].clone()
    bad["video_mask"][1] = False
    with pytest.raises(InputError, match="at least one valid"):
        model(bad)
    with pytest.raises(InputError, match="video_mask"):
        model({k: v for k, v in make_batch().items() if k != "video_mask"})


@pytest.mark.parametrize("cfg, field", [
    (dict(attention="cross"), "attention"),
    (dict(sample_points="l-c"), "sample_points"),
    (dict(sparse_order=["ffn", "ffn"]), "sparse_order"),
    (dict(sparse_order=["text_ca", "decoder"]), "sparse_order"),
    (dict(loss_weights={"giou": 1.0}), "loss_weights"),
    (dict(num_levels=0), "num_levels"),
    (dict(query_dropout=1.0), "query_dropout"),
    (dict(cnn_kernel=4), "cnn_kernel"),
    (dict(no_such_option=1), "no_such_option"),
])
def test_bad_config_raises_input_error(cfg, field):
    with pytest.raises(InputError) as e:
        make_config(**{**TINY, **cfg})
    assert e.value.field == field


# ----------------------------------------------------------------------------- recurrence and gate
def test_shared_weights_do_not_grow_with_k_unshared_do():
    shared = {k: tiny(num_levels=k) for k in (2, 4)}
    unshared = {k: tiny(num_levels=k, shared=False) for k in (2, 4)}
    assert len(shared[4].layers) == 1 and shared[4].layer(0) is shared[4].layer(3)
    assert len(unshared[4].layers) == 4 and unshared[4].layer(0) is not unshared[4].layer(3)
    per_layer = count_parameters(shared[2].layers[0])
    # shared: only the K gate scalars depend on K
    assert count_parameters(shared[4]) - count_parameters(shared[2]) == 2
    # unshared: every extra level adds a full SDST layer (and its gate)
    assert count_parameters(unshared[4]) - count_parameters(unshared[2]) == 2 * per_layer + 2
    assert count_parameters(unshared[2]) - count_parameters(shared[2]) == per_layer
    # in training, every level's use of the shared layer contributes gradient to it
    model = tiny(**NO_DROPOUT)
    batch = make_batch()
    grads = []
    for k in (1, 3):
        model.zero_grad()
        model.config.num_levels = k
        model.loss(model(batch), batch)[0].backward()
        grads.append(model.layers[0].dense.ffn.linear1.weight.grad.clone())
    model.config.num_levels = 3
    assert not torch.allclose(grads[0], grads[1])


def test_gate_starts_at_zero_and_mixes_the_levels():
    model = tiny(num_levels=1).eval()
    assert torch.equal(model.gate.detach(), torch.zeros(1))
    assert torch.allclose(model.betas(), torch.full((1,), 0.5))
    batch = make_batch()
    other = dict(batch, video_feats=batch["video_feats"] + torch.randn(3, 4, 8, 6))
    assert not torch.allclose(model(batch)["saliency_scores"], model(other)["saliency_scores"])
    with torch.no_grad():
        model.gate.fill_(50.0)  # beta = 1: D := 1 * D^0 + 0 * V, the video never reaches D
    assert torch.allclose(model(batch)["saliency_scores"], model(other)["saliency_scores"], atol=1e-5)


def test_queries_and_heads_initialisation():
    model = tiny(**NO_DROPOUT).eval()
    out = model(make_batch())
    refs = model.query_refs.sigmoid()
    assert ((refs[:, 1] >= 0.05 - 1e-6) & (refs[:, 1] <= 0.5 + 1e-6)).all()
    # the regression head starts at zero: level 1 predicts its references
    assert torch.allclose(out["aux_outputs"][0]["pred_spans"], refs.expand(3, -1, -1), atol=1e-6)
    assert torch.allclose(out["pred_logits"].sigmoid(), torch.full((3, 4, 1), 0.01), atol=0.02)


# ----------------------------------------------------------------------------- losses, by hand
def test_sampled_nce_row_by_hand():
    sim = torch.tensor([[0.5, 0.8, 0.1, 0.9]])  # clip 3 is padding
    sal = torch.tensor([[1.0, 2.0, 3.0, 0.0]])
    mask = torch.tensor([[True, True, True, False]])
    loss = sampled_nce_loss(sim, sal, torch.tensor([[1]]), mask, temperature=0.1)
    # clip 2 is more salient than the positive (excluded), clip 3 is padding: softmax over clips 0, 1
    assert math.isclose(float(loss), math.log(1 + math.exp(-3.0)), rel_tol=1e-5)


def test_sampled_nce_row_and_column_by_hand():
    sim = torch.tensor([[0.2, 0.6], [0.4, 0.1]])
    sal = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    pos = torch.tensor([[1], [0]])
    mask = torch.ones(2, 2, dtype=torch.bool)

    def lse(*x):
        return math.log(sum(math.exp(v) for v in x))

    row = [lse(0.2, 0.6) - 0.6, lse(0.4, 0.1) - 0.4]
    col = [lse(0.6, 0.1) - 0.6, lse(0.2, 0.4) - 0.4]  # same clip index in both samples
    loss = sampled_nce_loss(sim, sal, pos, mask, temperature=1.0)
    assert math.isclose(float(loss), sum(row) / 2 + sum(col) / 2, rel_tol=1e-5)
    only_row = sampled_nce_loss(sim, sal, pos, mask, temperature=1.0, directions=("row",))
    assert math.isclose(float(only_row), sum(row) / 2, rel_tol=1e-5)
    first = sampled_nce_loss(sim, sal, pos, mask, temperature=1.0, valid=torch.tensor([True, False]))
    assert math.isclose(float(first), row[0] + col[0], rel_tol=1e-5)
    none = sampled_nce_loss(sim, sal, pos, mask, valid=torch.tensor([False, False]))
    assert float(none) == 0.0


def test_clips_in_spans_by_hand():
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    spans = [torch.tensor([[0.375, 0.25]]),  # [0.25, 0.5] of 4 clips: exactly clip 1
             torch.tensor([[0.5, 0.2]]),  # [0.4, 0.6] of 2 clips: overlaps both
             torch.zeros(0, 2)]
    expected = [[False, True, False, False], [True, True, False, False], [False, False, False, False]]
    assert clips_in_spans(spans, mask).tolist() == expected


def test_alignment_losses_by_hand():
    # two unit clip vectors and two queries; one clip per video, both positive
    video = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # (K=1, B=2, T=1, F=2)
    text = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])  # (K=1, B=2, F)
    pos, mask = torch.ones(2, 1, dtype=torch.bool), torch.ones(2, 1, dtype=torch.bool)
    # query 0: cos 1 (own clip) vs 0 (other video); query 1: 1/sqrt2 vs 1/sqrt2
    expected = (math.log(1 + math.exp(-1)) + math.log(2)) / 2
    assert math.isclose(float(video_alignment_loss(video, text, pos, mask, temperature=1.0)), expected, rel_tol=1e-5)
    # another query of the same video is no negative: nothing left to contrast
    meta = [{"vid": "a"}, {"vid": "a"}]
    assert float(video_alignment_loss(video, text, pos, mask, 1.0, meta)) == 0.0
    # layer-wise: the same numbers with the two levels of one sample in place of two videos
    video_l = video.permute(1, 0, 2, 3)  # (K=2, B=1, T=1, F)
    text_l = text.permute(1, 0, 2)
    got = layer_alignment_loss(video_l, text_l, torch.ones(1, 1, dtype=torch.bool), temperature=1.0)
    assert math.isclose(float(got), expected, rel_tol=1e-5)
    assert float(layer_alignment_loss(video, text, pos)) == 0.0  # a single level has no negatives


def test_alignment_rows_without_keys_stay_finite():
    # the by-hand case plus a padded clip that no video has: the result is the same and no gradient
    # turns NaN (the left-out rows have no valid key at all)
    video = torch.tensor([[[[1.0, 0.0], [5.0, 5.0]], [[0.0, 1.0], [-5.0, 2.0]]]], requires_grad=True)  # (1, 2, 2, 2)
    text = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]], requires_grad=True)
    pos = torch.tensor([[True, False], [True, False]])
    mask = torch.tensor([[True, False], [True, False]])
    expected = (math.log(1 + math.exp(-1)) + math.log(2)) / 2
    loss = video_alignment_loss(video, text, pos, mask, temperature=1.0)
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)
    loss.backward()
    assert torch.isfinite(video.grad).all() and torch.isfinite(text.grad).all()
    assert video.grad[:, :, 1].abs().sum() == 0  # the padded clip takes no part
    none = video_alignment_loss(video.detach(), text.detach(), torch.zeros(2, 2, dtype=torch.bool), mask)
    assert float(none) == 0.0


def test_pack_spans():
    packed = pack_spans([torch.tensor([[0.5, 0.2]]), torch.zeros(0, 2), torch.tensor([[0.1, 0.1], [0.9, 0.1]])])
    assert packed.sizes == (1, 0, 2) and packed.owner.tolist() == [0, 2, 2]
    assert packed.spans.dtype == torch.float32 and packed.spans[:, 0].tolist() == pytest.approx([0.5, 0.1, 0.9])
    assert pack_spans(packed) is packed


def _random_levels(levels=3, b=4, m=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(levels, b, m, 1, generator=g)
    spans = torch.stack([torch.rand(levels, b, m, generator=g) * 0.8 + 0.1,
                         torch.rand(levels, b, m, generator=g) * 0.4 + 0.05], -1)
    targets = [torch.tensor([[0.3, 0.2], [0.7, 0.1]]), torch.zeros(0, 2), torch.tensor([[0.5, 0.5], [0.2, 0.1],
                                                                                        [0.8, 0.3]]),
               torch.tensor([[0.45, 0.3]])][:b]
    return logits, spans, targets


def test_match_levels_is_each_levels_own_matching():
    matcher = HungarianMatcher(1.0, 1.0, 1.0, "focal")
    logits, spans, targets = _random_levels()
    match = matcher.match_levels(logits, spans, torch.cat(targets), [len(t) for t in targets])
    starts = [0, 2, 2, 5]
    expected = []
    for level in range(3):
        for i, (rows, cols) in enumerate(matcher({"pred_logits": logits[level], "pred_spans": spans[level]}, targets)):
            expected += [[level, i, int(r), int(c) + starts[i]] for r, c in zip(rows, cols)]
    assert match.t().tolist() == expected
    assert match.shape == (4, 3 * 6)  # every level matches min(Q, n_i) = 2 + 0 + 3 + 1 windows


@pytest.mark.parametrize("pre_norm", [False, True])
def test_fused_attention_block_equals_multihead_attention(pre_norm):
    # SDST's blocks use AttentionBlock(fused=True); nn.MultiheadAttention on the same parameters is the
    # reference, for self- and cross-attention, with and without positions and padding
    torch.manual_seed(0)
    block = AttentionBlock(16, 4, dropout=0.0, attn_dropout=0.0, pre_norm=pre_norm)
    x, pos, mem, mem_pos = torch.randn(3, 5, 16), torch.randn(3, 5, 16), torch.randn(3, 7, 16), torch.randn(3, 7, 16)
    pad = torch.arange(5)[None] >= torch.tensor([5, 3, 1])[:, None]
    mem_pad = torch.arange(7)[None] >= torch.tensor([2, 7, 4])[:, None]
    cases = [dict(key_pad_mask=pad, pos=pos), dict(),
             dict(memory=mem, key_pad_mask=mem_pad, pos=pos, memory_pos=mem_pos), dict(memory=mem)]
    for kw in cases:
        outs, grads = [], []
        for fused in (False, True):
            block.fused = fused
            out = block(x, **kw)
            outs.append(out)
            params = [block.attn.in_proj_weight, block.attn.out_proj.weight]
            grads.append(torch.autograd.grad(out.square().sum(), params))
        assert torch.allclose(outs[0], outs[1], atol=1e-5), kw.keys()
        assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(*grads)), kw.keys()
    assert all(isinstance(m, AttentionBlock) and m.fused for m in tiny().modules() if isinstance(m, AttentionBlock))


def test_training_step_never_waits_for_the_device():
    """No boolean-mask indexing, nonzero or .item() in forward, loss and backward (each would make a
    GPU step wait for the device), and one cost matrix for all levels' matching."""
    model = tiny()
    calls = []
    matcher = model.criterion.matcher
    cost = matcher.cost_matrix
    matcher.cost_matrix = lambda *a: calls.append(1) or cost(*a)
    batch = make_batch()
    with sync_op_counter() as syncs:
        loss, _ = model.loss(model(batch), batch)
        loss.backward()
    assert syncs.names == [] and calls == [1]


def test_actionness_targets_and_loss_by_hand():
    pred = torch.tensor([[[0.5, 0.4], [0.9, 0.2]], [[0.5, 0.4], [0.9, 0.2]]])  # [0.3, 0.7], [0.8, 1.0]
    targets = [torch.tensor([[0.4, 0.4], [0.7, 0.2]]), torch.zeros(0, 2)]  # [0.2, 0.6], [0.6, 0.8]
    # pred [0.3, 0.7]: IoU 0.3 / 0.5 = 0.6 with the first target, 0.1 / 0.5 with the second
    expected = torch.tensor([[0.6, 0.0], [0.0, 0.0]])
    assert torch.allclose(max_iou_targets(pred, targets), expected, atol=1e-6)
    act = torch.tensor([[0.5, 0.1], [0.2, 0.0]])
    assert math.isclose(float(actionness_loss(act, pred, targets)), 0.1, rel_tol=1e-5)


def test_loss_terms_and_weights():
    model = tiny(**NO_DROPOUT)
    batch = make_batch()
    total, terms = model.loss(model(batch), batch)
    for name in ("span", "iou", "label", "saliency", "video_align", "layer_align", "actionness"):
        assert f"loss_{name}" in terms, name
    assert {"loss_span_0", "loss_iou_1", "loss_label_1"} <= set(terms)  # every level is matched
    assert all(torch.isfinite(v) for v in terms.values())
    w = model.config.loss_weights
    expected = sum(w[k.split("_")[1]] * v for k, v in terms.items() if k.count("_") == 2 and k[-1].isdigit())
    expected += sum(w[k[len("loss_"):]] * v for k, v in terms.items() if not k[-1].isdigit())
    assert torch.isclose(total, expected, rtol=1e-5)
    reduced = tiny(**NO_DROPOUT, loss_weights={"span": 1.0, "label": 2.0})
    _, terms = reduced.loss(reduced(batch), batch)
    assert {k.split("_")[1] for k in terms} == {"span", "label"}


def test_training_steps_reduce_the_loss():
    model = tiny(**NO_DROPOUT)
    batch = make_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        loss, _ = model.loss(model(batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_padding_invariance():
    model = tiny().eval()
    batch = make_batch()
    g = torch.Generator().manual_seed(1)
    padded = dict(batch)
    padded["video_feats"] = torch.cat([batch["video_feats"], 50 * torch.randn(3, 4, 3, 6, generator=g)], 2)
    padded["text_feats"] = torch.cat([batch["text_feats"], 50 * torch.randn(3, 4, 3, 5, generator=g)], 2)
    padded["video_feats"][0, :, 5:8] = 7.0  # also change the existing padding of sample 0
    padded["video_mask"] = torch.cat([batch["video_mask"], torch.zeros(3, 3, dtype=torch.bool)], 1)
    padded["text_mask"] = torch.cat([batch["text_mask"], torch.zeros(3, 3, dtype=torch.bool)], 1)
    padded["saliency"] = torch.cat([batch["saliency"], torch.zeros(3, 3)], 1)
    a, b = model(batch), model(padded)
    for key in ("pred_logits", "pred_spans", "pred_actionness"):
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    mask = batch["video_mask"]
    assert torch.allclose(a["saliency_scores"][mask], b["saliency_scores"][:, :8][mask], atol=1e-5)
    la, lb = model.loss(a, batch)[0], model.loss(b, padded)[0]
    assert torch.isclose(la, lb, atol=1e-4)


# ----------------------------------------------------------------------------- inference restructurings
def _close(a: dict, b: dict, keys=("pred_logits", "pred_spans", "saliency_scores", "pred_actionness",
                                   "pred_confidence", "level_video", "level_text")):
    for key in keys:
        assert a[key].shape == b[key].shape, key
        assert torch.allclose(a[key], b[key], atol=1e-5), key


@pytest.mark.parametrize("k", [1, 4])
def test_row_index_equals_the_gathered_batch(k):
    # 2 videos and 3 queries (both padded) paired as 5 rows by video_index / text_index: the same outputs,
    # loss and prediction rows as the batch of the 5 rows' own features
    model = tiny().eval()
    distinct = make_batch(k=k)
    videos = {key: distinct[key][:2] for key in ("video_feats", "video_mask")}
    vi, ti = torch.tensor([1, 0, 1, 0, 1]), torch.tensor([0, 2, 2, 1, 1])
    rows = {"video_feats": videos["video_feats"][vi], "video_mask": videos["video_mask"][vi],
            "text_feats": distinct["text_feats"][ti], "text_mask": distinct["text_mask"][ti],
            "spans": [distinct["spans"][i] for i in ti.tolist()], "saliency": distinct["saliency"][vi],
            "saliency_pos_idx": distinct["saliency_pos_idx"][vi], "saliency_valid": torch.ones(5, dtype=torch.bool),
            "meta": [{"qid": i, "vid": f"v{v}", "duration": 16.0, "clip_len": 2.0, "num_clips": 8}
                     for i, v in enumerate(vi.tolist())]}
    if k == 1:
        for b in (videos, distinct, rows):
            for key in ("video_feats", "text_feats"):
                if key in b:
                    b[key] = b[key][:, 0]
    indexed = {**rows, **videos, "text_feats": distinct["text_feats"], "text_mask": distinct["text_mask"],
               "video_index": vi, "text_index": ti}
    a, b = model(rows), model(indexed)
    _close(a, b)
    assert torch.isclose(model.loss(a, rows)[0], model.loss(b, indexed)[0], atol=1e-5)
    ra, rb = model.postprocess(a, rows, nms=None), model.postprocess(b, indexed, nms=None)
    assert [len(r["pred_saliency_scores"]) for r in rb] == [3, 5, 3, 5, 3]  # the rows' own clips
    for x, y in zip(ra, rb):
        np.testing.assert_allclose(x["pred_relevant_windows"], y["pred_relevant_windows"], atol=2e-4)
        np.testing.assert_allclose(x["pred_saliency_scores"], y["pred_saliency_scores"], atol=1e-5)
    for bad, field in ((dict(text_index=None), "text_index"), (dict(video_index=vi[:4]), "text_index"),
                       (dict(text_index=ti.int()), "text_index")):
        with pytest.raises(InputError, match=field):
            model({**indexed, **bad})
    with pytest.raises(InputError, match="video_index"):
        model({**rows, "video_feats": videos["video_feats"], "video_mask": videos["video_mask"]})


def test_single_level_input_is_projected_once():
    # one level re-used at every level: projecting it once (outside training with input dropout)
    # gives what projecting K copies gives, for the outputs, the loss and the gradients
    model = tiny(**NO_DROPOUT)
    batch = make_batch(k=1)
    single = {**batch, "video_feats": batch["video_feats"][:, 0], "text_feats": batch["text_feats"][:, 0]}
    copies = {**batch, "video_feats": batch["video_feats"].repeat(1, 3, 1, 1),
              "text_feats": batch["text_feats"].repeat(1, 3, 1, 1)}
    calls = []
    hook = model.layers[0].video_proj.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape)))
    for mode in (False, True):
        model.train(mode)
        grads, outs = [], []
        for b in (single, copies):
            model.zero_grad()
            torch.manual_seed(0)
            out = model(b)
            model.loss(out, b)[0].backward()
            outs.append(out)
            grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        _close(*outs)
        assert grads[0].keys() == grads[1].keys()
        for n in grads[0]:
            assert torch.allclose(grads[0][n], grads[1][n], atol=1e-5, rtol=1e-4), n
    hook.remove()
    assert [c[1] for c in calls] == [1, 3, 1, 3]  # once for the single level, K times for K levels
    model.config.input_dropout = 0.5  # training draws a dropout mask per level
    model.train()(single)
    assert model._project(torch.zeros(2, 1, 3, 6), "video").shape == (2, 3, 3, 16)


def test_no_padding_runs_the_attention_without_a_mask(monkeypatch):
    # nothing padded: no attention mask at all; the outputs are those of the same batch with one more,
    # padded, clip and token (which takes the masked attention)
    import torch.nn.functional as F

    model = tiny().eval()
    full = make_batch(k=4, valid_t=(8, 8, 8), valid_l=(6, 6, 6))
    padded = {**full,
              "video_feats": torch.cat([full["video_feats"], torch.randn(3, 4, 1, 6)], 2),
              "video_mask": torch.cat([full["video_mask"], torch.zeros(3, 1, dtype=torch.bool)], 1),
              "text_feats": torch.cat([full["text_feats"], torch.randn(3, 4, 1, 5)], 2),
              "text_mask": torch.cat([full["text_mask"], torch.zeros(3, 1, dtype=torch.bool)], 1)}
    masks = []
    sdpa = F.scaled_dot_product_attention

    def spy(*args, attn_mask=None, **kwargs):
        masks.append(attn_mask is None)
        return sdpa(*args, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    a = model(full)
    assert masks and all(masks)
    masks.clear()
    b = model(padded)
    assert masks[:2] == [False, False]  # the dense stream's text CA and self-attention, masked
    _close(a, b, ("pred_logits", "pred_spans", "pred_actionness"))
    assert torch.allclose(a["saliency_scores"], b["saliency_scores"][:, :8], atol=1e-5)


# ----------------------------------------------------------------------------- switches
@pytest.mark.parametrize("cfg", [
    dict(attention="rdsa"), dict(attention="deformable"), dict(attention="ca"),
    dict(sample_points="c"), dict(sample_points="l-r"), dict(context_cnn=False),
    dict(sparse_order=["video_attn", "self_attn", "text_ca", "ffn"]), dict(sparse_order=["text_ca", "ffn"]),
    dict(decoder_self_attn=False), dict(shared=False), dict(num_levels=1), dict(text_cls=True),
    dict(pre_norm=True), dict(cls_layers=2),
])
def test_switches_train(cfg):
    model = tiny(**cfg)
    batch = make_batch()
    total, terms = model.loss(model(batch), batch)
    total.backward()
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in terms.values())
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_switches_change_the_structure():
    blocks = tiny().layers[0].sparse.blocks
    assert list(blocks) == ["text_ca", "self_attn", "video_attn", "ffn"]
    assert isinstance(blocks["video_attn"], DeformableAttentionBlock) and blocks["video_attn"].attn.cnn is not None
    assert isinstance(tiny(attention="ca").layers[0].sparse.blocks["video_attn"], AttentionBlock)
    assert tiny(context_cnn=False).layers[0].sparse.blocks["video_attn"].attn.cnn is None
    no_sa = tiny(decoder_self_attn=False)
    assert "self_attn" not in no_sa.layers[0].sparse.blocks
    d = TINY["hidden_dim"]
    assert count_parameters(tiny()) - count_parameters(no_sa) == 4 * d * d + 4 * d + 2 * d  # MHA + LayerNorm
    order = tiny(sparse_order=["self_attn", "video_attn", "text_ca", "ffn"]).layers[0].sparse.order
    assert order == ("self_attn", "video_attn", "text_ca", "ffn")


def test_text_cls_is_kept_out_of_cross_attention():
    model = tiny(text_cls=True)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    # True = ignored; a sample whose only token is CLS keeps it
    assert model._text_ca_pad(mask).tolist() == [[True, False, False, True], [False, True, True, True]]
    assert tiny()._text_ca_pad(mask).tolist() == (~mask).tolist()


def test_query_dropout_only_in_training():
    batch = make_batch()
    plain, dropped = tiny(**NO_DROPOUT), tiny(**NO_DROPOUT, query_dropout=0.5)
    assert torch.equal(plain.eval()(batch)["pred_spans"], dropped.eval()(batch)["pred_spans"])
    torch.manual_seed(3)
    a = dropped.train()(batch)["pred_spans"]
    torch.manual_seed(3)
    b = plain.train()(batch)["pred_spans"]
    assert not torch.allclose(a, b)


# ----------------------------------------------------------------------------- predictions
def test_postprocess_ranks_by_confidence_with_soft_nms():
    model = tiny().eval()
    batch = make_batch()
    out = model(batch)
    rows = model.postprocess(out, batch, nms=None)
    conf = (out["pred_logits"][..., 0].sigmoid() * out["pred_actionness"]).sqrt()
    for i, row in enumerate(rows):
        w = np.array(row["pred_relevant_windows"])
        dur = batch["meta"][i]["duration"]
        assert len(w) == 4 and (w[:, 0] >= 0).all() and (w[:, 1] <= dur).all() and (w[:, 0] <= w[:, 1]).all()
        assert np.allclose(w[:, 2], np.sort(conf[i].detach().numpy())[::-1], atol=1e-4)
        assert len(row["pred_saliency_scores"]) == int(batch["video_mask"][i].sum())
    soft = model.postprocess(out, batch, max_windows=3)  # soft-NMS by default
    for row, hard in zip(soft, rows):
        s = np.array(row["pred_relevant_windows"])[:, 2]
        assert len(s) <= 3 and (np.diff(s) <= 1e-9).all()
        assert s[0] == pytest.approx(hard["pred_relevant_windows"][0][2], abs=1e-4)
        assert (s <= np.array(hard["pred_relevant_windows"])[: len(s), 2] + 1e-6).all()


# ----------------------------------------------------------------------------- registry and configs
def test_registered():
    assert "sdst" in list_models()
    assert isinstance(create_model("sdst", **TINY), SDST)


@pytest.mark.parametrize("name", CONFIGS)
def test_configs_load_and_build(name):
    from momentkit.training.config import load_config

    cfg = load_config(REPO / "configs" / "sdst" / f"{name}.yaml")
    assert cfg.model["name"] == "sdst" and cfg.data.use_tef is False and cfg.eval.nms == "gaussian"
    opts = {k: v for k, v in cfg.model.items() if k != "name"}
    model = SDST(make_config(**opts))
    assert model.config.num_levels == 4 and model.config.attention == "rdsa"
    if name != "synthetic_layered":
        assert (model.config.video_dim, model.config.text_dim) == (768, 1024)


# ----------------------------------------------------------------------------- real annotations
def test_real_qvhighlights_rows_end_to_end(tmp_path):
    """Real QVHighlights val queries with random layered features: dataset -> batch -> SDST -> rows ->
    the official metrics."""
    from momentkit.data.annotations import read_annotations
    from momentkit.data.datasets import GroundingDataset, collate_grounding
    from momentkit.data.features import open_store
    from momentkit.io import save_npz
    from momentkit.metrics import evaluate_grounding

    path = DATA / "qvhighlights" / "highlight_val_release.jsonl"
    samples = read_annotations(path)[:4]
    rng = np.random.default_rng(0)
    for s in samples:
        n = int(round(s.duration / 2))
        save_npz(tmp_path / "video" / f"{s.vid}.npz", features=rng.standard_normal((4, n, 6)).astype(np.float32))
        save_npz(tmp_path / "text" / f"qid{s.qid}.npz", features=rng.standard_normal((4, 7, 5)).astype(np.float32))
    ds = GroundingDataset(samples, open_store(tmp_path / "video", kind="video"),
                          open_store(tmp_path / "text", kind="text"), use_tef=False)
    batch = collate_grounding([ds[i] for i in range(len(ds))])
    assert batch["video_feats"].shape[:2] == (4, 4) and batch["text_feats"].shape == (4, 4, 7, 5)
    model = tiny(num_levels=4)
    total, _ = model.loss(model(batch), batch)
    assert torch.isfinite(total)
    model.eval()
    with torch.no_grad():
        rows = model.postprocess(model(batch), batch)
    for row, s in zip(rows, samples):
        w = np.array(row["pred_relevant_windows"])
        assert row["qid"] == s.qid and (w[:, 0] >= 0).all() and (w[:, 1] <= s.duration + 1e-6).all()
    gt = [json.loads(line) for line in path.read_text().splitlines()[:4]]
    metrics = evaluate_grounding(rows, gt)
    assert "MR-full-mAP" in metrics["brief"]


def test_mixed_precision_forward_and_loss():
    model = tiny(**NO_DROPOUT)
    batch = make_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch)
        total, _ = model.loss(out, batch)
    total.backward()
    assert torch.isfinite(total)
    assert out["pred_spans"].dtype == torch.float32 and out["saliency_scores"].dtype == torch.float32
    rows = model.eval().postprocess(out, batch)
    assert len(rows) == 3


# ----------------------------------------------------------------------------- query dependence options
QC_WEIGHTS = {"span": 1.0, "iou": 1.0, "label": 1.0, "saliency": 0.1, "query_contrast": 1.0}


def test_negative_pairs_score_every_video_with_another_query():
    model = tiny(**NO_DROPOUT, neg_pairs=True, loss_weights=QC_WEIGHTS)
    batch = make_batch()
    model.train()
    out = model(batch)
    neg = out["saliency_scores_neg"]
    assert neg.shape == out["saliency_scores"].shape
    # the same videos with the rolled queries through the normal forward give the same scores
    rolled = {**batch, "text_feats": batch["text_feats"].roll(1, 0), "text_mask": batch["text_mask"].roll(1, 0)}
    torch.manual_seed(0)
    again = model(rolled)["saliency_scores"]
    vm = batch["video_mask"]
    torch.testing.assert_close(neg[vm], again[vm], rtol=1e-5, atol=1e-6)
    total, terms = model.loss(out, batch)
    # by hand: -log sigmoid((s - s_neg) / 0.07) at the sampled positives, mean
    pos = batch["saliency_pos_idx"]
    s, sn = out["saliency_scores"].gather(1, pos), neg.gather(1, pos)
    expected = -torch.nn.functional.logsigmoid((s - sn) / 0.07).mean()
    torch.testing.assert_close(terms["loss_query_contrast"], expected.detach())
    total.backward()
    model.eval()
    assert "saliency_scores_neg" not in model(batch)  # training only


def test_query_contrast_needs_negative_pairs():
    with pytest.raises(InputError, match="neg_pairs"):
        tiny(loss_weights=QC_WEIGHTS)


def test_dense_stream_without_text_ca_and_mean_pooling():
    model = tiny(**NO_DROPOUT, dense_text_ca=False, text_pool="mean").eval()
    assert all(layer.dense.text_ca is None for layer in model.layers)
    batch = make_batch()
    text = torch.randn(3, 1, 6, 16)
    mask = batch["text_mask"]
    w = mask[:, None, :, None].float()
    torch.testing.assert_close(model._pool(text, mask), (text * w).sum(2) / w.sum(2))
    with pytest.raises(InputError, match="text_pool"):
        tiny(text_pool="max")
