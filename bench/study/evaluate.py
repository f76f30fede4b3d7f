"""Measurements with access the methods never had: the teacher's weights, the task's rule.

  sequence_logprobs     sum of token log-probabilities of (prompt, response) pairs under a model
  evaluate_model        samples on a prompt set, scored: teacher NLL of the samples (reverse
                        direction), the model's NLL of teacher samples (forward direction), validity,
                        distinct-2, length, exact answer distributions on the fruit prompts, the share
                        of samples identical to the teacher's first sample for the prompt
  discriminator_probe   how a discriminator's scores rank a group's samples against the teacher's
                        log-likelihood (Spearman per group), its accuracy and its score spread
"""

from __future__ import annotations

import re
import statistics

import torch

from bench.study.language import FRUIT_PROMPTS, GENERIC_FRUITS, TEACHER_FRUITS, fruit_answer, is_valid, task_of
from bench.study.metrics import distinct_n, entropy, kl_divergence, mean_sd, pairwise_auc, spearman, total_variation
from gad.training.modeling import build_sequence, pad_sequences

OTHER = "other"


def prompt_ids(tok, prompt: str) -> list[int]:
    """Exactly the ids the pipeline builds for a chat prompt (gad.training.pipeline.tokenize_examples)."""
    from gad.data.examples import render_prompt

    return tok(render_prompt([{"role": "user", "content": prompt}], tok, "chat"), add_special_tokens=False)["input_ids"]


def response_ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def sequence_logprobs(model, items: list[tuple[list[int], list[int], bool]], info, batch: int = 64) \
        -> list[tuple[float, int]]:
    """(sum of log p over the response tokens, end-of-turn included when finished; token count) per item."""
    out = []
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        seqs = [build_sequence(p, r, f, info) for p, r, f in chunk]
        ids, mask = pad_sequences(seqs, info.pad_id)
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
        tok_logp = logp.gather(2, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        for row, (p, r, f) in enumerate(chunk):
            n = len(r) + (1 if f else 0)
            lo = len(p) - 1
            out.append((float(tok_logp[row, lo:lo + n].sum()), n))
    return out


def sample(model, pids: list[list[int]], n: int, info, temperature: float, seed: int, max_new_tokens: int):
    from gad.llm.generation import sample_responses

    torch.manual_seed(seed)
    return sample_responses(model, pids, n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=1.0,
                            info=info)


def fruit_distribution(model, tok, info, prompt: str) -> dict[str, float]:
    """Exact probabilities of the answers 'A good fruit is the F.' (F over all 8 fruits), the rest as 'other'."""
    pid = prompt_ids(tok, prompt)
    lp = sequence_logprobs(model, [(pid, response_ids(tok, fruit_answer(f)), True) for f in GENERIC_FRUITS], info)
    dist = {f: float(torch.tensor(s).exp()) for f, (s, _) in zip(GENERIC_FRUITS, lp)}
    dist[OTHER] = max(0.0, 1.0 - sum(dist.values()))
    return dist


def fruit_scores(student: dict[str, float], teacher: dict[str, float]) -> dict[str, float]:
    """Mode seeking vs covering on the fruit prompt: distances to the teacher's exact answer distribution."""
    top = max(TEACHER_FRUITS, key=TEACHER_FRUITS.get)
    return {"tv": total_variation(student, teacher), "kl_teacher_student": kl_divergence(teacher, student),
            "kl_student_teacher": kl_divergence(student, teacher), "entropy": entropy(student),
            "top_mode_mass": student[top], "valid_mass": sum(student[f] for f in TEACHER_FRUITS)}


def evaluate_model(model, teacher, tok, info, prompts: list[str], samples: int, teacher_samples, seed: int,
                   max_new_tokens: int, teacher_fruit: dict | None = None, wording: str = "id") -> dict:
    """Score `samples` answers per prompt at temperature 1 (the model's own distribution)."""
    pids = [prompt_ids(tok, p) for p in prompts]
    groups = sample(model, pids, samples, info, 1.0, seed, max_new_tokens)
    items = [(pid, rid, fin) for pid, group in zip(pids, groups) for rid, fin in group]
    t_lp = sequence_logprobs(teacher, items, info)
    texts, valid, per_prompt_nll, per_prompt_valid, by_task = [], [], [], [], {}
    k = 0
    for p, group in zip(prompts, groups):
        nll_sum, n_tok, ok = 0.0, 0, []
        for rid, fin in group:
            text = tok.decode(rid, skip_special_tokens=True)
            texts.append(text)
            v = fin and is_valid(p, text)
            ok.append(v)
            s, n = t_lp[k]
            nll_sum, n_tok = nll_sum - s, n_tok + n
            k += 1
        valid += ok
        per_prompt_nll.append(nll_sum / max(1, n_tok))
        per_prompt_valid.append(sum(ok) / len(ok))
        by_task.setdefault(task_of(p), []).extend(ok)
    total_tok = sum(n for _, n in t_lp)
    # samples word for word the teacher's first sample for the prompt (the monitor's `identical` share, measured
    # here for every method: a discriminator cannot score such a pair either way)
    same = [list(rid) == list(tg[0][0]) and bool(fin) == bool(tg[0][1])
            for group, tg in zip(groups, teacher_samples) for rid, fin in group]
    # forward direction: this model's NLL of the teacher's own samples on the same prompts
    t_items = [(pid, rid, fin) for pid, group in zip(pids, teacher_samples) for rid, fin in group]
    s_lp = sequence_logprobs(model, t_items, info)
    out = {
        "teacher_nll": -sum(s for s, _ in t_lp) / max(1, total_tok),
        "teacher_nll_se": mean_sd(per_prompt_nll)[1] / len(per_prompt_nll) ** 0.5,
        "student_nll": -sum(s for s, _ in s_lp) / max(1, sum(n for _, n in s_lp)),
        "valid": sum(valid) / len(valid),
        "valid_se": mean_sd(per_prompt_valid)[1] / len(per_prompt_valid) ** 0.5,
        "valid_by_task": {t: sum(v) / len(v) for t, v in sorted(by_task.items())},
        "distinct_2": distinct_n(texts, 2),
        "length": statistics.fmean(len(r) for _, r, _ in items),
        "answers": len(texts),
        "identical_to_teacher": sum(same) / max(1, len(same)),
    }
    fruit = fruit_distribution(model, tok, info, FRUIT_PROMPTS[wording])
    out["fruit_distribution"] = fruit
    if teacher_fruit is not None:
        out["fruit"] = fruit_scores(fruit, teacher_fruit)
    # sampled fruit answers (what a user would see)
    counts = {}
    for p, t in zip([p for p in prompts for _ in range(samples)], texts):
        if task_of(p) == "fruit":
            m = re.fullmatch(r"A good fruit is the (\w+)\.", t.strip())
            key = m.group(1) if m and m.group(1) in GENERIC_FRUITS else OTHER
            counts[key] = counts.get(key, 0) + 1
    out["fruit_sampled"] = counts
    return out


def discriminator_probe(student, disc_model, teacher, tok, info, groups_in, group_size: int, temperature: float,
                        seed: int, max_new_tokens: int, samples=None) -> dict:
    """Sample `group_size` answers per probe prompt from `student` (or take `samples`), score them with the
    discriminator and with the teacher's log-likelihood; Spearman per group, averaged over groups whose
    ranking is defined (not all samples identical). Accuracy (teacher response scored above the sample) counts
    only samples that differ from the teacher's response; `identical_to_teacher` is the share of
    samples identical to it.

    groups_in: [(prompt, prompt_ids, teacher_ids, teacher_finished)]. `valid_auc`: within groups holding
    valid and invalid samples, the chance that a valid one outscores an invalid one. Also returns the
    within-group spread (sd) of
    the scores, i.e. of the reward before GRPO normalises it.
    """
    from gad.training.discriminator import Discriminator, Group

    if samples is None:
        samples = sample(student, [g[1] for g in groups_in], group_size, info, temperature, seed, max_new_tokens)
    groups = [Group(p, t, f, s) for (_, p, t, f), s in zip(groups_in, samples)]
    disc = Discriminator(disc_model, info, lr=0.0, weight_decay=0.0, grad_clip=1.0, trainable=False)
    t_scores, s_scores = disc.score(groups)
    items = [(g.prompt_ids, r, f) for g in groups for r, f in g.student]
    t_lp = sequence_logprobs(teacher, items, info)
    s_lp = sequence_logprobs(student, items, info)
    rho_t, rho_tok, rho_ratio, rho_len, aucs, spreads, correct, pairs, ties, k = [], [], [], [], [], [], 0, 0, 0, 0
    for g, prompt, ts, ss in zip(groups, [g[0] for g in groups_in], t_scores, s_scores):
        n = len(g.student)
        tl = [t_lp[k + i][0] for i in range(n)]
        tok_mean = [t_lp[k + i][0] / max(1, t_lp[k + i][1]) for i in range(n)]
        ratio = [t_lp[k + i][0] - s_lp[k + i][0] for i in range(n)]
        lens = [float(len(r)) for r, _ in g.student]
        k += n
        ok = [f and is_valid(prompt, tok.decode(r, skip_special_tokens=True)) for r, f in g.student]
        auc = pairwise_auc([x for x, v in zip(ss, ok) if v], [x for x, v in zip(ss, ok) if not v])
        if auc is not None:
            aucs.append(auc)
        for vals, acc in ((tl, rho_t), (tok_mean, rho_tok), (ratio, rho_ratio), (lens, rho_len)):
            r = spearman(ss, vals)
            if r is not None:
                acc.append(r)
        spreads.append(mean_sd(ss)[1])
        for (r, _), s in zip(g.student, ss):
            if list(r) == list(g.teacher_ids):  # identical to the teacher's response: no signal either way
                ties += 1
            else:
                correct += ts > s
                pairs += 1
    mean = lambda xs: statistics.fmean(xs) if xs else None  # noqa: E731
    return {"rho_teacher_logp": mean(rho_t), "rho_teacher_logp_per_token": mean(rho_tok),
            "rho_log_ratio": mean(rho_ratio), "rho_length": mean(rho_len), "valid_auc": mean(aucs),
            "groups_with_valid_and_invalid": len(aucs),
            "groups_ranked": len(rho_t), "groups": len(groups), "accuracy": correct / pairs if pairs else None,
            "identical_to_teacher": ties / max(1, ties + pairs),
            "score_spread": mean(spreads)}
