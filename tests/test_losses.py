"""The pure loss functions against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from gad.training.losses import bradley_terry_loss, discriminator_accuracy, group_advantages, kl_k3


def test_bradley_terry_by_hand():
    t = torch.tensor([2.0, 0.0, -1.0])
    s = torch.tensor([1.0, 0.0, 1.0])
    # -log sigmoid(d) = log(1 + e^-d) for d = 1, 0, -2
    expected = (math.log(1 + math.exp(-1)) + math.log(2) + math.log(1 + math.exp(2))) / 3
    assert bradley_terry_loss(t, s).item() == pytest.approx(expected, rel=1e-6)


def test_bradley_terry_is_finite_for_huge_gaps_and_pushes_the_right_way():
    t = torch.tensor([0.0], requires_grad=True)
    s = torch.tensor([0.0], requires_grad=True)
    bradley_terry_loss(t, s).backward()
    assert t.grad.item() == pytest.approx(-0.5) and s.grad.item() == pytest.approx(0.5)
    assert math.isfinite(bradley_terry_loss(torch.tensor([-500.0]), torch.tensor([500.0])).item())


def test_bradley_terry_shape_check():
    with pytest.raises(ValueError, match="one shape"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(3))


def test_accuracy():
    assert discriminator_accuracy(torch.tensor([1.0, 0.0, 3.0, 2.0]), torch.tensor([0.0, 0.0, 1.0, 5.0])).item() == 0.5


def test_group_advantages_by_hand():
    r = torch.tensor([1.0, 2.0, 3.0, 10.0, 10.0, 10.0])
    a = group_advantages(r, 3, eps=0.0)
    # group 1: mean 2, unbiased std 1 -> -1, 0, 1; group 2: zero variance -> 0 (with eps)
    assert a[:3].tolist() == pytest.approx([-1.0, 0.0, 1.0])
    assert group_advantages(r, 3)[3:].tolist() == [0.0, 0.0, 0.0]
    assert group_advantages(r, 3, scale=False).tolist() == pytest.approx([-1, 0, 1, 0, 0, 0])
    with pytest.raises(ValueError):
        group_advantages(r, 4)


def test_kl_k3_by_hand():
    logp = torch.tensor([-1.0, -2.0])
    ref = torch.tensor([-1.0, -1.0])
    assert kl_k3(logp, ref).tolist() == pytest.approx([0.0, math.e - 2])
