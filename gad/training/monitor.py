"""Is the discriminator learning anything? Held-out checks every `disc_eval_every` steps.

The training-time `disc_accuracy` is measured on the very pairs D just trained on, so it cannot tell
a discriminator that generalises from one that memorises. The monitor holds out the run's test split
(teacher responses D never trains on), samples fresh student responses for those prompts, and scores
them against the held-out teacher responses:

    disc_eval_accuracy      share of distinct (teacher, student) pairs D orders correctly, ties half:
                            0.5 is chance, whatever the data
    disc_eval_identical     share of student samples equal to the teacher's response; no D can tell
                            those apart, so they are counted here and not as errors
    disc_eval_spread        std of D's scores over the held-out sequences (0: a constant D)
    disc_eval_margin        mean D(teacher) - D(student) over distinct pairs
    disc_eval_rho_logratio  white-box only (a local copy of the teacher, `monitor_teacher`): mean per-prompt
                            Spearman of D(y) with log p_T(y) - log p_S(y), what a Bradley-Terry D converges
                            to. A perfect D scores 1 here while its rho with log p_T alone can be near 0.
    disc_eval_rho_teacher   the same against log p_T(y) alone

Sampling runs under its own RNG seed (seed + step), so turning the monitor on changes nothing that
training draws, and a resumed run repeats the same checks. The alarm on these figures lives in gad.training.health.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gad.training.discriminator import Discriminator, Group, identical_pairs
from gad.training.losses import identical_share, pairwise_accuracy, spearman
from gad.training.metric_catalog import M
from gad.training.modeling import TokenInfo, build_sequence, pad_sequences

EVAL_METRICS = (M.DISC_EVAL_ACCURACY, M.DISC_EVAL_IDENTICAL, M.DISC_EVAL_SPREAD, M.DISC_EVAL_MARGIN,
                M.DISC_EVAL_RHO_LOGRATIO, M.DISC_EVAL_RHO_TEACHER)


# ----------------------------------------------------------------------------------------------
# Pure: the figures from scores
# ----------------------------------------------------------------------------------------------
def quality_metrics(teacher_scores: list[float], student_scores: list[list[float]], identical: list[list[bool]],
                    logp_teacher: list[list[float]] | None = None,
                    logp_student: list[list[float]] | None = None) -> dict[str, float]:
    """The monitor's figures for P held-out prompts.

    teacher_scores: (P,) D's score of each prompt's teacher response.
    student_scores: (P, N) D's score of each student sample; identical: (P, N) sample == teacher response.
    logp_teacher, logp_student: (P, N) log-likelihood of each student sample under the teacher and the
        student (white-box runs only); rho is averaged over prompts where it is defined (NaN if none).
    """
    t = torch.tensor([ts for ts, row in zip(teacher_scores, student_scores) for _ in row], dtype=torch.float64)
    s = torch.tensor([x for row in student_scores for x in row], dtype=torch.float64)
    same = torch.tensor([x for row in identical for x in row], dtype=torch.bool)
    distinct = ~same
    everything = torch.cat([torch.tensor(teacher_scores, dtype=torch.float64), s])
    out = {
        M.DISC_EVAL_ACCURACY: float(pairwise_accuracy(t, s, same)),
        M.DISC_EVAL_IDENTICAL: float(identical_share(same)),
        M.DISC_EVAL_SPREAD: float(everything.std(unbiased=False)) if everything.numel() > 1 else float("nan"),
        M.DISC_EVAL_MARGIN: float((t - s)[distinct].mean()) if bool(distinct.any()) else float("nan"),
    }
    if logp_teacher is not None and logp_student is not None:
        ratio = [[a - b for a, b in zip(rt, rs)] for rt, rs in zip(logp_teacher, logp_student)]
        out[M.DISC_EVAL_RHO_LOGRATIO] = _mean_rho(student_scores, ratio)
        out[M.DISC_EVAL_RHO_TEACHER] = _mean_rho(student_scores, logp_teacher)
    return out


def _mean_rho(scores: list[list[float]], target: list[list[float]]) -> float:
    rhos = [spearman(torch.tensor(a), torch.tensor(b)) for a, b in zip(scores, target)]
    rhos = [r for r in rhos if not math.isnan(r)]
    return sum(rhos) / len(rhos) if rhos else float("nan")


# ----------------------------------------------------------------------------------------------
# Orchestration: sample, score, (white-box) log-likelihoods
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def response_logprobs(model, prompt_ids: list[int], responses: list[tuple[list[int], bool]], info: TokenInfo,
                      autocast: torch.dtype | None = None) -> list[float]:
    """Sum of log p(response tokens | prompt) under a causal LM, end-of-turn included when finished."""
    device = next(model.parameters()).device
    seqs = [build_sequence(prompt_ids, ids, fin, info) for ids, fin in responses]
    ids, mask = pad_sequences(seqs, info.pad_id, device)
    was_training = model.training
    model.eval()
    with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
    model.train(was_training)
    logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    out = []
    for i, seq in enumerate(seqs):  # response tokens sit at positions len(prompt) .. len(seq)-1
        out.append(float(logp[i, len(prompt_ids) - 1: len(seq) - 1].sum()))
    return out


@dataclass
class HeldOutPrompt:
    prompt_ids: list[int]
    teacher_ids: list[int]     # response ids, + end-of-turn when not truncated (as the pipeline builds them)


class DiscriminatorMonitor:
    """Every `every` global steps: fresh student samples for the held-out prompts, scored by D."""

    def __init__(self, held_out: list[HeldOutPrompt], info: TokenInfo, *, every: int, samples: int,
                 max_new_tokens: int, temperature: float, top_p: float, seed: int, teacher_model=None,
                 autocast: torch.dtype | None = None):
        self.held_out, self.info, self.every, self.samples = held_out, info, every, samples
        self.sampling = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
        self.seed, self.teacher_model, self.autocast = seed, teacher_model, autocast

    def due(self, global_step: int) -> bool:
        return self.every > 0 and bool(self.held_out) and global_step % self.every == 0

    def groups(self, student_model, global_step: int) -> list[Group]:
        from gad.llm.generation import sample_responses
        from gad.training.modeling import split_response

        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):  # training's own random stream stays untouched
            torch.manual_seed(self.seed * 1_000_003 + global_step)
            students = sample_responses(student_model, [h.prompt_ids for h in self.held_out], n=self.samples,
                                        info=self.info, **self.sampling)
        out = []
        for h, group in zip(self.held_out, students):
            t_ids, t_fin = split_response(h.teacher_ids, self.info)
            out.append(Group(list(h.prompt_ids), t_ids, t_fin, group))
        return out

    def evaluate(self, student_model, disc: Discriminator, global_step: int) -> dict[str, float]:
        groups = self.groups(student_model, global_step)
        teacher, student = disc.score(groups)
        same = identical_pairs(groups).tolist()
        identical, pos = [], 0
        for g in groups:
            identical.append(same[pos: pos + len(g.student)])
            pos += len(g.student)
        logp_t = logp_s = None
        if self.teacher_model is not None:
            logp_t = [response_logprobs(self.teacher_model, g.prompt_ids, g.student, self.info, self.autocast)
                      for g in groups]
            logp_s = [response_logprobs(student_model, g.prompt_ids, g.student, self.info, self.autocast)
                      for g in groups]
        return quality_metrics(teacher, student, identical, logp_t, logp_s)
