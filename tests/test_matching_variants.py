"""Matching and calibration variants of the DETR-style models (thesis 001, Tab. 3.5-3.6 and 3.9):
one-to-k, group and hybrid matching checked by hand on tiny cost matrices, GT replication, the
actionness head, and a training step of every variant with Moment-DETR, QD-DETR and CG-DETR."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from momentkit.errors import InputError
from momentkit.models import create_model
from momentkit.models.criterion import SetCriterion
from momentkit.models.detr import PRESETS, DETRConfig, MomentDETR
from momentkit.models.matcher import HungarianMatcher, assign
from momentkit.ops.gt_replication import replicate_moments
from test_models_cg_detr import tiny as tiny_cg_detr
from test_models_detr import NO_DROPOUT, make_batch, tiny

pytestmark = pytest.mark.usefixtures("one_thread")

# 4 predictions x 2 windows; by hand: rows 0 and 1 are cheap for window 0, row 2 for window 1, row 3 is
# expensive everywhere but a little less for window 0
COST = np.array([[0.0, 5.0], [1.0, 6.0], [5.0, 0.0], [8.0, 9.0]])


@pytest.mark.parametrize("k, rows, targets", [
    (1, [0, 2], [0, 1]),  # one-to-one: the two cheapest distinct rows
    (2, [0, 1, 2, 3], [0, 0, 1, 1]),  # window 0's two copies go to rows 0, 1 (0 + 1 + 0 + 9 = 10 < 0 + 6 + 0 + 8)
    (3, [0, 1, 2, 3], [0, 0, 1, 0]),  # a third copy of window 0: row 3 takes it (8 < 9)
    (5, [0, 1, 2, 3], [0, 0, 1, 0]),  # k * n > Q: every prediction is matched, still each once
])
def test_one_to_k_by_hand(k, rows, targets):
    r, c = assign(COST, k=k)
    assert r.tolist() == rows and c.tolist() == targets


def test_groups_by_hand():
    cost = COST.copy()
    cost[1] = [1.0, 4.0]  # group {0, 1}: 0->0 + 1->1 = 4 < 0->1 + 1->0 = 6
    r, c = assign(cost, groups=2)  # group {2, 3}: 2->1 + 3->0 = 8 < 2->0 + 3->1 = 14
    assert r.tolist() == [0, 1, 2, 3] and c.tolist() == [0, 1, 1, 0]
    r, c = assign(cost, k=2, groups=2)  # each group one-to-two: 0, 1 -> window 0 (1 < 4); 2 -> 1, 3 -> 0 (8)
    assert r.tolist() == [0, 1, 2, 3] and c.tolist() == [0, 0, 1, 0]
    with pytest.raises(ValueError, match="groups"):
        HungarianMatcher()({"pred_logits": torch.zeros(1, 3, 2), "pred_spans": torch.rand(1, 3, 2)},
                           [torch.rand(1, 2)], groups=2)
    r, c = assign(np.zeros((4, 0)), k=2, groups=2)
    assert len(r) == len(c) == 0


# the same assignments through the matcher and the criterion: span cost only, L1 of (centre, width)
SPANS = torch.tensor([[[0.1, 0.1], [0.12, 0.1], [0.8, 0.1], [0.5, 0.1]]], dtype=torch.float64)
WINDOWS = [torch.tensor([[0.1, 0.1], [0.8, 0.1]], dtype=torch.float64)]
# L1 costs by hand: row 0 [0, .7], row 1 [.02, .68], row 2 [.7, 0], row 3 [.4, .3]


def _l1_matcher():
    return HungarianMatcher(cost_class=0.0, cost_span=1.0, cost_giou=0.0)


def test_matcher_variants_on_spans():
    m, out = _l1_matcher(), {"pred_logits": torch.zeros(1, 4, 2, dtype=torch.float64), "pred_spans": SPANS}
    ((r, c),) = m(out, WINDOWS)
    assert r.tolist() == [0, 2] and c.tolist() == [0, 1]
    ((r, c),) = m(out, WINDOWS, k=2)  # .02 + .3 < .68 + .4
    assert r.tolist() == [0, 1, 2, 3] and c.tolist() == [0, 0, 1, 1]
    ((r, c),) = m(out, WINDOWS, groups=2)  # {0, 1}: .68 < .72; {2, 3}: .4 < 1.0
    assert r.tolist() == [0, 1, 2, 3] and c.tolist() == [0, 1, 1, 0]
    # every level gets the same number of pairs: 2 levels x 4
    levels = m.match_levels(torch.zeros(2, 1, 4, 2), SPANS.float().expand(2, -1, -1, -1),
                            WINDOWS[0].float(), [2], k=2)
    assert levels.shape == (4, 8) and levels[0].tolist() == [0] * 4 + [1] * 4


def _criterion(**options):
    return SetCriterion(_l1_matcher(), {"span": 1.0}, aux_loss=False, **options)


def test_criterion_losses_by_hand():
    out = {"pred_logits": torch.zeros(1, 4, 2), "pred_spans": SPANS.float()}
    batch = {"spans": [w.float() for w in WINDOWS]}
    # span term = mean |pred - target| over pairs and both coordinates
    total, terms = _criterion()(out, batch)
    assert total.item() == pytest.approx(0.0, abs=1e-7)  # rows 0 and 2 sit on the windows
    total, terms = _criterion(match_k=2)(out, batch)
    assert total.item() == pytest.approx((0.02 + 0.3) / 8, abs=1e-6)
    total, terms = _criterion()({**out, "query_groups": 2}, batch)
    assert total.item() == pytest.approx((0.68 + 0.4) / 8, abs=1e-6)
    # hybrid: the one-to-many branch (here the same 4 predictions) matched one-to-two, weight 0.5
    hybrid = {**out, "one2many": {"pred_logits": torch.zeros(1, 4, 2), "pred_spans": SPANS.float()}}
    total, terms = _criterion(one2many_k=2, one2many_weight=0.5)(hybrid, batch)
    assert terms["loss_span_o2m"].item() == pytest.approx(0.04, abs=1e-6)
    assert total.item() == pytest.approx(0.5 * 0.04, abs=1e-6)
    # augmented targets from the model replace the batch's
    moved = {**out, "targets": {"spans": [torch.tensor([[0.5, 0.1]])]}}
    total, _ = _criterion()(moved, batch)
    assert total.item() == pytest.approx(0.0, abs=1e-7)  # row 3 sits on it


# ------------------------------------------------------------------------------------ the models
VARIANTS = {
    "one_to_k": dict(matching="one_to_k", match_k=2),
    "group": dict(matching="group", match_groups=3),
    "hybrid": dict(matching="hybrid", hybrid_queries=6, match_k=2),
    "gt_replication": dict(gt_replication=1.0),
    "actionness": dict(actionness=True),
    "focal (SFL)": dict(label_loss="focal", num_classes=1),
    "-SA+QD group": dict(matching="group", match_groups=2, decoder_self_attn=False, query_dropout=0.25),
}


CG_TERMS = {"loss_attn_saliency", "loss_moment_sentence", "loss_distill", "loss_ortho"}  # CG-DETR's own


def tiny_model(name: str, **cfg) -> MomentDETR:
    """The tiny Moment-DETR / QD-DETR of test_models_detr or CG-DETR of test_models_cg_detr (same batch)."""
    return tiny_cg_detr(**cfg) if name == "cg_detr" else tiny(name, **cfg)


@pytest.mark.parametrize("name", ["moment_detr", "qd_detr", "cg_detr"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_training_step_with_each_variant(name, variant):
    model = tiny_model(name, **VARIANTS[variant]).train()
    batch = make_batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    out = model(batch)
    total, terms = model.loss(out, batch)
    assert torch.isfinite(total) and total.item() > 0
    opt.zero_grad()
    total.backward()
    opt.step()
    q = model.config.num_queries
    groups = VARIANTS[variant].get("match_groups", 1)
    assert out["pred_spans"].shape == (3, groups * q, 2) and out.get("query_groups", 1) == groups
    queries = model.query_embed if name == "moment_detr" else model.anchors
    assert queries.weight.shape[0] == groups * q and queries.weight.grad[-1].abs().sum() > 0  # last group trains
    if variant == "hybrid":
        assert {"loss_span_o2m", "loss_iou_o2m", "loss_label_o2m"} <= set(terms)
        o2m = model.query_embed_o2m if name == "moment_detr" else model.anchors_o2m
        assert o2m.weight.shape[0] == 6 and o2m.weight.grad.abs().sum() > 0
    if variant == "actionness":
        assert "loss_actionness" in terms and model.actionness_head.layers[0].weight.grad.abs().sum() > 0
    if variant == "gt_replication":  # sample 0 (5 clips, window clip 0) got a copy; sample 2 has no free place
        assert [len(s) for s in out["targets"]["spans"]] == [2, 2, 1]
    if name == "cg_detr":  # its own terms beside every variant's
        assert CG_TERMS <= set(terms) and all(torch.isfinite(terms[k]) for k in CG_TERMS)
    model.eval()
    with torch.no_grad():
        ev = model(batch)
        rows = model.postprocess(ev, batch, slot_windows=True)
    assert ev["pred_spans"].shape == (3, q, 2)  # evaluation: the first group / the one-to-one queries only
    assert not {"query_groups", "one2many", "targets"} & set(ev)
    assert all(len(r["slot_windows"]) == q for r in rows)


@pytest.mark.parametrize("name", ["moment_detr", "cg_detr"])
def test_groups_are_decoded_apart(name):
    """Training with 3 groups = each group's queries decoded alone (no attention between groups)."""
    model = tiny_model(name, matching="group", match_groups=3, **NO_DROPOUT)
    batch = make_batch()
    q = model.config.num_queries
    train = model.train()(batch)["pred_spans"]
    model.eval()
    queries = model.query_embed if name == "moment_detr" else model.anchors
    with torch.no_grad():
        first = model(batch)["pred_spans"]
        torch.testing.assert_close(train[:, :q].detach(), first)
        weights = queries.weight.data.clone()
        queries.weight.data[:q] = weights[2 * q:]  # the third group in the first group's place
        torch.testing.assert_close(train[:, 2 * q:].detach(), model(batch)["pred_spans"])


def test_actionness_ranks_by_the_geometric_mean():
    model = tiny("qd_detr", actionness=True).eval()
    batch = make_batch(valid_t=(5,), valid_l=(3,))
    p = torch.tensor([[0.9, 0.5, 0.2, 0.8]])  # foreground probabilities (softmax: foreground first)
    outputs = {"pred_logits": torch.stack([p.log(), (1 - p).log()], -1),
               "pred_spans": torch.tensor([[[0.1, 0.1], [0.3, 0.1], [0.5, 0.1], [0.7, 0.1]]]),
               "saliency_scores": torch.zeros(1, 8), "pred_confidence": torch.tensor([[0.3, 0.6, 0.1, 0.5]])}
    (row,) = model.postprocess(outputs, batch, slot_windows=True)
    assert [w[2] for w in row["pred_relevant_windows"]] == [0.6, 0.5, 0.3, 0.1]
    assert [w[2] for w in row["slot_windows"]] == [0.3, 0.6, 0.1, 0.5]  # slot order
    out = model(make_batch())  # the model's own: sqrt(p_fg * actionness), actionness in [0, 1]
    a = out["pred_actionness"]
    assert ((a >= 0) & (a <= 1)).all()
    torch.testing.assert_close(out["pred_confidence"], (out["pred_logits"].softmax(-1)[..., 0] * a).sqrt())


def test_config_fields_are_checked_and_defaults_are_published():
    cfg = DETRConfig()
    assert (cfg.matching, cfg.gt_replication, cfg.actionness) == ("one_to_one", 0.0, False)
    model = MomentDETR(DETRConfig(video_dim=6, text_dim=5, hidden_dim=16, nheads=2, ffn_dim=32, num_queries=4))
    assert model.criterion.match_k == 1 and not hasattr(model, "query_embed_o2m")
    assert not hasattr(model, "actionness_head") and model.query_embed.weight.shape == (4, 16)
    for key, value in (("matching", "many"), ("match_k", 0), ("match_groups", 0), ("hybrid_queries", 0),
                       ("gt_replication", 1.5), ("gt_replication_copies", 0), ("hybrid_weight", -1.0),
                       ("roi_size", 0)):
        with pytest.raises(InputError) as e:
            create_model("moment_detr", **{key: value})
        assert e.value.field == key
    with pytest.raises(InputError, match="actionness: true") as e:
        create_model("moment_detr", loss_weights={"span": 1.0, "actionness": 1.0})
    assert e.value.field == "loss_weights"
    qd = create_model("qd_detr", actionness=True)
    assert qd.config.loss_weights["actionness"] == 1.0 and "actionness" not in PRESETS["qd_detr"]["loss_weights"]


def test_a_model_that_decodes_without_decoder_outputs_refuses_the_variants():
    class OwnForward(MomentDETR):
        def forward(self, batch):
            b = batch["video_feats"].shape[0]
            memory = torch.zeros(b, 3, self.config.hidden_dim)
            return self._decode(memory, torch.zeros(b, 3, dtype=torch.bool), torch.zeros_like(memory))

    kw = dict(video_dim=6, text_dim=5, hidden_dim=16, nheads=2, ffn_dim=32, num_queries=4)
    hs, spans = OwnForward(DETRConfig(**kw)).train()(make_batch())
    assert spans.shape == (2, 3, 4, 2)
    with pytest.raises(NotImplementedError, match="decoder_outputs"):
        OwnForward(DETRConfig(**kw, matching="group", match_groups=2)).train()(make_batch())


# ------------------------------------------------------------------------------------ GT replication
def _replication_batch(n=4, t=6, window=(0.0, 0.5), neg=(3, 3)):
    feats = torch.arange(t, dtype=torch.float32)[:, None].repeat(1, 3) + 10  # clip i: features i + 10
    mask = torch.arange(t) < n
    tef = torch.stack([torch.arange(t) / n, (torch.arange(t) + 1) / n], -1) * mask[:, None]
    s, e = window
    return {"video_feats": torch.cat([feats, tef], -1)[None], "video_mask": mask[None],
            "spans": [torch.tensor([[(s + e) / 2, e - s]])],
            "saliency": torch.tensor([[4.0, 2.0, 0.0, 0.0, 0.0, 0.0][:t]]),
            "saliency_neg_idx": torch.tensor([list(neg)])}


def test_gt_replication_by_hand():
    batch = _replication_batch()  # 4 clips, window = clips 0-1: the only free place is clips 2-3
    out = replicate_moments(batch, p=1.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out["spans"][0], torch.tensor([[0.25, 0.5], [0.75, 0.5]]))
    feats = out["video_feats"][0]
    assert feats[:4, :3].tolist() == [[10.0] * 3, [11.0] * 3, [10.0] * 3, [11.0] * 3]
    torch.testing.assert_close(feats[:, 3:], batch["video_feats"][0, :, 3:])  # the TEF is not copied
    assert feats[4:].tolist() == batch["video_feats"][0, 4:].tolist()  # padding untouched
    assert out["saliency"][0].tolist() == [4.0, 2.0, 4.0, 2.0, 0.0, 0.0]
    assert out["saliency_neg_idx"].tolist() == [[3, 3]]  # inside the copy, but no clip is outside every window
    assert batch["video_feats"][0, 2, 0] == 12.0  # the input is not modified
    # 5 clips: the copy goes to clips 2-3 or 3-4; a negative inside it moves to the one clip left outside
    batch = _replication_batch(n=5, window=(0.0, 0.4), neg=(2, 3))
    starts = set()
    for seed in range(6):
        out = replicate_moments(batch, p=1.0, generator=torch.Generator().manual_seed(seed))
        start = round((out["spans"][0][1, 0] - 0.2).item() * 5)  # the copy's first clip
        starts.add(start)
        torch.testing.assert_close(out["spans"][0][1], torch.tensor([0.2 + start / 5, 0.4]))
        # start 2: both negatives (2, 3) were inside the copy -> clip 4; start 3: 3 -> clip 2, 2 stays
        assert set(out["saliency_neg_idx"][0].tolist()) == ({2} if start == 3 else {4})
    assert starts == {2, 3}
    # a window over every clip cannot be copied; p = 0 copies nothing
    assert len(replicate_moments(_replication_batch(window=(0.0, 1.0)), p=1.0)["spans"][0]) == 1
    assert len(replicate_moments(_replication_batch(), p=0.0)["spans"][0]) == 1
    with pytest.raises(InputError, match="gt_replication"):
        replicate_moments(_replication_batch(), p=2.0)


def test_gt_replication_of_a_model_is_training_only():
    model = tiny("moment_detr", gt_replication=1.0, gt_replication_copies=2)
    batch = make_batch(valid_t=(8,), valid_l=(3,))
    batch["spans"] = [torch.tensor([[0.0625, 0.125]])]  # clip 0 of 8: room for both copies
    out = model.train()(batch)
    assert len(out["targets"]["spans"][0]) == 3 and len(batch["spans"][0]) == 1
    total, _ = model.loss(out, batch)
    assert math.isfinite(total.item())
    assert "targets" not in model.eval()(batch)
