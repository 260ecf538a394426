"""MomentDETR (Moment-DETR and QD-DETR configs): shapes, masks, training, options, registry."""

from __future__ import annotations

import pytest
import torch

from conftest import sync_op_counter
from momentkit.errors import InputError
from momentkit.models import MomentDETR, count_parameters, create_model, list_models, register_model
from momentkit.models.registry import _MODELS

TINY = dict(video_dim=6, text_dim=5, hidden_dim=16, nheads=2, ffn_dim=32, enc_layers=1, dec_layers=2,
            num_queries=4, t2v_layers=1, max_text_len=6)
NO_DROPOUT = dict(dropout=0.0, input_dropout=0.0)
PRESETS = ["moment_detr", "qd_detr"]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(name: str, **cfg) -> MomentDETR:
    torch.manual_seed(0)
    kw = dict(TINY, **cfg)
    if name == "moment_detr":
        kw.pop("t2v_layers")
    return create_model(name, **kw)


def make_batch(valid_t=(5, 3, 8), valid_l=(3, 6, 2), t=8, length=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = len(valid_t)
    vm = (torch.arange(t)[None] < torch.tensor(valid_t)[:, None]).float()
    tm = (torch.arange(length)[None] < torch.tensor(valid_l)[:, None]).float()
    sal = torch.randint(0, 13, (b, t), generator=g).float() * vm
    return {
        "video_feats": torch.randn(b, t, 6, generator=g),
        "video_mask": vm,
        "text_feats": torch.randn(b, length, 5, generator=g),
        "text_mask": tm,
        "spans": [torch.tensor([[0.3, 0.2]]), torch.tensor([[0.2, 0.2], [0.7, 0.3]]), torch.tensor([[0.6, 0.5]])][:b],
        "saliency": sal,
        "saliency_pos_idx": sal.argmax(1, keepdim=True).repeat(1, 2),
        "saliency_neg_idx": torch.zeros(b, 2, dtype=torch.long),
        "meta": [{"qid": i, "vid": f"v{i}", "duration": 2.0 * n, "clip_len": 2, "num_clips": n}
                 for i, n in enumerate(valid_t)],
    }


@pytest.mark.parametrize("name", PRESETS)
def test_output_shapes(name):
    model = tiny(name).eval()
    out = model(make_batch())
    assert out["pred_logits"].shape == (3, 4, 2)
    assert out["pred_spans"].shape == (3, 4, 2)
    assert out["saliency_scores"].shape == (3, 8)
    assert len(out["aux_outputs"]) == 1 and out["aux_outputs"][0]["pred_spans"].shape == (3, 4, 2)
    assert ((out["pred_spans"] > 0) & (out["pred_spans"] < 1)).all()
    assert "saliency_scores_neg" not in out  # negative pairs only in training


@pytest.mark.parametrize("name,tef", [("moment_detr", False), ("moment_detr", True), ("qd_detr", False)])
def test_padding_changes_nothing(name, tef):
    model = tiny(name, tef=tef).eval()
    full = make_batch(valid_t=(5,), valid_l=(3,), t=5, length=3)
    padded = make_batch(valid_t=(5,), valid_l=(3,), t=8, length=6, seed=1)
    padded["video_feats"][:, :5] = full["video_feats"]
    padded["text_feats"][:, :3] = full["text_feats"]
    padded["video_feats"][:, 5:] *= 100  # garbage in the padding
    a, b = model(full), model(padded)
    assert torch.allclose(a["pred_logits"], b["pred_logits"], atol=1e-5)
    assert torch.allclose(a["pred_spans"], b["pred_spans"], atol=1e-5)
    assert torch.allclose(a["saliency_scores"], b["saliency_scores"][:, :5], atol=1e-5)


@pytest.mark.parametrize("name", PRESETS)
def test_overfits_a_tiny_batch(name):
    model = tiny(name, **NO_DROPOUT).train()
    batch = make_batch()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(60):
        total, terms = model.loss(model(batch), batch)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(total.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    assert "loss_span_0" in terms and ("loss_neg_pair" in terms) == (name == "qd_detr")


@pytest.mark.parametrize("name", PRESETS)
def test_gradients_reach_every_parameter(name):
    # Large margin: every saliency hinge is active. Two steps, because zero-initialised tensors
    # (QD-DETR's last span layer, attention biases acting on the all-zero first decoder input) block
    # gradients at step 0, as in DETR.
    model = tiny(name, text_pos="learned", saliency_margin=10.0).train()
    batch = make_batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        total, _ = model.loss(model(batch), batch)
        total.backward()
        opt.step()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []
    assert all(p.grad is not None for p in model.parameters())


def test_query_dropout_only_in_training():
    cfg = dict(NO_DROPOUT, decoder_self_attn=False)
    ref = tiny("moment_detr", **cfg)
    drop = tiny("moment_detr", query_dropout=0.5, **cfg)
    assert torch.equal(ref.query_embed.weight, drop.query_embed.weight)  # same seed, same weights
    batch = make_batch()
    ref.eval(), drop.eval()
    assert torch.equal(ref(batch)["pred_spans"], drop(batch)["pred_spans"])
    ref.train(), drop.train()
    torch.manual_seed(3)
    a, b = ref(batch)["pred_spans"], drop(batch)["pred_spans"]
    same = torch.isclose(a, b, atol=1e-6).all(-1)  # (B, Q): without self-attention queries are independent
    assert 0 < same.sum() < same.numel()


def test_decoder_self_attention_option_parameter_count():
    with_sa = tiny("moment_detr")
    without = tiny("moment_detr", decoder_self_attn=False)
    d = TINY["hidden_dim"]
    # per decoder layer: in_proj 3d*d + 3d, out_proj d*d + d, LayerNorm 2d
    assert count_parameters(with_sa) - count_parameters(without) == TINY["dec_layers"] * (4 * d * d + 6 * d)
    assert all(layer.self_attn is None for layer in without.decoder.layers)


def test_published_moment_detr_parameter_count():
    model = create_model("moment_detr")  # video 2818 (with TEF), text 512
    # by hand: video proj LN(2818)+2818*256+256 + LN(256)+256*256+256 = 793,604; text proj 198,656;
    # 2 encoder layers 789,760 each; 2 decoder layers 1,053,440 each; decoder norm 512; queries 2,560;
    # class head 514; span MLP 132,098; saliency head 257.
    assert count_parameters(model) == 4_814_601
    for p in model.video_proj.parameters():
        p.requires_grad_(False)
    assert count_parameters(model) == 4_814_601 - 793_604
    assert count_parameters(model, trainable_only=False) == 4_814_601


def test_qd_detr_negative_pairs_in_training():
    model = tiny("qd_detr").train()
    out = model(make_batch())
    assert out["saliency_scores_neg"].shape == (3, 8)
    assert "saliency_scores_neg" not in model(make_batch(valid_t=(5,), valid_l=(3,)))  # no pair for B = 1


def test_postprocess_through_the_model():
    model = tiny("qd_detr").eval()
    batch = make_batch()
    with torch.no_grad():
        rows = model.postprocess(model(batch), batch)
    assert [r["qid"] for r in rows] == [0, 1, 2]
    for r, n in zip(rows, (5, 3, 8)):
        w = r["pred_relevant_windows"]
        assert len(w) == 4 and len(r["pred_saliency_scores"]) == n
        assert all(0 <= s <= e <= 2.0 * n for s, e, _ in w)
        assert [x[2] for x in w] == sorted((x[2] for x in w), reverse=True)


def test_registry_round_trip():
    assert {"moment_detr", "qd_detr"} <= set(list_models())
    model = create_model("qd_detr", **TINY)
    assert isinstance(model, MomentDETR) and model.config.query_type == "anchor" and len(model.t2v) == 1

    @register_model("tiny_test_model")
    def _factory(**cfg):
        return torch.nn.Linear(cfg.get("n", 2), 1)

    try:
        assert "tiny_test_model" in list_models()
        assert create_model("tiny_test_model", n=3).in_features == 3
        with pytest.raises(ValueError):
            register_model("tiny_test_model")(lambda **cfg: None)
    finally:
        _MODELS.pop("tiny_test_model")
    with pytest.raises(InputError, match="model"):
        create_model("no_such_model")
    with pytest.raises(InputError, match="hiden_dim"):
        create_model("moment_detr", hiden_dim=8)
    with pytest.raises(InputError, match="query_type"):
        create_model("moment_detr", query_type="bogus")


def test_bad_batches_raise_input_errors():
    model = tiny("moment_detr").eval()
    batch = make_batch()
    batch["video_feats"] = batch["video_feats"][..., :4]
    with pytest.raises(InputError, match="video_feats"):
        model(batch)
    batch = make_batch()
    batch["text_mask"][1] = 0
    with pytest.raises(InputError, match="text_mask"):
        model(batch)
    batch = make_batch()
    del batch["video_mask"]
    with pytest.raises(InputError, match="video_mask"):
        model(batch)
    batch = make_batch()
    out = model(batch)
    batch["spans"] = batch["spans"][:2]
    with pytest.raises(InputError, match="spans"):
        model.loss(out, batch)


def test_pre_norm_and_drop_path_options_build_and_run():
    model = tiny("qd_detr", pre_norm=True, drop_path=0.1, activation="gelu").train()
    batch = make_batch()
    total, _ = model.loss(model(batch), batch)
    assert torch.isfinite(total)
    assert model.encoder.norm is not None


def test_loss_weights_names_and_the_old_giou_key():
    model = tiny("moment_detr")
    assert set(model.config.loss_weights) == {"span", "iou", "label", "saliency"}
    batch = make_batch()
    _, terms = model.loss(model(batch), batch)
    assert {"loss_iou", "loss_iou_0"} <= set(terms) and not any("giou" in k for k in terms)
    # "giou", the name of the 1 - gIoU term before all models shared one criterion, is read as "iou"
    old = tiny("qd_detr", loss_weights={"span": 10.0, "giou": 2.0, "label": 4.0})
    assert old.config.loss_weights == {"span": 10.0, "iou": 2.0, "label": 4.0}
    assert old.criterion.weights["iou"] == 2.0 and old.criterion.iou_loss == "giou"
    with pytest.raises(InputError, match="not both") as e:
        tiny("moment_detr", loss_weights={"giou": 1.0, "iou": 1.0})
    assert e.value.field == "loss_weights"
    with pytest.raises(InputError, match="video_align"):  # an SDST term: this model has no level features
        tiny("moment_detr", loss_weights={"span": 1.0, "video_align": 1.0})


@pytest.mark.parametrize("name", PRESETS)
def test_loss_matches_every_decoder_layer_at_once_without_waiting(name):
    """One cost matrix for all decoder layers and, the matcher's copy aside, no sync-like operation in
    the loss and its backward pass (the batch has no ``saliency_valid``, which the margin loss selects by)."""
    model = tiny(name).train()
    matcher = model.criterion.matcher
    calls, cost = [], matcher.cost_matrix
    matcher.cost_matrix = lambda *a: calls.append(1) or cost(*a)
    batch = make_batch()
    out = model(batch)
    with sync_op_counter() as syncs:
        total, terms = model.loss(out, batch)
        total.backward()
    assert syncs.names == [] and calls == [1] and "loss_label_0" in terms
