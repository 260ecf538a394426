"""CG-DETR: the adaptive cross-attention and the correlation losses by hand, shapes, options, parameter
count, and `momentkit train` on qvh-small- and multimoment-small-like data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from momentkit.cli.main import main
from momentkit.errors import InputError
from momentkit.io import iter_jsonl
from momentkit.models import count_parameters, create_model, list_models
from momentkit.models.cg_detr import (
    NEG_FILL,
    AdaptiveCrossAttention,
    CGDETR,
    attention_saliency_loss,
    correlation_distill_loss,
    moment_sentence_loss,
    orthogonality_loss,
)
from momentkit.models.criterion import TERMS
from momentkit.synth import get_preset, synthesize

REPO = Path(__file__).resolve().parents[1]
TINY = dict(video_dim=6, text_dim=5, hidden_dim=16, nheads=2, ffn_dim=32, enc_layers=1, dec_layers=2,
            num_queries=4, t2v_layers=1, num_dummies=3, dummy_layers=1, saliency_prototypes=4, max_text_len=6)
NO_DROPOUT = dict(dropout=0.0, input_dropout=0.0)

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**cfg) -> CGDETR:
    torch.manual_seed(0)
    return create_model("cg_detr", **{**TINY, **cfg})


def make_batch(valid_t=(5, 3, 8), valid_l=(3, 6, 2), t=8, length=6, seed=0):
    """A grounding batch of random features (video 6-d, text 5-d) with padding, windows and saliency."""
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


def identity_attention(d: int, heads: int) -> AdaptiveCrossAttention:
    attn = AdaptiveCrossAttention(d, heads).eval()
    with torch.no_grad():
        attn.out_proj.weight.copy_(torch.eye(d))
        attn.out_proj.bias.zero_()
    return attn


# ----------------------------------------------------------------------------- adaptive cross-attention
def test_dummy_attention_by_hand():
    """One head, d = 2, keys [dummy; word 1; word 2; padded word]: the softmax runs over the dummy and the
    valid words, the output sums the words' values only."""
    attn = identity_attention(2, 1)
    keys = torch.tensor([[[2.0, 0.0], [0.0, 2.0], [1.0, 1.0], [5.0, 5.0]]])
    values = torch.tensor([[[10.0, 10.0], [1.0, 0.0], [0.0, 1.0], [100.0, 100.0]]])
    pad = torch.tensor([[False, False, False, True]])
    clips = torch.tensor([[[2.0, 0.0], [0.0, 2.0]]])  # clip 0 equals the dummy key, clip 1 the first word
    out, weights = attn(clips, keys, values, pad, num_dummies=1)
    r = 1 / math.sqrt(2)  # 1 / sqrt(head dim)
    # clip 0: q.k = 4, 0, 2 -> scaled 4r, 0, 2r
    e = [math.exp(4 * r), 1.0, math.exp(2 * r)]
    a0 = [x / sum(e) for x in e]  # 0.7679, 0.0454, 0.1867
    # clip 1: q.k = 0, 4, 2
    e = [1.0, math.exp(4 * r), math.exp(2 * r)]
    a1 = [x / sum(e) for x in e]
    expected = torch.tensor([[a0 + [0.0], a1 + [0.0]]])
    torch.testing.assert_close(weights, expected)
    # the dummy's value (10, 10) and the padded word's never reach the output
    torch.testing.assert_close(out, torch.tensor([[[a0[1], a0[2]], [a1[1], a1[2]]]]))
    assert a0[0] > 0.75 and a0[1] + a0[2] < 0.25  # a clip like a dummy attends mostly to the dummies
    assert a1[0] < 0.05  # a clip like a word attends to the words
    # num_dummies=0: plain attention, the dummy's value counts
    plain, _ = attn(clips, keys, values, pad, num_dummies=0)
    torch.testing.assert_close(plain[0, 0], torch.tensor([10 * a0[0] + a0[1], 10 * a0[0] + a0[2]]))


def test_dummy_attention_splits_heads_without_projections():
    """Two heads of width 2: head 1 sees the first two features, head 2 the last two; the returned map
    is the mean of the heads'."""
    attn = identity_attention(4, 2)
    keys = torch.tensor([[[2.0, 0.0, 2.0, 0.0], [0.0, 2.0, 0.0, 2.0]]])  # dummy, word
    values = torch.tensor([[[9.0, 9.0, 9.0, 9.0], [1.0, 2.0, 3.0, 4.0]]])
    clip = torch.tensor([[[2.0, 0.0, 0.0, 2.0]]])
    out, weights = attn(clip, keys, values, None, num_dummies=1)
    s = 1 / (1 + math.exp(-4 / math.sqrt(2)))  # head 1: dummy 4/sqrt(2) vs word 0
    torch.testing.assert_close(weights, torch.tensor([[[0.5, 0.5]]]))  # (s + (1 - s)) / 2 per key
    torch.testing.assert_close(out, torch.tensor([[[1 - s, 2 * (1 - s), 3 * s, 4 * s]]]))


def test_word_attention_is_the_mass_on_the_words():
    model = tiny().eval()
    batch = make_batch()
    out = model(batch)
    b, t, s = 3, 8, TINY["num_dummies"] + 6
    assert out["clip_word_attention"].shape == (b, t, s)
    attn = out["clip_word_attention"]
    torch.testing.assert_close(attn.sum(-1), torch.ones(b, t))
    tm = batch["text_mask"].bool()
    assert (attn[:, :, TINY["num_dummies"]:][~tm[:, None].expand(b, t, 6)] == 0).all()  # padded words
    words = attn[..., TINY["num_dummies"]:].sum(-1) * batch["video_mask"]
    torch.testing.assert_close(out["word_attention"], words)
    assert (out["word_attention"] > 0).any() and (out["word_attention"] < 1).all()


# ----------------------------------------------------------------------------- losses by hand
def test_orthogonality_by_hand():
    tokens = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    # |cos| of the ordered pairs: (1,2) 0, (1,3) 1/sqrt2, (2,3) 1/sqrt2, each twice -> 4/sqrt2 over 6 pairs
    assert orthogonality_loss(tokens).item() == pytest.approx(4 / math.sqrt(2) / 6, abs=1e-6)
    assert orthogonality_loss(torch.ones(2, 1, 3)).item() == 0.0
    # a batch averages its samples; the second: (1,2) 0, (1,3) 0, (2,3) |-1| = 1, each twice
    two = torch.cat([tokens, torch.tensor([[[3.0, 0.0], [0.0, -1.0], [0.0, 2.0]]])])
    assert orthogonality_loss(two).item() == pytest.approx((4 / math.sqrt(2) / 6 + 2 / 6) / 2, abs=1e-6)


def test_correlation_distill_by_hand():
    # one sample, 2 clips (the first is a moment clip), keys [dummy, word, padded word]
    attention = torch.tensor([[[0.5, 0.5, 0.0], [0.9, 0.1, 0.0]]], requires_grad=True)
    similarity = torch.tensor([[[math.log(3.0), 0.0, 99.0], [0.0, 5.0, 0.0]]], requires_grad=True)
    key_valid = torch.tensor([[True, True, False]])
    moment = torch.tensor([[True, False]])
    loss = correlation_distill_loss(attention, similarity, key_valid, moment)
    # target softmax(ln 3, 0) = (3/4, 1/4); KL to (1/2, 1/2), over 2 keys; the second clip is no moment
    kl = 0.75 * math.log(0.75 / (0.5 + 1e-6)) + 0.25 * math.log(0.25 / (0.5 + 1e-6))
    assert loss.item() == pytest.approx(kl / 2, abs=1e-6)
    loss.backward()
    assert similarity.grad is None  # the correlation is the target
    # d/dW of -G log W, over 2 keys: -G / (2 W) on the moment clip's valid keys, 0 elsewhere
    expected = torch.tensor([[[-0.75 / (2 * (0.5 + 1e-6)), -0.25 / (2 * (0.5 + 1e-6)), 0.0], [0.0, 0.0, 0.0]]])
    torch.testing.assert_close(attention.grad, expected)


def test_moment_sentence_by_hand():
    m = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # moment tokens (normalised inside)
    n = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # non-moment tokens
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # sentences
    sd = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # dummy sentences
    clip_logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    moment = torch.tensor([[False, True], [True, False]])
    valid = torch.tensor([[True, True], [True, False]])
    loss = moment_sentence_loss(m, n, s, sd, clip_logits, moment, valid)
    E = math.e
    # row 1: [m1.s1, m1.s2, n1.s1, n1.s2] = [1, 0, 0, 1], positive 0; row 2: [0, 1, 1, 0], positive 1
    align = math.log(2 * E + 2) - 1
    # dummy rows: [m1.sd1, m1.sd2, n1.sd1, n1.sd2] = [1, -1, 0, 0] without entry 0;
    #             [m2.sd1, m2.sd2, n2.sd1, n2.sd2] = [0, 0, 1, -1] without entry 1
    d1 = math.log(E + 1 / E + 2) - math.log(1 / E + 2)
    d2 = math.log(2 + E + 1 / E) - math.log(1 + E + 1 / E)
    # clip BCE over the 3 valid clips: (logit 0, label 0), (2, 1), (1, 1)
    clips = (math.log(2) + math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 3
    assert loss.item() == pytest.approx(align + (d1 + d2) / 2 + clips, abs=1e-5)


def test_attention_saliency_by_hand():
    a = torch.tensor([[0.8, 0.2, 0.5]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    sal = torch.tensor([[0.0, 0.0, 2.0]])
    pos, neg = torch.tensor([[2]]), torch.tensor([[0]])
    loss = attention_saliency_loss(a, mask, sal, pos, neg, levels=3, tau=0.5)
    hinge = 2 * (0.2 + 0.8 - 0.5)
    # ranks r = 1, 2: clip 2 the only positive of a softmax over a / tau = (1.6, 0.4, 1.0)
    lse = math.log(math.exp(1.6) + math.exp(0.4) + math.exp(1.0))
    rank = 2 * (lse - 1.0) / 3
    bce = (-math.log(0.2) - math.log(0.8) - math.log(0.5)) / 3
    assert loss.item() == pytest.approx(hinge + rank + bce, abs=1e-5)
    # the video with another query: its clips are label-0 extras of the softmax and pushed to 0, except
    # where the pair is no negative (clip 1 here)
    a_neg = torch.tensor([[0.5, 0.9, 0.1]])
    ok = torch.tensor([[True, False, True]])
    loss = attention_saliency_loss(a, mask, sal, pos, neg, attention_neg=a_neg, neg_ok=ok, levels=3, tau=0.5)
    lse = math.log(sum(math.exp(x / 0.5) for x in (0.8, 0.2, 0.5, 0.5, 0.1)))
    rank = 2 * (lse - 1.0) / 3
    push = -math.log(0.5) - math.log(0.9)
    assert loss.item() == pytest.approx(hinge + rank + bce + push, abs=1e-5)


def test_terms_are_registered_and_reported():
    assert {"attn_saliency", "moment_sentence", "distill", "ortho"} <= set(TERMS)
    model = tiny(**NO_DROPOUT).train()
    batch = make_batch()
    total, terms = model.loss(model(batch), batch)
    for name in ("span", "iou", "label", "saliency", "rank", "neg_pair", "attn_saliency", "moment_sentence",
                 "distill", "ortho"):
        assert torch.isfinite(terms[f"loss_{name}"]), name
    # the total is the weighted sum (every weight 1 but span 10 and label 4; the earlier layer's terms too)
    w = model.config.loss_weights
    expected = sum(w.get(k.removeprefix("loss_").rsplit("_0", 1)[0], 0) * v for k, v in terms.items())
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    # without saliency labels, the moment clips are those inside a window: sample 0's (0.2, 0.4) of 5 clips
    no_saliency = {k: v for k, v in batch.items() if k != "saliency"}
    corr = model.correlation_outputs(model(no_saliency), no_saliency)
    assert corr["moment_mask"][0].tolist() == [False, True] + [False] * 6
    assert {"loss_moment_sentence", "loss_distill"} <= set(model.loss(model(no_saliency), no_saliency)[1])
    # the ortho term adds the dummies' and the prototypes'
    out = model(batch)
    ortho = orthogonality_loss(out["dummy_tokens"]) + orthogonality_loss(model.prototypes)
    assert model.loss(out, batch)[1]["loss_ortho"].item() == pytest.approx(ortho.item(), abs=1e-6)


# ----------------------------------------------------------------------------- the model
def test_output_shapes_and_negative_pairs():
    model = tiny().eval()
    out = model(make_batch())
    assert out["pred_logits"].shape == (3, 4, 2) and out["pred_spans"].shape == (3, 4, 2)
    assert out["saliency_scores"].shape == (3, 8) and out["word_attention"].shape == (3, 8)
    assert out["dummy_tokens"].shape == (3, 3, 16) and out["saliency_prototypes"].shape == (4, 16)
    assert len(out["aux_outputs"]) == 1 and "saliency_scores_neg" not in out
    model.train()
    batch = make_batch()
    batch["meta"][1]["vid"] = batch["meta"][2]["vid"]  # samples 1 and 2: two queries of one video
    out = model(batch)
    assert out["saliency_scores_neg"].shape == out["word_attention_neg"].shape == (3, 8)
    ok = out["saliency_neg_ok"]
    assert ok[0].sum() == 5 and not ok[1].any() and ok[2].sum() == 8  # valid clips of the real negatives
    assert (out["saliency_scores_neg"][1] == NEG_FILL).all() and (out["saliency_scores_neg"][0] > NEG_FILL).all()


def test_padding_changes_nothing():
    model = tiny(tef=True).eval()
    full = make_batch(valid_t=(5,), valid_l=(3,), t=5, length=3)
    padded = make_batch(valid_t=(5,), valid_l=(3,), t=8, length=6, seed=1)
    padded["video_feats"][:, :5] = full["video_feats"]
    padded["text_feats"][:, :3] = full["text_feats"]
    padded["video_feats"][:, 5:] *= 100
    a, b = model(full), model(padded)
    for key in ("pred_logits", "pred_spans"):
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=0)
    for key in ("saliency_scores", "word_attention"):
        torch.testing.assert_close(a[key], b[key][:, :5], atol=1e-5, rtol=0)


def test_overfits_a_tiny_batch():
    model = tiny(**NO_DROPOUT).train()
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


def test_gradients_reach_every_parameter():
    # a large margin keeps every saliency hinge active; two steps, because zero-initialised layers
    # block some gradients at step 0, as in DETR
    model = tiny(saliency_margin=10.0, text_pos="learned").train()
    batch = make_batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        total, _ = model.loss(model(batch), batch)
        total.backward()
        opt.step()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


def test_gt_replication_reaches_the_encoder_and_the_correlation_branch():
    """With GT replication the encoder reads the pasted clips and the correlation losses the augmented
    targets (sample 0: 5 clips, its window (0.2, 0.4) is clip 1; the copy goes to clip 0, 2, 3 or 4)."""
    model = tiny(gt_replication=1.0, **NO_DROPOUT).train()
    batch = make_batch()
    batch["saliency"][0] = torch.tensor([0.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # only the window's clip
    batch["saliency_pos_idx"][0] = 1
    out = model(batch)
    spans = out["targets"]["spans"][0]
    assert len(spans) == 2 and len(batch["spans"][0]) == 1
    dest = round((spans[1, 0] - 0.1).item() * 5)  # the copy's clip: centre (dest + 0.5) / 5, width 0.2
    assert dest in (0, 2, 3, 4)
    torch.testing.assert_close(spans[1], torch.tensor([(dest + 0.5) / 5, 0.2]))
    tokens = out["video_tokens"][0]  # projected clips: the copy's equals the source's, the batch's did not
    torch.testing.assert_close(tokens[dest], tokens[1])
    assert not torch.equal(batch["video_feats"][0, dest], batch["video_feats"][0, 1])
    sal = out["targets"]["saliency"]
    assert sal[0, :5].tolist() == [5.0 if i in (1, dest) else 0.0 for i in range(5)]
    corr = model.correlation_outputs(out, batch)
    assert corr["moment_mask"][0].tolist() == [i in (1, dest) for i in range(8)]  # the copy is a moment clip
    assert corr["moment_mask"].tolist() == ((sal > 0) & batch["video_mask"].bool()).tolist()
    total, terms = model.loss(out, batch)
    assert torch.isfinite(total) and {"loss_moment_sentence", "loss_distill", "loss_attn_saliency"} <= set(terms)
    assert "targets" not in model.eval()(batch)  # training only


def test_decoder_options_and_config_checks():
    assert "cg_detr" in list_models()
    model = tiny(decoder_self_attn=False, num_queries=6)
    assert all(layer.self_attn is None for layer in model.decoder.layers)
    assert model(make_batch())["pred_spans"].shape == (3, 6, 2)
    ref, drop = tiny(**NO_DROPOUT).train(), tiny(query_dropout=0.5, **NO_DROPOUT).train()
    torch.manual_seed(1)
    a = ref(make_batch())["pred_spans"]
    torch.manual_seed(1)
    assert not torch.allclose(a, drop(make_batch())["pred_spans"])
    for bad, field in ((dict(encode_text=True), "encode_text"), (dict(saliency_topk=5), "saliency_topk"),
                       (dict(num_dummies=0), "num_dummies"), (dict(loss_weights={"distil": 1.0}), "loss_weights"),
                       (dict(dumies=3), "dumies")):
        with pytest.raises(InputError) as e:
            tiny(**bad)
        assert e.value.field == field


def test_published_parameter_count():
    model = create_model("cg_detr")  # QVHighlights: video 2818 (with TEF), text 512
    assert count_parameters(model) == 11_289_372
    parts = {name: sum(p.numel() for p in module.parameters()) for name, module in model.named_children()}
    assert parts["t2v"] == 2 * (256 * 256 + 256 + 512 + 2 * 256 * 1024 + 1024 + 256 + 512)  # no q/k/v projections
    assert parts["dummy_encoder"] == 2 * 789_760 and parts["moment_encoder"] == parts["sentence_encoder"] == 789_760
    assert parts["encoder"] == 3 * 789_760 and parts["decoder"] == 3 * 1_053_440 + 512
    # tokens: 45 dummies and their positions, 10 prototypes, the token position, sentence and moment tokens
    assert sum(p.numel() for _, p in model.named_parameters(recurse=False)) == (2 * 45 + 10 + 1 + 4) * 256


# ----------------------------------------------------------------------------- momentkit train
@pytest.mark.parametrize("preset,config,task", [
    ("qvh-small", "qvh_small_cg_detr.yaml", "grounding"),
    ("multimoment-small", "multimoment_small_cg_detr.yaml", "multimoment"),
])
def test_momentkit_train_writes_predictions(tmp_path, capsys, preset, config, task):
    data = tmp_path / "data"
    synth = get_preset(preset).override(["num_videos={train: 16, val: 6}", "video_dims=[8, 8]", "text_dim=8"])
    summary = synthesize(synth, data, seed=0)
    run = tmp_path / "run"
    sets = [f"data.train={data}/annotations/train.jsonl", f"data.val={data}/annotations/val.jsonl",
            f"data.video_features=[{', '.join(str(data / f) for f in summary['video_features'])}]",
            f"data.text_features={data / summary['text_features']}", "data.batch_size=8", "data.num_workers=0",
            "model.video_dim=18", "model.text_dim=8", "model.hidden_dim=16", "model.nheads=2", "model.ffn_dim=32",
            "model.num_dummies=4", "model.enc_layers=1", "model.dec_layers=2", "model.num_queries=5",
            "train.epochs=1", f"train.out_dir={run}", "train.progress=false", "train.accelerator=cpu"]
    assert main(["train", str(REPO / "configs/synthetic" / config), *[x for s in sets for x in ("--set", s)]]) == 0
    capsys.readouterr()
    preds = [p for _, p in iter_jsonl(run / "predictions_val.jsonl")]
    assert len(preds) == summary["splits"]["val"]["queries"]
    for p in preds:
        assert 1 <= len(p["pred_relevant_windows"]) <= 5 and len(p["pred_saliency_scores"]) > 0
    metrics = json.loads((run / "metrics_val.json").read_text())
    assert ("mAP_m@0.5" if task == "multimoment" else "MR-full-mAP") in metrics["brief"]
    assert (run / "model.safetensors").is_file() and (run / "checkpoints/best.ckpt").is_file()
