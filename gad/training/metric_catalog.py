"""The named metrics a run records, defined once: name, title, unit, panel and what it means.

The trainers write these names into metrics.jsonl (and the studio's database), the dashboard and
curves.png draw them panel by panel, the alarms read them. A metric TRL logs that is not listed here
is still stored and can be plotted by name; it just has no panel of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class M(StrEnum):
    """Metric names: code spells a metric as M.NAME (a typo fails at import), the catalog below describes it."""

    DISC_EVAL_ACCURACY = "disc_eval_accuracy"
    DISC_EVAL_IDENTICAL = "disc_eval_identical"
    DISC_EVAL_RHO_LOGRATIO = "disc_eval_rho_logratio"
    DISC_EVAL_RHO_TEACHER = "disc_eval_rho_teacher"
    DISC_EVAL_SPREAD = "disc_eval_spread"
    DISC_EVAL_MARGIN = "disc_eval_margin"
    DISC_EVAL_TIME = "disc_eval_time"
    DISC_LOSS = "disc_loss"
    DISC_ACCURACY = "disc_accuracy"
    DISC_IDENTICAL = "disc_identical"
    DISC_TEACHER_SCORE = "disc_teacher_score"
    DISC_STUDENT_SCORE = "disc_student_score"
    REWARD_MEAN = "reward_mean"
    REWARD_STD = "reward_std"
    KL = "kl"
    STUDENT_LENGTH = "student_length"
    TEACHER_LENGTH = "teacher_length"
    LOSS = "loss"
    LR = "lr"
    DISC_LR = "disc_lr"
    GRAD_NORM = "grad_norm"
    DISC_GRAD_NORM = "disc_grad_norm"
    STEP_TIME = "step_time"


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    axis: str        # the y-axis label


@dataclass(frozen=True)
class Metric:
    name: str
    title: str
    unit: str
    panel: str | None  # Panel.key, or None: stored but not drawn in a panel of its own
    help: str = ""


# Reading order of the run page and curves.png.
PANELS: tuple[Panel, ...] = (
    Panel("disc_quality", "Discriminator quality (held-out)", "share of pairs"),
    Panel("disc_loss", "Discriminator loss", "Bradley-Terry loss"),
    Panel("disc_accuracy", "Discriminator accuracy", "share of pairs"),
    Panel("disc_scores", "D(teacher) vs D(student)", "mean score"),
    Panel("reward", "Reward (mean, std)", "reward"),
    Panel("kl", "KL to reference", "nats / token"),
    Panel("length", "Response length: student vs teacher", "tokens"),
    Panel("loss", "Generator loss", "loss"),
    Panel("lr", "Learning rates", "learning rate"),
    Panel("grad_norm", "Gradient norms", "norm"),
    Panel("step_time", "Step time", "seconds"),
)

METRICS: tuple[Metric, ...] = (
    # the held-out monitor (gad/training/monitor.py), every disc_eval_every steps
    Metric(M.DISC_EVAL_ACCURACY, "held-out accuracy", "share", "disc_quality",
           "share of distinct held-out (teacher, student) pairs D orders correctly, ties half: 0.5 is chance"),
    Metric(M.DISC_EVAL_IDENTICAL, "identical to teacher", "share", "disc_quality",
           "share of held-out student samples equal to the teacher's response (no D can separate those)"),
    Metric(M.DISC_EVAL_RHO_LOGRATIO, "rho(D, log pT - log pS)", "rank corr.", "disc_quality",
           "white-box only: per-prompt Spearman of D's score with what a Bradley-Terry D converges to"),
    Metric(M.DISC_EVAL_RHO_TEACHER, "rho(D, log pT)", "rank corr.", None,
           "white-box only: per-prompt Spearman of D's score with the teacher's log-likelihood"),
    Metric(M.DISC_EVAL_SPREAD, "held-out score spread", "score", None, "std of D's held-out scores (0: a constant D)"),
    Metric(M.DISC_EVAL_MARGIN, "held-out margin", "score", None, "mean D(teacher) - D(student) over distinct pairs"),
    Metric(M.DISC_EVAL_TIME, "check time", "s", None, "seconds one held-out check took"),
    # the discriminator's training
    Metric(M.DISC_LOSS, "D loss", "loss", "disc_loss", "Bradley-Terry loss on this step's pairs"),
    Metric(M.DISC_ACCURACY, "D accuracy", "share", "disc_accuracy",
           "share of this step's distinct pairs D orders correctly (identical pairs left out)"),
    Metric(M.DISC_IDENTICAL, "identical pairs", "share", None,
           "share of this step's student samples equal to the teacher's response"),
    Metric(M.DISC_TEACHER_SCORE, "D(teacher)", "score", "disc_scores"),
    Metric(M.DISC_STUDENT_SCORE, "D(student)", "score", "disc_scores"),
    # the policy
    Metric(M.REWARD_MEAN, "reward mean", "reward", "reward"),
    Metric(M.REWARD_STD, "reward std", "reward", "reward"),
    Metric(M.KL, "KL", "nats/token", "kl", "k3 estimate of KL to the stage's reference policy"),
    Metric(M.STUDENT_LENGTH, "student length", "tokens", "length"),
    Metric(M.TEACHER_LENGTH, "teacher length", "tokens", "length"),
    Metric(M.LOSS, "generator loss", "loss", "loss"),
    Metric(M.LR, "policy lr", "lr", "lr"),
    Metric(M.DISC_LR, "D lr", "lr", "lr"),
    Metric(M.GRAD_NORM, "policy grad norm", "norm", "grad_norm"),
    Metric(M.DISC_GRAD_NORM, "D grad norm", "norm", "grad_norm"),
    Metric(M.STEP_TIME, "step time", "s", "step_time"),
)

BY_NAME = {m.name: m for m in METRICS}


def panel_metrics(key: str) -> list[str]:
    """The metric names drawn in panel `key`, in catalog order."""
    return [m.name for m in METRICS if m.panel == key]


def panels() -> list[tuple[str, list[str], str]]:
    """(title, metric names, y-axis label) per panel, in reading order."""
    return [(p.title, panel_metrics(p.key), p.axis) for p in PANELS]
