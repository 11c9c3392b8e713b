"""Class-balanced and OHEM cross-entropy: hand-computed values, weights from labels, bad options."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from edgekd.data.io import write_png
from edgekd.losses import DistillationObjective
from edgekd.losses import CrossEntropyLoss, OHEMCrossEntropyLoss, class_weights_from_counts
from edgekd.errors import EdgekdError
from edgekd.training.class_balance import class_weights_for, label_counts

IGNORE = 255
LN2 = math.log(2.0)


def _two_class_row():
    """1×2×1×4 logits with true-class probabilities 0.9, 0.5, 0.25 and an ignored pixel.

    Class 1's logit is 0, class 0's is a, so p(class 0) = 1/(1+e^-a): a = ln 9 → 0.9, a = 0 → 0.5,
    a = −ln 3 → 0.25. Pixel 1 is labelled class 1 (p = 0.5 as well); pixel 3 (the hardest) is void.
    """
    a = torch.tensor([math.log(9.0), 0.0, -math.log(3.0), -5.0])
    logits = torch.stack([a, torch.zeros(4)]).view(1, 2, 1, 4)
    labels = torch.tensor([[[0, 1, 0, IGNORE]]])
    return logits, labels


@pytest.mark.parametrize(
    "thresh, min_kept, expected",
    [
        (0.7, 0, (LN2 + 2 * LN2) / 2),                           # p 0.5 and 0.25 pass; 0.9 and void do not
        (0.7, 3, (math.log(10 / 9) + LN2 + 2 * LN2) / 3),        # topped up to the 3 hardest valid pixels
        (0.3, 1, 2 * LN2),                                       # only p = 0.25 passes, 1 >= min_kept
        (0.2, 1, 2 * LN2),                                       # none passes: the single hardest valid pixel
        (0.7, 99, (math.log(10 / 9) + LN2 + 2 * LN2) / 3),       # min_kept beyond |V| keeps all valid pixels
        (1.0, 0, (math.log(10 / 9) + LN2 + 2 * LN2) / 3),        # thresh 1 is plain CE over valid pixels
    ],
)
def test_ohem_by_hand(thresh, min_kept, expected):
    logits, labels = _two_class_row()
    assert float(OHEMCrossEntropyLoss(thresh=thresh, min_kept=min_kept)(logits, labels)) == pytest.approx(expected, rel=1e-6)


def test_ohem_class_weighted_by_hand_and_void_batch_is_zero():
    logits, labels = _two_class_row()
    # kept: pixel 1 (class 1, w 1, −ln p = ln 2) and pixel 2 (class 0, w 2, −ln p = ln 4)
    loss = OHEMCrossEntropyLoss(thresh=0.7, min_kept=0, class_weights=[2.0, 1.0])
    assert float(loss(logits, labels)) == pytest.approx((1 * LN2 + 2 * 2 * LN2) / 3, rel=1e-6)
    void = torch.full_like(labels, IGNORE)
    value = OHEMCrossEntropyLoss()(logits.requires_grad_(True), void)
    assert float(value.detach()) == 0.0
    value.backward()  # a live graph even when nothing is kept


def test_ohem_at_thresh_one_equals_ce_and_gradient_skips_easy_pixels():
    g = torch.Generator().manual_seed(0)
    s, labels = torch.randn(2, 3, 4, 5, generator=g), torch.randint(0, 3, (2, 4, 5), generator=g)
    labels[0, 0] = IGNORE
    assert float(OHEMCrossEntropyLoss(thresh=1.0, min_kept=0)(s, labels)) == pytest.approx(float(CrossEntropyLoss()(s, labels)), rel=1e-6)
    logits, labels = _two_class_row()
    logits.requires_grad_(True)
    OHEMCrossEntropyLoss(thresh=0.7, min_kept=0)(logits, labels).backward()
    assert logits.grad[0, :, 0, 0].abs().sum() == 0 and logits.grad[0, :, 0, 3].abs().sum() == 0  # easy + void
    assert logits.grad[0, :, 0, 1].abs().sum() > 0


def test_ce_with_class_weights_by_hand():
    logits, labels = _two_class_row()
    # all three valid pixels, weights [2, 1]: (2·ln(10/9) + 1·ln 2 + 2·ln 4) / (2 + 1 + 2)
    loss = CrossEntropyLoss(class_weights=[2.0, 1.0])
    assert float(loss(logits, labels)) == pytest.approx((2 * math.log(10 / 9) + LN2 + 4 * LN2) / 5, rel=1e-6)


def test_class_weights_from_counts_by_hand():
    # pixels per class 5, 3, 1, 0 (9 valid); images holding each class: 12, 12, 6, 0 pixels
    enet = class_weights_from_counts([5, 3, 1, 0], method="enet")
    assert enet == pytest.approx([1 / math.log(1.02 + 5 / 9), 1 / math.log(1.02 + 3 / 9), 1 / math.log(1.02 + 1 / 9),
                                  1 / math.log(1.02)])
    # f = 5/12, 3/12, 1/6 (class 3 absent); median 3/12 → w = 3/5, 1, 3/2, and 0 for the absent class
    median = class_weights_from_counts([5, 3, 1, 0], [12, 12, 6, 0], method="median")
    assert median == pytest.approx([0.6, 1.0, 1.5, 0.0])


def _mask_dataset(tmp_path):
    masks = [np.array([[0, 0, 0], [0, 1, IGNORE]], np.uint8), np.array([[0, 1, 1], [2, IGNORE, IGNORE]], np.uint8)]
    pairs = []
    for i, mask in enumerate(masks):
        write_png(tmp_path / f"m{i}.png", mask, rgb=False)
        pairs.append((tmp_path / f"i{i}.png", tmp_path / f"m{i}.png"))
    info = SimpleNamespace(num_classes=4, ignore_index=IGNORE)
    return SimpleNamespace(info=info, pairs=pairs, split="train", split_hash=lambda: "f" * 64)


def test_class_weights_from_label_files(tmp_path):
    dataset = _mask_dataset(tmp_path)
    pixels, present = label_counts(dataset)
    assert pixels.tolist() == [5, 3, 1, 0] and present.tolist() == [12, 12, 6, 0]
    record = class_weights_for(dataset, "median")
    assert record["values"] == pytest.approx([0.6, 1.0, 1.5, 0.0]) and record["split"] == "train"
    assert record["pixel_counts"] == [5, 3, 1, 0] and record["method"] == "median"


def test_objective_passes_class_weights_to_ce_and_ohem():
    logits, labels = _two_class_row()
    objective = DistillationObjective("ce,ohem(thresh=0.7,min_kept=0)", class_weights=[2.0, 1.0])
    _, terms = objective(logits, None, labels)
    assert terms["ce"] == pytest.approx((2 * math.log(10 / 9) + 5 * LN2) / 5, rel=1e-6)
    assert terms["ohem(min_kept=0,thresh=0.7)"] == pytest.approx(5 * LN2 / 3, rel=1e-6)


@pytest.mark.parametrize(
    "text, message",
    [
        ("ohem(thresh=0)", r"ohem: thresh=0 must be a probability in \(0, 1\]"),
        ("ohem(thresh=1.5)", r"thresh=1.5 must be a probability"),
        ("ohem(thresh=high)", r"thresh='high' must be a probability"),
        ("ohem(min_kept=-1)", r"min_kept=-1 must be a whole number of pixels >= 0"),
        ("ohem(min_kept=2.5)", r"min_kept=2.5 must be a whole number"),
        ("ohem(keep=5)", r"unknown option\(s\) keep; ohem accepts thresh, min_kept"),
        ("ohem(class_weights=1)", r"unknown option\(s\) class_weights"),  # supplied by --class-weights only
    ],
)
def test_bad_ohem_options_are_one_line_errors(text, message):
    with pytest.raises(EdgekdError, match=message) as err:
        DistillationObjective(text)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: class_weights_from_counts([1, 2], method="inverse"), r"'inverse' is not one of enet, median"),
        (lambda: class_weights_from_counts([0, 0], method="enet"), "at least one labelled pixel"),
        (lambda: class_weights_from_counts([1, -2], method="enet"), "must be >= 0"),
        (lambda: class_weights_from_counts([1, 2], method="median"), "need, per class, the pixel count"),
        (lambda: CrossEntropyLoss(class_weights=[1.0, float("nan")]), "finite values >= 0"),
        (lambda: OHEMCrossEntropyLoss(class_weights=[1.0, -1.0]), "ohem: class_weights"),
        (lambda: CrossEntropyLoss(class_weights=[1.0, 2.0, 3.0])(*_two_class_row()), "3 class weights for 2 classes"),
    ],
)
def test_bad_class_weights_are_one_line_errors(call, message):
    with pytest.raises(EdgekdError, match=message) as err:
        call()
    assert "\n" not in str(err.value)
