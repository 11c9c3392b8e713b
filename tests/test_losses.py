"""Tests of the KD loss catalogue (edgekd.losses).

Golden values: tests/golden/losses_inputs.npz holds small fixed inputs (float64) and
tests/golden/losses_expected.json the values that the plain numpy / loop references below
compute on them. The references are written independently of the library (explicit loops,
np.corrcoef, a hand-written bilinear resize). Regenerate both files, after a deliberate change
of a loss definition, with:  .venv/bin/python tests/test_losses.py --regenerate
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgekd.losses import kd_metrics
from edgekd.losses import (
    AttentionTransferLoss, BoundaryKDLoss, ChannelWiseLoss, CrossEntropyLoss, CrossImageRelationLoss,
    DISTLoss, FitNetLoss, OHEMCrossEntropyLoss, PairwiseAffinityLoss, PixelKDLoss, boundary_band,
)

GOLDEN = Path(__file__).resolve().parent / "golden"
INPUTS, EXPECTED = GOLDEN / "losses_inputs.npz", GOLDEN / "losses_expected.json"
IGNORE = 255


# ---------------------------------------------------------------- independent numpy references
def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def kl_vec(p, q):
    return float(np.sum(p * (np.log(p) - np.log(q))))


def ref_kd_pixels(s, t, tau, select):
    """τ²·mean of per-pixel KL over the pixels where select(n, i, j) is true (loops)."""
    total, count = 0.0, 0
    n_, _, h_, w_ = s.shape
    for n in range(n_):
        for i in range(h_):
            for j in range(w_):
                if select(n, i, j):
                    total += kl_vec(np_softmax(t[n, :, i, j] / tau, 0), np_softmax(s[n, :, i, j] / tau, 0))
                    count += 1
    return tau**2 * total / count if count else 0.0


def ref_kd(s, t, labels, tau):
    return ref_kd_pixels(s, t, tau, lambda n, i, j: labels is None or labels[n, i, j] != IGNORE)


def ref_dist(s, t, labels, beta, gamma, tau):
    c = s.shape[1]
    ys = np_softmax(s / tau, 1).transpose(0, 2, 3, 1).reshape(-1, c)
    yt = np_softmax(t / tau, 1).transpose(0, 2, 3, 1).reshape(-1, c)
    keep = labels.reshape(-1) != IGNORE
    ys, yt = ys[keep], yt[keep]
    inter = 1 - np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(ys, yt)])
    intra = 1 - np.mean([np.corrcoef(ys[:, k], yt[:, k])[0, 1] for k in range(c)])
    return tau**2 * (beta * inter + gamma * intra)


def np_bilinear(x, out_h, out_w):
    """Half-pixel bilinear resize (align_corners=False), written from the definition."""
    _, _, h, w = x.shape
    out = np.zeros(x.shape[:2] + (out_h, out_w))

    def taps(o, size_in, size_out):
        src = max((o + 0.5) * size_in / size_out - 0.5, 0.0)
        i0 = min(int(math.floor(src)), size_in - 1)
        return i0, min(i0 + 1, size_in - 1), src - i0

    for oy in range(out_h):
        y0, y1, wy = taps(oy, h, out_h)
        for ox in range(out_w):
            x0, x1, wx = taps(ox, w, out_w)
            top = (1 - wx) * x[:, :, y0, x0] + wx * x[:, :, y0, x1]
            bottom = (1 - wx) * x[:, :, y1, x0] + wx * x[:, :, y1, x1]
            out[:, :, oy, ox] = (1 - wy) * top + wy * bottom
    return out


def np_conv1x1(x, weight, bias):
    return np.einsum("oc,nchw->nohw", weight, x) + bias[None, :, None, None]


def ref_fitnet(sf, tf, weight, bias):
    hint = np_bilinear(np_conv1x1(sf, weight, bias), *tf.shape[-2:])
    return float(np.mean((hint - tf) ** 2))


def ref_at(sf, tf, p):
    def q(att):
        flat = att.reshape(att.shape[0], -1)
        return flat / np.linalg.norm(flat, axis=1, keepdims=True)

    a_s = np_bilinear(np.mean(np.abs(sf) ** p, axis=1, keepdims=True), *tf.shape[-2:])
    a_t = np.mean(np.abs(tf) ** p, axis=1, keepdims=True)
    return float(np.mean((q(a_s) - q(a_t)) ** 2))


def ref_cwd(s, t, tau):
    n_, c_ = s.shape[:2]
    total = sum(
        kl_vec(np_softmax(t[n, c].ravel() / tau, 0), np_softmax(s[n, c].ravel() / tau, 0))
        for n in range(n_) for c in range(c_)
    )
    return tau**2 * total / (n_ * c_)


def np_pool(x, k, reduce):
    """Pooling with kernel = stride = k and ceil mode: edge windows use the in-bounds pixels."""
    n_, c_, h, w = x.shape
    rows, cols = range(0, h, k[0]), range(0, w, k[1])
    out = np.zeros((n_, c_, len(rows), len(cols)))
    for a, i in enumerate(rows):
        for b, j in enumerate(cols):
            out[:, :, a, b] = reduce(x[:, :, i:i + k[0], j:j + k[1]], axis=(2, 3))
    return out


def unit_nodes(x):
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    return flat / np.linalg.norm(flat, axis=1, keepdims=True)


def ref_skd(sf, tf, scale):
    h, w = tf.shape[-2:]
    k = (max(1, int(h * scale)), max(1, int(w * scale)))
    e_s = unit_nodes(np_pool(np_bilinear(sf, h, w), k, np.max))
    e_t = unit_nodes(np_pool(tf, k, np.max))
    errs = [(e_s[n].T @ e_s[n] - e_t[n].T @ e_t[n]) ** 2 for n in range(sf.shape[0])]
    return float(np.mean(errs))


def ref_cirkd(sf, tf, tau, k):
    e_s = unit_nodes(np_pool(np_bilinear(sf, *tf.shape[-2:]), (k, k), np.mean))
    e_t = unit_nodes(np_pool(tf, (k, k), np.mean))
    b, p = e_s.shape[0], e_s.shape[2]
    total = 0.0
    for i in range(b):
        for j in range(b):
            rs, rt = e_s[i].T @ e_s[j], e_t[i].T @ e_t[j]
            total += sum(kl_vec(np_softmax(rt[r] / tau, 0), np_softmax(rs[r] / tau, 0)) for r in range(p)) / p
    return total / (b * b)


def ref_band(class_map, width, valid):
    n_, h, w = class_map.shape
    band = np.zeros((n_, h, w), dtype=bool)
    for n in range(n_):
        for i in range(h):
            for j in range(w):
                if not valid[n, i, j]:
                    continue
                win = (slice(n, n + 1), slice(max(i - width, 0), i + width + 1), slice(max(j - width, 0), j + width + 1))
                band[n, i, j] = len(set(class_map[win][valid[win]].tolist())) > 1
    return band


def ref_bkd(s, t, labels, width, band_w, body_w, tau, band_from):
    valid = np.ones(s[:, 0].shape, bool) if labels is None else labels != IGNORE
    source = labels if band_from == "labels" else t.argmax(1)
    band = ref_band(source, width, valid)
    kd_band = ref_kd_pixels(s, t, tau, lambda n, i, j: band[n, i, j])
    kd_body = ref_kd_pixels(s, t, tau, lambda n, i, j: valid[n, i, j] and not band[n, i, j])
    return band_w * kd_band + body_w * kd_body


def ref_ce(s, labels, weights=None):
    num = den = 0.0
    for n, i, j in zip(*np.nonzero(labels != IGNORE)):
        y = labels[n, i, j]
        w = 1.0 if weights is None else weights[y]
        num += -w * np.log(np_softmax(s[n, :, i, j], 0)[y])
        den += w
    return num / den


# ---------------------------------------------------------------- golden cases
def make_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240611)
    rows, cols = np.arange(6)[:, None], np.arange(7)[None, :]
    labels = np.stack([(rows >= 3) + 2 * (cols >= 4), (rows >= 2) * 3 + 0 * cols]).astype(np.int64)
    labels[0, 0, :2] = IGNORE
    labels[1, 5, 3:] = IGNORE
    return {
        "s_logits": rng.normal(size=(2, 4, 6, 7)) * 2, "t_logits": rng.normal(size=(2, 4, 6, 7)) * 3,
        "labels": labels,
        "s_feat": rng.normal(size=(2, 3, 8, 8)), "t_feat": rng.normal(size=(2, 5, 4, 5)),
        "adapter_w": rng.normal(size=(5, 3)) * 0.5, "adapter_b": rng.normal(size=(5,)) * 0.1,
    }


def references(x: dict[str, np.ndarray]) -> dict[str, float]:
    s, t, lab, sf, tf = x["s_logits"], x["t_logits"], x["labels"], x["s_feat"], x["t_feat"]
    hint = np_bilinear(np_conv1x1(sf, x["adapter_w"], x["adapter_b"]), *tf.shape[-2:])
    weights = np.array([0.5, 1.0, 2.0, 0.25])
    return {
        "kd": ref_kd(s, t, lab, 1.0), "kd_tau4_nolabels": ref_kd(s, t, None, 4.0),
        "dist": ref_dist(s, t, lab, beta=1.0, gamma=2.0, tau=2.0),
        "fitnet": ref_fitnet(sf, tf, x["adapter_w"], x["adapter_b"]), "at": ref_at(sf, tf, 2.0),
        "cwd_logits": ref_cwd(s, t, 4.0), "cwd_features": ref_cwd(hint, tf, 2.0),
        "skd": ref_skd(sf, tf, 0.5), "cirkd": ref_cirkd(sf, tf, 0.5, 2),
        "bkd": ref_bkd(s, t, lab, 1, 2.0, 0.5, 2.0, "labels"),
        "bkd_teacher": ref_bkd(s, t, None, 1, 1.0, 1.0, 1.0, "teacher"),
        "ce": ref_ce(s, lab), "ce_weighted": ref_ce(s, lab, weights),
    }


def _with_adapter(loss):
    x = load_inputs()
    loss.adapter.weight.data = torch.from_numpy(x["adapter_w"])[:, :, None, None].clone()
    loss.adapter.bias.data = torch.from_numpy(x["adapter_b"]).clone()
    return loss


def torch_cases():
    """name → (loss module, input keys) computing the same quantities with the library."""
    return {
        "kd": (PixelKDLoss(tau=1.0), ("s_logits", "t_logits", "labels")),
        "kd_tau4_nolabels": (PixelKDLoss(tau=4.0), ("s_logits", "t_logits")),
        "dist": (DISTLoss(beta=1.0, gamma=2.0, tau=2.0), ("s_logits", "t_logits", "labels")),
        "fitnet": (_with_adapter(FitNetLoss(3, 5)), ("s_feat", "t_feat")),
        "at": (AttentionTransferLoss(p=2), ("s_feat", "t_feat")),
        "cwd_logits": (ChannelWiseLoss(tau=4.0), ("s_logits", "t_logits")),
        "cwd_features": (_with_adapter(ChannelWiseLoss(3, 5, tau=2.0)), ("s_feat", "t_feat")),
        "skd": (PairwiseAffinityLoss(pool_scale=0.5), ("s_feat", "t_feat")),
        "cirkd": (CrossImageRelationLoss(tau=0.5, pool_kernel=2), ("s_feat", "t_feat")),
        "bkd": (BoundaryKDLoss(width=1, band_weight=2.0, body_weight=0.5, tau=2.0), ("s_logits", "t_logits", "labels")),
        "bkd_teacher": (BoundaryKDLoss(width=1, band_from="teacher"), ("s_logits", "t_logits")),
        "ce": (CrossEntropyLoss(), ("s_logits", "labels")),
        "ce_weighted": (CrossEntropyLoss(class_weights=[0.5, 1.0, 2.0, 0.25]), ("s_logits", "labels")),
    }


def load_inputs() -> dict[str, np.ndarray]:
    with np.load(INPUTS) as data:
        return {k: data[k] for k in data.files}


def regenerate() -> None:
    x = make_inputs()
    GOLDEN.mkdir(exist_ok=True)
    np.savez_compressed(INPUTS, **x)
    EXPECTED.write_text(json.dumps(references(x), indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def golden() -> dict[str, float]:
    return json.loads(EXPECTED.read_text())


def test_references_reproduce_stored_golden_values(golden):
    assert references(load_inputs()) == pytest.approx(golden, rel=1e-9, abs=1e-12)
    assert set(golden) == set(torch_cases()) == set(CASES)


CASES = ["at", "bkd", "bkd_teacher", "ce", "ce_weighted", "cirkd", "cwd_features", "cwd_logits", "dist",
         "fitnet", "kd", "kd_tau4_nolabels", "skd"]


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_loss_matches_golden_value(golden, name, dtype):
    loss, keys = torch_cases()[name]
    x = load_inputs()
    args = [torch.from_numpy(x[k]) if k == "labels" else torch.from_numpy(x[k]).to(dtype) for k in keys]
    with torch.no_grad():
        value = loss.to(dtype)(*args)
    assert value.dtype == dtype and value.dim() == 0
    # DIST's Pearson has eps=1e-8 in its denominator (as the paper's code); np.corrcoef has none
    rel = 1e-4 if dtype == torch.float32 else (1e-6 if name == "dist" else 1e-9)
    assert float(value) == pytest.approx(golden[name], rel=rel)
    assert golden[name] > 0  # every case is a non-trivial value


# ---------------------------------------------------------------- hand-computed values
def test_kd_two_class_by_hand():
    # p_t = (3/4, 1/4), p_s = (1/2, 1/2): KL = 3/4·ln(3/2) + 1/4·ln(1/2)
    s = torch.zeros(1, 2, 1, 1)
    t = torch.tensor([math.log(3.0), 0.0]).view(1, 2, 1, 1)
    assert float(PixelKDLoss()(s, t)) == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5), rel=1e-6)


def test_kd_averages_only_non_ignored_pixels():
    s = torch.zeros(1, 2, 1, 2)
    t = torch.tensor([[math.log(3.0), 9.0], [0.0, -9.0]]).view(1, 2, 1, 2)
    one_pixel = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    labels = torch.tensor([[[0, IGNORE]]])
    assert float(PixelKDLoss()(s, t, labels)) == pytest.approx(one_pixel, rel=1e-6)
    assert float(PixelKDLoss()(s, t, torch.full_like(labels, IGNORE))) == 0.0


def test_identical_maps_give_zero_and_dist_is_scale_free():
    t = torch.randn(2, 4, 5, 6)
    for loss in (PixelKDLoss(tau=2), DISTLoss(), ChannelWiseLoss(tau=4), BoundaryKDLoss(band_from="teacher")):
        assert float(loss(t.clone(), t)) == pytest.approx(0.0, abs=1e-6)
    f = torch.randn(2, 3, 4, 4)
    assert float(AttentionTransferLoss()(3.0 * f, f)) == pytest.approx(0.0, abs=1e-9)  # normalised
    assert float(PairwiseAffinityLoss(pool_kernel=1)(2.0 * f, f)) == pytest.approx(0.0, abs=1e-9)
    assert float(CrossImageRelationLoss()(f.clone(), f)) == pytest.approx(0.0, abs=1e-6)


def test_boundary_band_by_hand():
    labels = torch.tensor([[[0, 0, 0, 1, 1, 1]] * 3 + [[0, 0, IGNORE, IGNORE, 1, 1]]])
    band = boundary_band(labels, 1, labels != IGNORE)
    # rows 0-2: the two columns beside the 0|1 edge; row 3: its neighbours see one class only
    # (the ignore pixels take no part), and ignore pixels are never in the band
    expected = torch.tensor([[[0, 0, 1, 1, 0, 0]] * 3 + [[0, 0, 0, 0, 0, 0]]], dtype=torch.bool)
    assert torch.equal(band, expected)
    # width 2 widens the band by one column on each side; ignore pixels stay out of it
    band2 = boundary_band(labels, 2, labels != IGNORE)
    assert band2[0, :3].sum(dim=0).tolist() == [0, 3, 3, 3, 3, 0]
    assert not band2[labels == IGNORE].any()
    assert band2[0, 3].tolist() == [False, True, False, False, True, False]


def test_boundary_band_ignore_edge_is_not_a_boundary():
    labels = torch.tensor([[[0, 0, IGNORE, IGNORE]]])
    assert not boundary_band(labels, 1, labels != IGNORE).any()


def test_ce_matches_torch_and_is_zero_when_all_ignored():
    s, labels = torch.randn(2, 4, 3, 5), torch.randint(0, 4, (2, 3, 5))
    labels[0, 0] = IGNORE
    assert float(CrossEntropyLoss()(s, labels)) == pytest.approx(float(F.cross_entropy(s, labels, ignore_index=IGNORE)), rel=1e-6)
    w = torch.tensor([1.0, 2.0, 0.5, 3.0])
    want = F.cross_entropy(s, labels, weight=w, ignore_index=IGNORE)
    assert float(CrossEntropyLoss(class_weights=w.tolist())(s, labels)) == pytest.approx(float(want), rel=1e-6)
    assert float(CrossEntropyLoss()(s, torch.full_like(labels, IGNORE))) == 0.0


# ---------------------------------------------------------------- gradients (float64)
def _gradcheck_cases():
    g = torch.Generator().manual_seed(0)
    t_logits, feat_t = torch.randn(2, 3, 3, 4, generator=g), torch.randn(2, 4, 3, 3, generator=g)
    labels = torch.randint(0, 3, (2, 3, 4), generator=g)
    labels[0, 0, :2] = IGNORE
    logit_shape, feat_shape = (2, 3, 3, 4), (2, 2, 4, 4)  # student features get resized 4×4 → 3×3
    return {
        "kd": (PixelKDLoss(tau=2.0), logit_shape, lambda s, m: m(s, t_logits, labels)),
        "dist": (DISTLoss(tau=2.0), logit_shape, lambda s, m: m(s, t_logits, labels)),
        "bkd": (BoundaryKDLoss(width=1), logit_shape, lambda s, m: m(s, t_logits, labels)),
        "ce": (CrossEntropyLoss(class_weights=[1, 2, 3]), logit_shape, lambda s, m: m(s, labels)),
        "ohem": (OHEMCrossEntropyLoss(thresh=0.6, min_kept=4, class_weights=[1, 2, 3]), logit_shape, lambda s, m: m(s, labels)),
        "cwd_logits": (ChannelWiseLoss(tau=2.0), logit_shape, lambda s, m: m(s, t_logits)),
        "cwd_features": (ChannelWiseLoss(2, 4), feat_shape, lambda s, m: m(s, feat_t)),
        "fitnet": (FitNetLoss(2, 4), feat_shape, lambda s, m: m(s, feat_t)),
        "at": (AttentionTransferLoss(), feat_shape, lambda s, m: m(s, feat_t)),
        "skd": (PairwiseAffinityLoss(pool_kernel=2), feat_shape, lambda s, m: m(s, feat_t)),
        "cirkd": (CrossImageRelationLoss(tau=0.5), feat_shape, lambda s, m: m(s, feat_t)),
    }


@pytest.mark.parametrize("name", sorted(_gradcheck_cases()))
def test_gradcheck_float64(name):
    module, shape, call = _gradcheck_cases()[name]
    module = module.double()
    s = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: call(x, module), (s,), eps=1e-6, atol=1e-5)


# ---------------------------------------------------------------- precision and stability
@pytest.mark.parametrize("name", sorted(_gradcheck_cases()))
def test_float16_autocast_matches_float32(name):
    module, shape, call = _gradcheck_cases()[name]
    s = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = call(s, module)
    s16 = s.half().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.float16):
        value = call(s16, module)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert float(value.detach()) == pytest.approx(float(reference), rel=2e-2, abs=2e-3)
    value.backward()
    assert s16.grad is not None and torch.isfinite(s16.grad).all()


def test_extreme_logits_stay_finite():
    s, t = torch.randn(1, 5, 4, 4) * 1e4, torch.randn(1, 5, 4, 4) * 1e4
    for loss in (PixelKDLoss(), DISTLoss(), ChannelWiseLoss(), BoundaryKDLoss(band_from="teacher")):
        assert torch.isfinite(loss(s, t))
    assert torch.isfinite(CrossEntropyLoss()(s, torch.zeros(1, 4, 4, dtype=torch.long)))


# ---------------------------------------------------------------- spec language and registry
from edgekd.losses import (  # noqa: E402
    DistillationObjective, LossSpec, build_objective, list_losses, parse_specs, register_loss,
)
from edgekd.errors import EdgekdError  # noqa: E402
from edgekd.models.base import SegmentationModel  # noqa: E402

ALL_NAMES = ["at", "bkd", "ce", "cirkd", "cwd", "dist", "fitnet", "kd", "ohem", "skd"]


def test_registry_lists_every_loss_and_refuses_duplicates():
    assert [e.name for e in list_losses()] == ALL_NAMES
    with pytest.raises(ValueError, match="registered twice"):
        register_loss("kd", PixelKDLoss, inputs=["logits"], summary="again")


@pytest.mark.parametrize(
    "text, name, weight, student, teacher, options",
    [
        ("kd:1.0", "kd", 1.0, None, None, {}),
        ("cwd:3", "cwd", 3.0, None, None, {}),
        ("ce", "ce", 1.0, None, None, {}),
        ("fitnet@stage3:0.5", "fitnet", 0.5, "stage3", "stage3", {}),
        (" cwd(tau=4, resize=none) @ stage4/layer4 : 50 ", "cwd", 50.0, "stage4", "layer4", {"tau": 4, "resize": "none"}),
        ("bkd(width=5,band_from=teacher)", "bkd", 1.0, None, None, {"width": 5, "band_from": "teacher"}),
    ],
)
def test_spec_parsing(text, name, weight, student, teacher, options):
    spec = LossSpec.parse(text)
    assert (spec.name, spec.weight, spec.student_feature, spec.teacher_feature, spec.options) == (
        name, weight, student, teacher, options)
    assert LossSpec.parse(str(spec)) == spec  # canonical text round-trips


def test_spec_list_splits_outside_parentheses():
    specs = parse_specs("ce, kd(tau=4,ignore_index=0):1, fitnet@stage3:0.5")
    assert [s.key for s in specs] == ["ce", "kd(ignore_index=0,tau=4)", "fitnet@stage3"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("kdd:1", r"unknown loss 'kdd'\. Did you mean 'kd'\? Valid names: at, bkd, ce, cirkd, cwd, dist, fitnet, kd, ohem, skd"),
        ("fitnett@stage3", "Did you mean 'fitnet'"),
        ("kd:abc", "weight 'abc' is not a number"),
        ("kd:-1", "must be a finite number >= 0"),
        ("kd(temperature=4)", r"unknown option\(s\) temperature; kd accepts tau"),
        ("kd(tau=4", "does not parse"),
        ("kd@stage3", "works on logits only"),
        ("fitnet:1", "compares features: write fitnet@FEATURE"),
        ("fitnet@stage9", "the student has no feature 'stage9'; its features are stage3"),
        ("kd(tau=-1)", "tau=-1 must be > 0"),
        ("fitnet(resize=bicubic)@stage3", "resize mode 'bicubic' is not one of"),
        ("kd,kd:2", "given twice"),
    ],
)
def test_bad_specs_raise_user_errors(text, message):
    with pytest.raises(EdgekdError, match=message):
        DistillationObjective(text, student_channels={"stage3": 4}, teacher_channels={"stage3": 8})


def test_feature_loss_with_adapter_needs_channel_counts():
    with pytest.raises(EdgekdError, match="needs student_channels"):
        DistillationObjective("fitnet@stage3")
    DistillationObjective("at@stage3,skd@stage3")  # no adapter: channel counts are not needed


# ---------------------------------------------------------------- the objective
class TinySeg(SegmentationModel):
    """A real SegmentationModel (the zoo contract) small enough for unit tests."""

    def __init__(self, num_classes: int, width: int, stride: int) -> None:
        super().__init__(num_classes)
        self.stem = torch.nn.Conv2d(3, width, 3, stride=stride, padding=1)
        self.head = torch.nn.Conv2d(width, num_classes, 1)
        self.feature_channels = {"stage3": width}

    def forward_features(self, x):
        feat = torch.relu(self.stem(x))
        return F.interpolate(self.head(feat), size=x.shape[-2:], mode="bilinear"), {"stage3": feat}


def test_objective_trains_student_and_adapters_together():
    torch.manual_seed(0)
    student, teacher = TinySeg(4, 6, stride=4), TinySeg(4, 10, stride=2).eval()
    spec = "ce,kd(tau=2):1,cwd:3,dist:0.5,bkd(width=2):0.5,fitnet@stage3:0.5,at@stage3:100,skd@stage3,cirkd@stage3,cwd(tau=4)@stage3:2"
    objective = DistillationObjective.from_models(spec, student, teacher)
    adapters = dict(objective.named_parameters())
    assert sorted(adapters) == ["losses.5.adapter.bias", "losses.5.adapter.weight",
                                "losses.9.adapter.bias", "losses.9.adapter.weight"]
    assert adapters["losses.5.adapter.weight"].shape == (10, 6, 1, 1)
    x, labels = torch.randn(2, 3, 16, 16), torch.randint(0, 4, (2, 16, 16))
    labels[:, :2] = IGNORE
    optimizer = torch.optim.SGD([*student.parameters(), *objective.parameters()], lr=0.1)
    before = {k: v.detach().clone() for k, v in objective.named_parameters()}
    with torch.no_grad():
        t_out = teacher.forward_features(x)
    total, terms = objective(student.forward_features(x), t_out, labels)
    assert list(terms) == [s.key for s in objective.specs]
    assert float(total.detach()) == pytest.approx(sum(terms.values()), rel=1e-5)
    assert all(math.isfinite(v) and v > 0 for v in terms.values())
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    assert all(not torch.equal(before[k], v) for k, v in objective.named_parameters())
    assert all(p.grad is None for p in teacher.parameters())
    json.dumps(objective.describe())  # ready for checkpoint metadata


def test_teacher_logits_are_resized_to_student_size():
    s, t = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 16, 16)
    total, terms = DistillationObjective("kd(tau=2):2")(s, t)
    want = 2 * PixelKDLoss(tau=2)(s, F.interpolate(t, size=(8, 8), mode="bilinear", align_corners=False))
    assert float(total) == pytest.approx(float(want), rel=1e-6) and terms["kd(tau=2)"] == pytest.approx(float(want), rel=1e-6)
    with pytest.raises(EdgekdError, match="resize='none'"):
        DistillationObjective("kd", teacher_resize="none")(s, t)


def test_objective_input_errors_name_the_problem():
    s, labels = torch.randn(1, 3, 8, 8), torch.randint(0, 3, (1, 8, 8))
    with pytest.raises(EdgekdError, match="number of classes must match"):
        DistillationObjective("kd")(s, torch.randn(1, 5, 8, 8))
    with pytest.raises(EdgekdError, match="kd need the teacher's output"):
        DistillationObjective("ce,kd")(s, None, labels)
    with pytest.raises(EdgekdError, match="no feature 'stage3'"):
        DistillationObjective("at@stage3")((s, {"stage3": s}), (s, {"other": s}))
    with pytest.raises(EdgekdError, match="labels of shape"):
        DistillationObjective("ce")(s, None, labels[:, :4])
    total, terms = DistillationObjective("ce")(s, None, labels)  # supervised only: no teacher needed
    assert float(total) == pytest.approx(float(F.cross_entropy(s, labels)), rel=1e-6)


def test_run_wide_temperature_sets_logit_taus_unless_given():
    objective = build_objective("ce,kd,dist(tau=2),cwd@stage3,cirkd@stage3", student=TinySeg(3, 4, 2),
                                teacher=TinySeg(3, 8, 2), temperature=4.0)
    taus = [getattr(loss, "tau", None) for loss in objective.losses]
    assert taus == [None, 4.0, 2.0, 4.0, 0.1]  # CIRKD's similarity temperature keeps its own default
    assert objective.describe()[1]["options"] == {"tau": 4.0}
    assert objective.weights_dict() == {"ce": 1.0, "kd": 1.0, "dist(tau=2)": 1.0, "cwd@stage3": 1.0, "cirkd@stage3": 1.0}
    assert objective.uses_teacher_features and not build_objective("ce,kd", student=TinySeg(3, 4, 2)).uses_teacher_features


def test_objective_under_bfloat16_and_float16_autocast():
    s, t = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    feats = {"stage3": torch.randn(2, 4, 4, 4)}
    objective = DistillationObjective("kd:1,cwd:3,fitnet@stage3", student_channels={"stage3": 4},
                                      teacher_channels={"stage3": 4})
    with torch.no_grad():
        reference, _ = objective((s, feats), (t, feats))
    for dtype in (torch.bfloat16, torch.float16):
        with torch.autocast("cpu", dtype=dtype):
            total, _ = objective((s.to(dtype), feats), (t.to(dtype), feats))
        assert total.dtype == torch.float32 and float(total.detach()) == pytest.approx(float(reference), rel=3e-2)


# ---------------------------------------------------------------- KD evaluation metrics
def test_kd_metrics_by_hand():
    assert kd_metrics.relative_error(student_miou=0.6, teacher_miou=0.8) == pytest.approx(2.0)
    assert kd_metrics.distillation_factor(6_200_000, 890_000) == pytest.approx(6.2 / 0.89)
    with pytest.raises(EdgekdError, match="pass fractions: 0.6554"):
        kd_metrics.relative_error(65.54, 0.7)
    with pytest.raises(EdgekdError, match="must be positive"):
        kd_metrics.distillation_factor(10, 0)
    assert kd_metrics.count_parameters(torch.nn.Conv2d(3, 4, 1)) == 16
    s = torch.zeros(1, 2, 1, 1)
    t = torch.tensor([math.log(3.0), 0.0]).view(1, 2, 1, 1)
    assert kd_metrics.teacher_student_kl(t, s) == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))


def test_kd_metrics_against_numpy_and_accumulation():
    g = torch.Generator().manual_seed(3)
    t, s = torch.randn(2, 4, 3, 5, generator=g), torch.randn(2, 4, 3, 5, generator=g)
    labels = torch.randint(0, 4, (2, 3, 5), generator=g)
    labels[1, 0] = IGNORE
    keep = (labels != IGNORE).numpy()
    pt, ps = (np_softmax(v.double().numpy(), 1).transpose(0, 2, 3, 1)[keep] for v in (t, s))
    assert kd_metrics.teacher_student_kl(t, s, labels) == pytest.approx(ref_kd(s.numpy(), t.numpy(), labels.numpy(), 1.0), rel=1e-6)
    assert kd_metrics.probability_correlation(t, s, labels) == pytest.approx(np.corrcoef(pt.ravel(), ps.ravel())[0, 1], rel=1e-9)
    assert kd_metrics.probability_correlation(t, t) == pytest.approx(1.0)
    acc = kd_metrics.KDAgreement()
    for n in range(2):  # batch-by-batch accumulation equals the whole-set value
        acc.update(t[n:n + 1], s[n:n + 1], labels[n:n + 1])
    assert acc.kl() == pytest.approx(kd_metrics.teacher_student_kl(t, s, labels), rel=1e-9)
    assert acc.pearson() == pytest.approx(kd_metrics.probability_correlation(t, s, labels), rel=1e-9)


if __name__ == "__main__" and "--regenerate" in sys.argv:
    regenerate()
    print(f"wrote {INPUTS} and {EXPECTED}")
