"""The named metrics a run records, defined once: name, title, unit, panel and what it means.

The trainers write these names into metrics.jsonl (and the studio's database), the dashboard and
curves.png draw them panel by panel, the alarms read them. A metric TRL logs that is not listed here
is still stored and can be plotted by name; it just has no panel of its own.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    # the held-out monitor (gad/monitor.py), every disc_eval_every steps
    Metric("disc_eval_accuracy", "held-out accuracy", "share", "disc_quality",
           "share of distinct held-out (teacher, student) pairs D orders correctly, ties half: 0.5 is chance"),
    Metric("disc_eval_identical", "identical to teacher", "share", "disc_quality",
           "share of held-out student samples equal to the teacher's response (no D can separate those)"),
    Metric("disc_eval_rho_logratio", "rho(D, log pT - log pS)", "rank corr.", "disc_quality",
           "white-box only: per-prompt Spearman of D's score with what a Bradley-Terry D converges to"),
    Metric("disc_eval_rho_teacher", "rho(D, log pT)", "rank corr.", None,
           "white-box only: per-prompt Spearman of D's score with the teacher's log-likelihood"),
    Metric("disc_eval_spread", "held-out score spread", "score", None, "std of D's held-out scores (0: a constant D)"),
    Metric("disc_eval_margin", "held-out margin", "score", None, "mean D(teacher) - D(student) over distinct pairs"),
    Metric("disc_eval_time", "check time", "s", None, "seconds one held-out check took"),
    # the discriminator's training
    Metric("disc_loss", "D loss", "loss", "disc_loss", "Bradley-Terry loss on this step's pairs"),
    Metric("disc_accuracy", "D accuracy", "share", "disc_accuracy",
           "share of this step's distinct pairs D orders correctly (identical pairs left out)"),
    Metric("disc_identical", "identical pairs", "share", None,
           "share of this step's student samples equal to the teacher's response"),
    Metric("disc_teacher_score", "D(teacher)", "score", "disc_scores"),
    Metric("disc_student_score", "D(student)", "score", "disc_scores"),
    # the policy
    Metric("reward_mean", "reward mean", "reward", "reward"),
    Metric("reward_std", "reward std", "reward", "reward"),
    Metric("kl", "KL", "nats/token", "kl", "k3 estimate of KL to the stage's reference policy"),
    Metric("student_length", "student length", "tokens", "length"),
    Metric("teacher_length", "teacher length", "tokens", "length"),
    Metric("loss", "generator loss", "loss", "loss"),
    Metric("lr", "policy lr", "lr", "lr"),
    Metric("disc_lr", "D lr", "lr", "lr"),
    Metric("grad_norm", "policy grad norm", "norm", "grad_norm"),
    Metric("disc_grad_norm", "D grad norm", "norm", "grad_norm"),
    Metric("step_time", "step time", "s", "step_time"),
)

BY_NAME = {m.name: m for m in METRICS}


def panel_metrics(key: str) -> list[str]:
    """The metric names drawn in panel `key`, in catalog order."""
    return [m.name for m in METRICS if m.panel == key]


def panels() -> list[tuple[str, list[str], str]]:
    """(title, metric names, y-axis label) per panel, in reading order."""
    return [(p.title, panel_metrics(p.key), p.axis) for p in PANELS]
