"""VicTR (thesis 004, Sec. 5.3) and its baselines: SigAffinity, token-boosting, divided attention, affinity
re-weighting, affinity logits, the auxiliary loss, ablation switches; hand-computed expectations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from momentkit.errors import InputError
from momentkit.models import create_model, list_models
from momentkit.models.victr import Reweight, SigAffinity, VicTRBlock, VicTRConfig, affinity

pytestmark = pytest.mark.usefixtures("one_thread")

D = 8


def tiny(name: str = "victr", **options):
    torch.manual_seed(0)
    base = {"input_dim": D, "text_dim": D, "num_classes": 3, "frames": 4, "heads": 2, "layers": 2, "proj_dim": 6}
    return create_model(name, **{**base, **options})


def batch(b: int = 2, v: int = 1, t: int = 4, n: int = 3, aux: bool = True, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {"feats": torch.randn(b, v, t, D, generator=g), "labels": torch.eye(n)[torch.arange(b) % n],
           "class_text": F.normalize(torch.randn(n, D, generator=g), dim=-1), "multi_label": False,
           "meta": [{"video": f"v{i}", "num_frames": t} for i in range(b)]}
    if aux:
        out["aux_text"] = F.normalize(torch.randn(5, D, generator=g), dim=-1)
        out["aux_groups"] = torch.tensor([0, 0, 1, 1, 1])
    return out


# ----------------------------------------------------------------------------- SigAffinity
def test_sig_affinity_is_sigmoid_of_w_times_cosine_with_its_gradient_to_w():
    sig = SigAffinity(init=2.0)
    a = torch.tensor([[3.0, 0.0], [0.0, 5.0]])  # cos with b: [[1, 0, -1], [0, 1, 0]]
    b = torch.tensor([[2.0, 0.0], [0.0, 0.5], [-1.0, 0.0]])
    out = sig(a, b)
    s = 1 / (1 + math.exp(-2.0))
    expected = torch.tensor([[s, 0.5, 1 - s], [0.5, s, 0.5]])
    assert torch.allclose(out, expected, atol=1e-6)
    out.sum().backward()
    # d/dw sigmoid(w c) = c sigmoid(w c) (1 - sigmoid(w c)); the c = 0 entries add nothing
    grad = 1 * s * (1 - s) + (-1) * (1 - s) * s + 1 * s * (1 - s)
    assert sig.w.grad is not None and sig.w.grad.item() == pytest.approx(grad, abs=1e-6)


@pytest.mark.parametrize("w", [-50.0, 0.0, 0.3, 50.0])
def test_sig_affinity_stays_in_zero_one(w):
    sig = SigAffinity(init=w)
    out = sig(torch.randn(7, 5), torch.randn(9, 5))
    assert out.shape == (7, 9) and out.min() >= 0 and out.max() <= 1
    if w == 0.0:
        assert torch.all(out == 0.5)


def test_affinity_is_the_cosine():
    a = torch.tensor([[3.0, 4.0]])
    b = torch.tensor([[4.0, 3.0], [-3.0, -4.0]])
    assert affinity(a, b)[0].tolist() == pytest.approx([24 / 25, -1.0], abs=1e-6)


# ----------------------------------------------------------------------------- token-boosting
def test_token_boosting_shapes_and_weights():
    model = tiny(affinity_init=3.0)
    frames = torch.randn(2, 4, D)
    text, aux = torch.randn(3, D), torch.randn(5, D)
    z = model.tokens(frames, text, aux)
    assert z.shape == (2, 4, 1 + 3 + 5, D)
    assert torch.equal(z[:, :, 0], frames)
    # text token x at (i, t) = e_txt^x * sigmoid(w cos(e_img^{i,t}, e_txt^x)), the aux tokens alike
    i, t, x, y = 1, 2, 1, 4
    cos = F.cosine_similarity(frames[i, t], text[x], dim=0)
    assert torch.allclose(z[i, t, 1 + x], text[x] * torch.sigmoid(3.0 * cos), atol=1e-6)
    cos = F.cosine_similarity(frames[i, t], aux[y], dim=0)
    assert torch.allclose(z[i, t, 1 + 3 + y], aux[y] * torch.sigmoid(3.0 * cos), atol=1e-6)
    assert tiny().tokens(frames, text, None).shape == (2, 4, 1 + 3, D)
    # without token-boosting the text tokens are the texts themselves at every timestep
    plain = tiny(token_boosting=False).tokens(frames, text, aux)
    assert torch.equal(plain[1, 3, 1:4], text)


# ----------------------------------------------------------------------------- divided attention
def _block(**options) -> VicTRBlock:
    torch.manual_seed(1)
    return VicTRBlock(VicTRConfig(input_dim=D, heads=2, frames=4, **options), D).eval()


def _changed(fn, z: torch.Tensor, t: int, n: int) -> torch.Tensor:
    """(T, N) bools: which output tokens change when token (t, n) of ``z`` is perturbed."""
    z2 = z.clone()
    z2[0, t, n] += torch.linspace(-2.0, 3.0, z.shape[-1])  # not a constant: LayerNorm would remove it
    return (fn(z2) - fn(z)).abs().amax(-1)[0] > 1e-6


def test_cross_modal_attention_stays_within_a_timestep():
    block = _block()
    z = torch.randn(1, 4, 5, D)
    changed = _changed(block.cross_step, z, t=2, n=3)
    assert changed[2].all()  # every token of timestep 2 (video and texts) reads the perturbed text token
    assert not changed[[0, 1, 3]].any()  # no other timestep


def test_temporal_attention_stays_along_time_of_one_token():
    block = _block()
    z = torch.randn(1, 4, 5, D)
    changed = _changed(block.temporal_step, z, t=2, n=3)
    assert changed[:, 3].all()  # token 3 at every timestep
    assert not changed[:, [0, 1, 2, 4]].any()  # no other token


def test_joint_attention_mixes_every_token_at_once():
    block = _block(attention="joint")
    z = torch.randn(1, 4, 5, D)
    assert _changed(block.cross_step, z, t=2, n=3).all()


# ----------------------------------------------------------------------------- re-weighting
def test_affinity_reweighting_replaces_text_tokens_by_their_time_pool_times_sigaffinity():
    rw = Reweight(VicTRConfig(input_dim=2, heads=1, affinity_init=2.0), 2)
    video = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # two timesteps
    text = torch.tensor([[2.0, 0.0], [0.0, 0.0]])  # one text token: pooled over time = (1, 0)
    z = torch.stack([video, text], dim=1)[None]  # (1, T=2, N=2, 2)
    out = rw(z)
    assert torch.equal(out[0, :, 0], video)
    s = 1 / (1 + math.exp(-2.0))
    assert out[0, 0, 1].tolist() == pytest.approx([s, 0.0])  # cos((1,0), (1,0)) = 1
    assert out[0, 1, 1].tolist() == pytest.approx([0.5, 0.0])  # cos((0,1), (1,0)) = 0
    assert torch.equal(Reweight(VicTRConfig(input_dim=2, heads=1, reweighting="none"), 2)(z), z)
    for mode in ("learnable", "attention"):
        got = Reweight(VicTRConfig(input_dim=2, heads=1, reweighting=mode), 2)(z)
        ratio = got[0, :, 1, 0] / 1.0  # pooled (1, 0) times a weight in [0, 1]
        assert got.shape == z.shape and torch.all((ratio >= 0) & (ratio <= 1))


# ----------------------------------------------------------------------------- logits and losses
def test_affinity_logits_equal_cosine_times_scale():
    model = tiny().eval()
    with torch.no_grad():
        model.scale.s.fill_(math.log(5.0))
    out = model(batch(v=2))
    cos = F.cosine_similarity(out["video_embedding"][:, :, None], out["text_embedding"], dim=-1)
    assert out["logits"].shape == (2, 2, 3)
    assert torch.allclose(out["logits"], 5.0 * cos, atol=1e-5)
    assert out["video_embedding"].shape[-1] == 6 and out["aux_logits"].shape == (2, 2, 3, 2)
    cos_aux = F.cosine_similarity(out["text_embedding"][:, :, :, None], out["aux_embedding"][:, :, None], dim=-1)
    assert torch.allclose(out["aux_logits"], 5.0 * cos_aux, atol=1e-5)  # logit_aux^{x,y} = s cos(e_txt^x, e_aux^y)


def test_aux_loss_is_the_mean_over_groups_of_the_class_cross_entropy():
    model = tiny(aux_loss_weight=0.5)
    b = batch()
    out = model(b)
    total, terms = model.loss(out, b)
    target = b["labels"].argmax(-1)
    cls = F.cross_entropy(out["logits"][:, 0], target)
    aux = torch.stack([F.cross_entropy(out["aux_logits"][:, 0, :, y], target) for y in range(2)]).mean()
    assert terms["loss_cls"].item() == pytest.approx(cls.item(), rel=1e-5)
    assert terms["loss_aux"].item() == pytest.approx(aux.item(), rel=1e-5)
    assert total.item() == pytest.approx(cls.item() + 0.5 * aux.item(), rel=1e-5)
    total.backward()
    assert model.boost.w.grad is not None and model.boost.w.grad.abs() > 0  # token-boosting's w learns
    assert "loss_aux" not in tiny(aux=False).loss(tiny(aux=False)(b), b)[1]


def test_multi_label_uses_bce_and_views_are_averaged_in_the_rows():
    model = tiny().eval()
    b = {**batch(v=3), "multi_label": True}
    b["labels"] = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    out = model(b)
    loss = model.loss(out, b)[1]["loss_cls"]
    expected = F.binary_cross_entropy_with_logits(out["logits"].reshape(6, 3), b["labels"].repeat_interleave(3, 0))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    rows = model.postprocess(out, b)
    assert [r["video"] for r in rows] == ["v0", "v1"]
    assert rows[1]["scores"].tolist() == pytest.approx(out["logits"][1].sigmoid().mean(0).tolist(), abs=1e-6)


def test_the_head_is_vocabulary_agnostic():
    model = tiny().eval()
    for n in (2, 7):
        assert model(batch(n=n))["logits"].shape == (2, 1, n)


@pytest.mark.parametrize("name", [n for n in list_models("classification") if n.startswith("victr")])
def test_every_variant_runs_a_training_step(name):
    model = tiny(name)
    b = batch()
    loss, terms = model.loss(model(b), b)
    loss.backward()
    assert torch.isfinite(loss) and "loss_cls" in terms
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_clip_text_variant_scores_the_unchanged_texts():
    model = tiny("victr_clip_text").eval()
    b = batch()
    out = model(b)
    proj = model.proj(model.norm(b["class_text"]))  # the input texts, through the shared projection only
    assert torch.allclose(out["text_embedding"][0, 0], proj, atol=1e-6)
    assert torch.allclose(out["text_embedding"][0, 0], out["text_embedding"][1, 0])  # not video-conditioned


def test_config_checks():
    with pytest.raises(InputError, match="one joint space"):
        VicTRConfig(input_dim=8, text_dim=16, heads=2)
    with pytest.raises(InputError, match="divisible by 3 heads"):
        VicTRConfig(input_dim=8, heads=3)
    with pytest.raises(InputError, match="expected one of affinity, none, learnable, attention"):
        VicTRConfig(reweighting="softmax")
    assert VicTRConfig(classifier="visual").fixed_vocabulary and not VicTRConfig().fixed_vocabulary


# ----------------------------------------------------------------------------- baselines
def test_clip_zero_shot_is_scaled_cosine_of_mean_pooled_frames():
    model = create_model("clip_zero_shot", input_dim=D, text_dim=D)
    b = batch(v=2)
    out = model(b)
    mean = b["feats"].mean(2)  # (B, V, D)
    expected = 100 * F.cosine_similarity(mean[:, :, None], b["class_text"], dim=-1)
    assert torch.allclose(out["logits"], expected, atol=1e-4)
    assert sum(p.numel() for p in model.parameters()) == 1  # the temperature only


def test_linear_probe_and_temporal_transformer():
    b = batch()
    probe = create_model("linear_probe", input_dim=D, num_classes=3)
    x = F.normalize(b["feats"][:, 0].mean(1), dim=-1)
    assert torch.allclose(probe(b)["logits"][:, 0], probe.fc(x), atol=1e-6)
    assert probe(dict(b, class_text=None))["logits"].shape == (2, 1, 3)  # needs no text
    tt = create_model("temporal_transformer", input_dim=D, text_dim=D, frames=4, heads=2, layers=1)
    out = tt(b)
    assert out["logits"].shape == (2, 1, 3)
    with pytest.raises(InputError, match="scores class texts"):
        tt(dict(b, class_text=None))
