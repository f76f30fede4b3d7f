"""The toy experiment's pieces on known values, and a short run where GAD's reverse KL falls."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gad.cli import main
from gad.toy.experiment import (
    ToySettings,
    discriminator_loss,
    fit_gad,
    fit_seqkd,
    kl,
    main_mode_outcomes,
    reinforce_loss,
    student_logprobs,
    summarise,
    teacher_distribution,
)


def test_teacher_and_student_are_distributions():
    t = teacher_distribution(((2, 0.6, 0.7), (7, 0.6, 0.3)))
    assert t.sum().item() == pytest.approx(1.0) and int(t.argmax()) == 2
    s = student_logprobs(torch.tensor(4.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)).exp()
    assert s.sum().item() == pytest.approx(1.0) and int(s.argmax()) == 4
    assert main_mode_outcomes(((2, 0.6, 0.7), (7, 0.6, 0.3))) == [0, 1, 2, 3, 4]


def test_discriminator_loss_by_hand():
    scores = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    # one prompt, teacher outcome 2 vs students 0 and 1: gaps 2 and 1
    loss = discriminator_loss(scores, torch.tensor([2]), torch.tensor([0, 1]), group=2)
    assert loss.item() == pytest.approx((math.log1p(math.exp(-2)) + math.log1p(math.exp(-1))) / 2)


def test_reinforce_gradient_by_hand():
    # Two outcomes, uniform student; samples [0, 1] with rewards [1, 0] -> advantages [0.5, -0.5]
    logits = torch.zeros(2, requires_grad=True)
    logprobs = torch.log_softmax(logits, 0)
    loss = reinforce_loss(logprobs, torch.tensor([0, 1]), torch.tensor([1.0, 0.0]), group=2, scale=False)
    loss.backward()
    # d/dlogit_0 of -(0.5*logp0 - 0.5*logp1)/2 = -(0.5*(1-0.5) - 0.5*(-0.5))/2 = -0.25
    assert logits.grad.tolist() == pytest.approx([-0.25, 0.25])


def test_kl_is_zero_only_for_equal_distributions():
    t = teacher_distribution(((2, 0.6, 0.7), (7, 0.6, 0.3)))
    assert kl(t, t) == pytest.approx(0.0, abs=1e-12)
    assert kl(t, torch.full((10,), 0.1, dtype=torch.float64)) > 0.1


def test_gad_reverse_kl_falls_and_it_beats_seqkd_there():
    s = ToySettings(steps=300, mu0=3.0, seed=0)
    trace: list = []
    modes = s.teacher
    gad = summarise(*fit_gad(s, trace), modes)
    seqkd = summarise(*fit_seqkd(s), modes)
    assert trace[-1]["reverse_kl"] < trace[0]["reverse_kl"] - 0.3
    assert gad["reverse_kl"] < seqkd["reverse_kl"]          # mode-seeking
    assert seqkd["forward_kl"] < gad["forward_kl"]          # mode-covering
    assert gad["main_mode_mass"] > 0.9


def test_toy_cli_writes_json_and_png(tmp_path, capsys):
    assert main(["toy", "--seed", "0", "--steps", "60", "--output", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "toy.json").read_text())
    for key in ("seqkd", "gad"):
        assert {"forward_kl", "reverse_kl", "main_mode_mass", "distribution"} <= set(data[key])
        assert len(data[key]["distribution"]) == 10
    assert data["sensitivity"] and (tmp_path / "toy.png").read_bytes()[:4] == b"\x89PNG"
    assert "reverse KL" in capsys.readouterr().out


def test_bad_teacher_modes_exit_2(tmp_path):
    assert main(["toy", "--teacher-modes", "2:0.5", "--output", str(tmp_path)]) == 2
