"""The discriminator-quality monitor: hand-computed figures, the at-chance alarm, a real tiny run."""

from __future__ import annotations

import math

import pytest
import torch

from gad.training.discriminator import Group, identical_pairs
from gad.training.health import run_alarms
from gad.training.losses import pairwise_accuracy, spearman
from gad.training.monitor import quality_metrics


def test_identical_pairs_are_counted_apart_not_as_errors():
    # 4 pairs; pair 2 is the teacher's own response (identical), so D gives both the same score.
    t = torch.tensor([1.0, 1.0, 1.0, 1.0])
    s = torch.tensor([0.0, 1.0, 2.0, 1.0])
    same = torch.tensor([False, True, False, False])
    # distinct pairs: win, loss, tie -> (1 + 0 + 0.5) / 3
    assert float(pairwise_accuracy(t, s, same)) == pytest.approx(1.5 / 3)
    # the old definition (teacher > student over all pairs) would say 1/4
    assert float((t > s).float().mean()) == 0.25


def test_perfect_reversed_and_constant_discriminators():
    teacher = [2.0, 3.0]
    student = [[0.0, 1.0], [-1.0, 0.5]]
    none_same = [[False, False], [False, False]]
    perfect = quality_metrics(teacher, student, none_same)
    assert perfect["disc_eval_accuracy"] == 1.0
    assert perfect["disc_eval_margin"] == pytest.approx(((2 - 0) + (2 - 1) + (3 + 1) + (3 - 0.5)) / 4)
    reversed_ = quality_metrics([-x for x in teacher], [[-x for x in r] for r in student], none_same)
    assert reversed_["disc_eval_accuracy"] == 0.0
    constant = quality_metrics([0.7, 0.7], [[0.7, 0.7], [0.7, 0.7]], none_same)
    assert constant["disc_eval_accuracy"] == 0.5 and constant["disc_eval_spread"] == pytest.approx(0.0, abs=1e-12)
    assert constant["disc_eval_identical"] == 0.0


def test_all_identical_gives_no_accuracy_but_reports_the_share():
    m = quality_metrics([1.0], [[1.0, 1.0, 0.0]], [[True, True, False]])
    assert m["disc_eval_identical"] == pytest.approx(2 / 3)
    assert m["disc_eval_accuracy"] == 1.0         # the one distinct pair: teacher 1.0 > student 0.0
    m = quality_metrics([1.0], [[1.0, 1.0]], [[True, True]])
    assert math.isnan(m["disc_eval_accuracy"]) and math.isnan(m["disc_eval_margin"])
    assert m["disc_eval_identical"] == 1.0


def test_rank_correlation_with_the_log_ratio_and_with_log_p_teacher():
    # A perfect Bradley-Terry D scores log pT - log pS exactly: rho with the ratio is 1, with log pT it need not be.
    logp_t = [[-1.0, -2.0, -3.0, -4.0]]
    logp_s = [[-0.5, -3.5, -0.2, -9.0]]
    ratio = [a - b for a, b in zip(logp_t[0], logp_s[0])]   # -0.5, 1.5, -2.8, 5.0
    m = quality_metrics([10.0], [ratio], [[False] * 4], logp_t, logp_s)
    assert m["disc_eval_rho_logratio"] == pytest.approx(1.0)
    # ranks of ratio: 2, 3, 1, 4; of log pT: 4, 3, 2, 1 -> rho = 1 - 6 * sum(d^2) / (n (n^2 - 1))
    d2 = (2 - 4) ** 2 + (3 - 3) ** 2 + (1 - 2) ** 2 + (4 - 1) ** 2
    assert m["disc_eval_rho_teacher"] == pytest.approx(1 - 6 * d2 / (4 * 15))


def test_spearman_handles_ties_and_constants():
    assert spearman(torch.tensor([1.0, 2.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 2.0, 3.0])) == pytest.approx(1.0)
    assert math.isnan(spearman(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 2.0])))


def test_group_marks_samples_equal_to_the_teacher():
    g = Group([1, 2], [5, 6], True, [([5, 6], True), ([5, 6], False), ([5], True)])
    assert g.identical() == [True, False, False]
    assert identical_pairs([g, g]).tolist() == [True, False, False] * 2


def _evals(accs, start=25):
    return [{"step": start + 25 * i, "stage": "adversarial", "disc_eval_accuracy": a} for i, a in enumerate(accs)]


def test_alarm_fires_on_a_constant_discriminator_and_not_on_a_learning_one():
    constant = _evals([0.5, 0.5, 0.5])
    kinds = {a.kind for a in run_alarms(constant)}
    assert "disc_at_chance" in kinds
    message = next(a.message for a in run_alarms(constant) if a.kind == "disc_at_chance")
    assert "not better than chance" in message and "disc_warmup_steps" in message
    assert "disc_at_chance" not in {a.kind for a in run_alarms(_evals([0.5, 0.52, 0.8]))}
    assert "disc_at_chance" not in {a.kind for a in run_alarms(_evals([0.5, 0.5]))}  # too few checks yet
    # checks where every sample equalled the teacher's carry no accuracy and do not count
    assert "disc_at_chance" not in {a.kind for a in run_alarms(_evals([0.5, None, 0.5]))}


# ----------------------------------------------------------------------------------------------
# Real tiny runs
# ----------------------------------------------------------------------------------------------
def _small(tiny_model, pairs_file, out, **kw):
    from gad.training.config import RunConfig

    base = dict(student=str(tiny_model), data=str(pairs_file), output=str(out), batch_size=2, group_size=4,
                max_new_tokens=8, max_prompt_length=48, warmup_steps=2, steps=4, disc_only_steps=1,
                save_steps=2, sample_every=2, lr=1e-4, warmup_lr=1e-4, disc_lr=1e-3, test_fraction=0.25,
                disc_eval_every=2, disc_eval_prompts=3, disc_eval_samples=2)
    base.update(kw)
    return RunConfig(**base)


@pytest.mark.slow
def test_gad_run_records_held_out_checks_and_freezes_the_policy_during_disc_warmup(tiny_model, pairs_file, tmp_path):
    from gad.training.pipeline import run
    from gad.training.rundir import list_checkpoints
    from tests.conftest import read_jsonl
    from tests.test_training import changed, weights

    cfg = _small(tiny_model, pairs_file, tmp_path / "run", disc_warmup_steps=2, monitor_teacher=str(tiny_model))
    assert run(cfg).status == "succeeded"
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    checked = [m["step"] for m in metrics if "disc_eval_accuracy" in m]
    assert checked == [2, 4, 6]
    for m in metrics:
        if m["step"] in checked:
            assert 0.0 <= m["disc_eval_identical"] <= 1.0 and m["disc_eval_spread"] >= 0.0
            assert m["disc_eval_accuracy"] is None or 0.0 <= m["disc_eval_accuracy"] <= 1.0
            assert "disc_eval_rho_logratio" in m and "disc_eval_rho_teacher" in m  # white-box teacher given
        assert m.get("disc_identical") is None or 0.0 <= m["disc_identical"] <= 1.0
    adversarial = [m for m in metrics if m["stage"] == "adversarial"]
    assert [("loss" in m) for m in adversarial] == [False, False, True, True]  # 2 D-only steps, then the policy
    ckpts = {s: p for s, p, _ in list_checkpoints(tmp_path / "run")}
    assert not changed(weights(ckpts[2] / "student"), weights(ckpts[4] / "student"))   # policy frozen
    assert changed(weights(ckpts[2] / "discriminator"), weights(ckpts[4] / "discriminator"))
    assert changed(weights(ckpts[4] / "student"), weights(ckpts[6] / "student"))


@pytest.mark.slow
def test_disc_warmup_ends_early_once_the_target_is_reached(tiny_model, pairs_file, tmp_path):
    from gad.training.pipeline import run
    from tests.conftest import read_jsonl

    # Target 0.51: reached at the first check unless D is at or below chance, so the policy starts early.
    cfg = _small(tiny_model, pairs_file, tmp_path / "run", disc_warmup_steps=3, disc_warmup_target=0.51,
                 disc_eval_every=1, disc_lr=1e-2)
    run(cfg)
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    adversarial = [m for m in metrics if m["stage"] == "adversarial"]
    first_policy = next((i for i, m in enumerate(adversarial) if "loss" in m), None)
    reached = [m["step"] for m in metrics if m["stage"] == "adversarial"
               and (m.get("disc_eval_accuracy") or 0) >= 0.51]
    if reached and reached[0] - 2 < 3:
        # the check runs after the step: the policy trains from the next step on
        assert first_policy == reached[0] - 2
    else:
        assert first_policy == 3


def test_the_disc_step_can_repeat_and_still_returns_pre_update_scores(tiny_model):
    from gad.training.config import RunConfig
    from gad.training.discriminator import Discriminator
    from gad.training.modeling import load_discriminator, load_tokenizer, token_info

    cfg = RunConfig(student=str(tiny_model), data="x", output="y")
    tok = load_tokenizer(str(tiny_model))
    info = token_info(tok, str(tiny_model))
    groups = [Group([1, 2, 3], [4, 5], True, [([6, 7], True), ([4, 5], True), ([8], False)])]

    def trained(repeats):
        model = load_discriminator(str(tiny_model), cfg, info.pad_id, fresh_head_seed=0)
        d = Discriminator(model, info, lr=1e-2, weight_decay=0.0, grad_clip=1.0)
        scores, metrics = d.step(groups, repeats=repeats)
        return scores, metrics, d.checksum()

    s1, m1, c1 = trained(1)
    s2, m2, c2 = trained(2)
    assert s1[0] == pytest.approx(s2[0]) and m1["disc_loss"] == pytest.approx(m2["disc_loss"])
    assert c1 != c2                                        # the second update moved D further
    assert m1["disc_identical"] == pytest.approx(1 / 3)    # the second sample is the teacher's response


def test_a_fork_takes_the_parents_discriminator_unless_asked_for_a_fresh_one(tmp_path):
    from gad.training.config import RunConfig
    from gad.training.pipeline import discriminator_source

    def ckpt(step, with_disc=True):
        path = tmp_path / "checkpoints" / f"step-{step}"
        (path / "student").mkdir(parents=True, exist_ok=True)
        if with_disc:
            (path / "discriminator").mkdir(exist_ok=True)
        return path

    parent, own = ckpt(10), ckpt(12)
    cfg = RunConfig(student="s", data="d", output="o")
    fresh = RunConfig(student="s", data="d", output="o", fork_discriminator="fresh")
    assert discriminator_source(cfg, None, parent, fork_step=10) == parent / "discriminator"
    assert discriminator_source(fresh, None, parent, fork_step=10) is None
    # a checkpoint the fork wrote itself (after its fork point) always keeps its D
    assert discriminator_source(fresh, own, parent, fork_step=10) == own / "discriminator"
    # not a fork: always the checkpoint's D
    assert discriminator_source(fresh, None, parent, fork_step=None) == parent / "discriminator"
    assert discriminator_source(cfg, None, ckpt(4, with_disc=False), fork_step=None) is None
