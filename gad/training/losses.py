"""The algorithm's small pure tensor functions (no models, no trainers).

GAD in three lines, given a discriminator D and, per prompt, one teacher response t and a group
of N student responses s_1..s_N:
    reward_i      = D(s_i)                                  (before D's update this step)
    advantage_i   = (reward_i - mean_j reward_j) / (std_j reward_j + eps)   within the group
    D's loss      = mean_i -log sigmoid(D(t) - D(s_i))      (Bradley-Terry: teacher above student)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(teacher_scores: torch.Tensor, student_scores: torch.Tensor) -> torch.Tensor:
    """Mean -log sigmoid(D(t) - D(s)) over pairs.

    teacher_scores: (M,) score of the teacher response each pair compares against.
    student_scores: (M,) score of the student response of the pair.
    Returns a scalar. logsigmoid keeps it finite for large score gaps.
    """
    if teacher_scores.shape != student_scores.shape:
        raise ValueError(f"paired scores must have one shape, got {tuple(teacher_scores.shape)} "
                         f"and {tuple(student_scores.shape)}")
    return -F.logsigmoid(teacher_scores - student_scores).mean()


def discriminator_accuracy(teacher_scores: torch.Tensor, student_scores: torch.Tensor) -> torch.Tensor:
    """Share of pairs where the teacher outscores the student. (M,), (M,) -> scalar in [0, 1]."""
    return (teacher_scores > student_scores).float().mean()


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4,
                     scale: bool = True) -> torch.Tensor:
    """GRPO advantages normalised within each prompt's group.

    rewards: (P * G,) laid out in contiguous groups of G = group_size (one prompt each).
    Returns (P * G,): reward minus its group's mean, divided by the group's std (unbiased, as
    TRL computes it) + eps when `scale`.
    """
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    grouped = rewards.view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Low-variance KL(pi || ref) estimator per token: exp(r) - r - 1 with r = ref - logp. Same shape in/out."""
    r = ref_logprobs - logprobs
    return torch.exp(r) - r - 1


def pairwise_accuracy(teacher_scores: torch.Tensor, student_scores: torch.Tensor,
                      identical: torch.Tensor | None = None) -> torch.Tensor:
    """Share of *distinct* pairs where the teacher outscores the student; a score tie counts half.

    teacher_scores, student_scores: (M,) paired scores. identical: (M,) bool, True where the student's
    response is the teacher's token for token. No discriminator can tell such a pair apart (both get one
    score), so those pairs are left out rather than counted as errors; `identical_share` reports them.
    Returns a scalar; NaN when no distinct pair remains. A constant D scores 0.5, a perfect one 1, a
    reversed one 0: the AUC convention, so 0.5 always means "chance".
    """
    keep = torch.ones_like(teacher_scores, dtype=torch.bool) if identical is None else ~identical
    if not bool(keep.any()):
        return torch.tensor(float("nan"))
    t, s = teacher_scores[keep], student_scores[keep]
    return ((t > s).float() + 0.5 * (t == s).float()).mean()


def identical_share(identical: torch.Tensor) -> torch.Tensor:
    """(M,) bool -> share of pairs whose student response equals the teacher's (NaN for no pairs)."""
    return identical.float().mean() if identical.numel() else torch.tensor(float("nan"))


def ranks(x: torch.Tensor) -> torch.Tensor:
    """(K,) values -> (K,) ranks 1..K, tied values sharing their average rank."""
    order = torch.argsort(x, stable=True)
    r = torch.empty_like(x, dtype=torch.float64)
    r[order] = torch.arange(1, len(x) + 1, dtype=torch.float64)
    for v in torch.unique(x):  # ties: the mean of the ranks they occupy
        tied = x == v
        if int(tied.sum()) > 1:
            r[tied] = r[tied].mean()
    return r


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman rank correlation of two (K,) vectors; NaN when either is constant or K < 2."""
    if x.numel() < 2 or x.numel() != y.numel():
        return float("nan")
    rx, ry = ranks(x.double()), ranks(y.double())
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = float(rx.norm() * ry.norm())
    return float((rx * ry).sum()) / denom if denom > 0 else float("nan")
