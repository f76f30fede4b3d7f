"""Small-scale language study: does GAD beat SeqKD at the same budget, with a teacher we can measure?

Setup (all on CPU, minutes):
  1. A synthetic instruction language with checkable answers (see TASKS): counting, repeating,
     picking a fruit (a skewed, multi-modal distribution), describing an animal with a template.
  2. Teacher: a tiny LM trained (with this product's own seqkd pipeline) on that language.
     During distillation it is a black box: only its *sampled text* is used.
  3. Students: a smaller random-init model, trained from the same start with the same number of
     optimiser steps: SeqKD (supervised on teacher samples) vs GAD (warmup + adversarial).
  4. Evaluation on held-out prompts, with access the method never had: the teacher's per-token
     negative log-likelihood of the student's answers (lower = closer to the teacher's
     distribution, a reverse-KL-style measure), the share of answers that are valid in the
     language, distinct-2, and mean length. The teacher's own samples give the reference row.

    python bench/quality_study.py [--seeds 0 1 2] [--out bench/results/quality_study]

Whatever the outcome, the report states it with the settings; the run is seeded and repeatable.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ANIMALS = ["cat", "dog", "horse", "owl", "fox", "bear", "frog", "whale"]
ADJECTIVES = ["small", "quick", "quiet", "brave", "gentle", "clever", "strong", "calm"]
FRUITS = {"apple": 0.55, "banana": 0.25, "cherry": 0.12, "plum": 0.08}   # the teacher's skewed modes
WORDS = ["red", "blue", "green", "stone", "river", "cloud", "light", "tree", "sand", "wind"]


def make_example(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["count", "repeat", "fruit", "describe"])
    if kind == "count":
        a = rng.randint(1, 6)
        b = a + rng.randint(2, 5)
        return f"Count from {a} to {b}.", ", ".join(str(i) for i in range(a, b + 1)) + "."
    if kind == "repeat":
        ws = rng.sample(WORDS, rng.randint(2, 4))
        return f"Repeat: {' '.join(ws)}", " ".join(ws)
    if kind == "fruit":
        fruit = rng.choices(list(FRUITS), weights=list(FRUITS.values()))[0]
        return "Name a fruit.", f"A good fruit is the {fruit}."
    animal = rng.choice(ANIMALS)
    a1, a2 = rng.sample(ADJECTIVES, 2)
    return f"Describe a {animal}.", f"The {animal} is {a1} and {a2}."


def is_valid(prompt: str, answer: str) -> bool:
    answer = answer.strip()
    if m := re.fullmatch(r"Count from (\d+) to (\d+)\.", prompt):
        a, b = int(m.group(1)), int(m.group(2))
        return answer == ", ".join(str(i) for i in range(a, b + 1)) + "."
    if prompt.startswith("Repeat: "):
        return answer == prompt[len("Repeat: "):]
    if prompt == "Name a fruit.":
        return any(answer == f"A good fruit is the {f}." for f in FRUITS)
    if m := re.fullmatch(r"Describe a (\w+)\.", prompt):
        m2 = re.fullmatch(rf"The {m.group(1)} is (\w+) and (\w+)\.", answer)
        return bool(m2) and m2.group(1) in ADJECTIVES and m2.group(2) in ADJECTIVES and m2.group(1) != m2.group(2)
    return False


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def teacher_nll(teacher, tok, info, prompt_ids: list[int], response_ids: list[int], finished: bool) -> float:
    """Mean per-token NLL of a response (end-of-turn included when finished) under the teacher."""
    import torch

    from gad.modeling import build_sequence

    seq = build_sequence(prompt_ids, response_ids, finished, info)
    ids = torch.tensor([seq])
    with torch.no_grad():
        logits = teacher(input_ids=ids).logits[0, :-1]
    logp = torch.log_softmax(logits.float(), -1)
    targets = ids[0, 1:]
    start = len(prompt_ids) - 1
    token_logp = logp[torch.arange(start, len(seq) - 1), targets[start:]]
    return float(-token_logp.mean())


def distinct_n(texts: list[str], n: int = 2) -> float:
    grams, total = set(), 0
    for t in texts:
        w = t.split()
        for i in range(len(w) - n + 1):
            grams.add(tuple(w[i:i + n]))
            total += 1
    return len(grams) / total if total else 0.0


def evaluate_model(model, teacher, tok, info, prompts: list[str], samples: int, max_new_tokens: int,
                   seed: int) -> dict:
    import torch

    from gad.generation import sample_responses

    torch.manual_seed(seed)
    ids = [tok(tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                       tokenize=False), add_special_tokens=False)["input_ids"] for p in prompts]
    groups = sample_responses(model, ids, n=samples, max_new_tokens=max_new_tokens, temperature=1.0, top_p=1.0,
                              info=info)
    nll, valid, texts, lengths, fruit = [], [], [], [], {}
    for p, pid, group in zip(prompts, ids, groups):
        for rid, finished in group:
            text = tok.decode(rid, skip_special_tokens=True)
            texts.append(text)
            lengths.append(len(rid))
            nll.append(teacher_nll(teacher, tok, info, pid, rid, finished))
            valid.append(is_valid(p, text) and finished)
            if p == "Name a fruit.":
                m = re.fullmatch(r"A good fruit is the (\w+)\.", text.strip())
                key = m.group(1) if m and m.group(1) in FRUITS else "invalid"
                fruit[key] = fruit.get(key, 0) + 1
    return {"teacher_nll": statistics.fmean(nll), "valid": statistics.fmean(valid), "distinct_2": distinct_n(texts),
            "length": statistics.fmean(lengths), "fruit_counts": fruit, "answers": len(texts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="bench/results/quality_study")
    ap.add_argument("--teacher-steps", type=int, default=500)
    ap.add_argument("--warmup-steps", type=int, default=150, help="GAD warmup = first part of SeqKD's budget")
    ap.add_argument("--adv-steps", type=int, default=100, help="GAD adversarial steps (SeqKD gets the same total)")
    ap.add_argument("--gad-lr", type=float, default=2e-4, help="policy lr of GAD's adversarial stage")
    ap.add_argument("--disc-lr", type=float, default=2e-4, help="discriminator lr")
    ap.add_argument("--budget-check", action="store_true",
                    help="also train SeqKD for only the generator steps of GAD's warmup (warmup - 10), as row seqkd@N")
    ap.add_argument("--eval-prompts", type=int, default=40)
    ap.add_argument("--samples", type=int, default=4, help="answers sampled per eval prompt")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from gad.config import RunConfig
    from gad.data import Example
    from gad.modeling import load_tokenizer, token_info
    from gad.pipeline import run
    from gad.progress import quiet_libraries
    from gad.teacher import collect_local
    from gad.tiny import build_tiny_model

    quiet_libraries()
    torch.set_num_threads(2)
    out = Path(args.out)
    work = out / "work"
    t_start = time.time()

    # 1-2. The teacher: trained on the language itself, then used only through its samples.
    rng = random.Random(1234)
    corpus = [make_example(rng) for _ in range(3000)]
    lang = write_jsonl(work / "language.jsonl", [{"prompt": p, "response": r} for p, r in corpus])
    teacher_dir = work / "teacher"
    if not (teacher_dir / "result.json").exists():
        build_tiny_model(work / "teacher-init", seed=1234, hidden_size=128, layers=3)
        run(RunConfig(method="seqkd", student=str(work / "teacher-init"), data=str(lang), output=str(teacher_dir),
                      steps=args.teacher_steps, batch_size=32, seqkd_lr=3e-3, max_new_tokens=32,
                      max_prompt_length=32, save_steps=10_000, seed=1234))
    teacher_path = str(teacher_dir / "checkpoints" / f"step-{args.teacher_steps}" / "student")
    tok = load_tokenizer(teacher_path)
    info = token_info(tok, teacher_path)
    teacher = AutoModelForCausalLM.from_pretrained(teacher_path).eval()

    train_prompts = [make_example(random.Random(5000 + i))[0] for i in range(1200)]
    eval_prompts = [make_example(random.Random(90_000 + i))[0] for i in range(args.eval_prompts)]
    teacher_data = work / "teacher_samples.jsonl"
    if not teacher_data.exists():
        collect_local([Example(f"t{i}", [{"role": "user", "content": p}]) for i, p in enumerate(train_prompts)],
                      teacher_path, teacher_data, max_new_tokens=32, temperature=1.0)

    results = {"settings": vars(args), "teacher": evaluate_model(teacher, teacher, tok, info, eval_prompts,
                                                                  args.samples, 32, seed=0), "runs": []}
    print(f"teacher: {json.dumps({k: v for k, v in results['teacher'].items() if k != 'fruit_counts'})}")
    total = args.warmup_steps + args.adv_steps
    common = dict(data=str(teacher_data), batch_size=8, group_size=4, max_new_tokens=32, max_prompt_length=32,
                  save_steps=10_000, sample_every=50)
    for seed in args.seeds:
        init = work / f"student-init-{seed}"
        if not init.exists():
            build_tiny_model(init, seed=seed, hidden_size=64, layers=2)
        cfgs = {
            "seqkd": RunConfig(method="seqkd", student=str(init), output=str(work / f"seqkd-{seed}"), steps=total,
                               seqkd_lr=2e-3, seed=seed, **common),
            "gad": RunConfig(method="gad", student=str(init), output=str(work / f"gad-{seed}"),
                             warmup_steps=args.warmup_steps, steps=args.adv_steps, warmup_lr=2e-3, lr=args.gad_lr,
                             disc_lr=args.disc_lr, disc_only_steps=10, seed=seed, **common),
        }
        if args.budget_check:  # SeqKD with exactly the supervised steps GAD's warmup gave its generator
            n = args.warmup_steps - 10
            cfgs[f"seqkd@{n}"] = RunConfig(method="seqkd", student=str(init), output=str(work / f"seqkd{n}-{seed}"),
                                           steps=n, seqkd_lr=2e-3, seed=seed, **common)
        for method, cfg in cfgs.items():
            res = run(cfg)
            points = [(method, res.final_checkpoint, res.global_step)]
            if method == "gad":  # where the adversarial stage started: did it help or hurt?
                points.insert(0, ("gad@warmup", Path(cfg.output) / "checkpoints" / f"step-{args.warmup_steps}",
                                  args.warmup_steps))
            for name, ckpt, steps in points:
                model = AutoModelForCausalLM.from_pretrained(ckpt / "student").eval()
                scores = evaluate_model(model, teacher, tok, info, eval_prompts, args.samples, 32, seed=seed)
                results["runs"].append({"seed": seed, "method": name, "steps": steps, **scores})
                print(f"seed {seed} {name:10s}: teacher NLL {scores['teacher_nll']:.3f}, valid {scores['valid']:.1%}, "
                      f"distinct-2 {scores['distinct_2']:.3f}, length {scores['length']:.1f}", flush=True)
    results["minutes"] = (time.time() - t_start) / 60
    (out / "results.json").write_text(json.dumps(results, indent=2))
    report(results, out)


def report(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("teacher_nll", "teacher NLL / token (lower = closer to teacher)"), ("valid", "valid answers"),
            ("distinct_2", "distinct-2"), ("length", "length (tokens)")]
    present = {r["method"] for r in results["runs"]}
    methods = [m for m in ["seqkd", *sorted(m for m in present if m.startswith("seqkd@")), "gad@warmup", "gad"]
               if m in present]
    agg = {}
    for m in methods:
        rows = [r for r in results["runs"] if r["method"] == m]
        agg[m] = {k: (statistics.fmean(r[k] for r in rows), statistics.pstdev(r[k] for r in rows)) for k, _ in keys}
    t = results["teacher"]
    lines = ["# Small-scale study: SeqKD vs GAD at the same step budget", "",
             f"Seeds: {results['settings']['seeds']}; GAD = {results['settings']['warmup_steps']} warmup + "
             f"{results['settings']['adv_steps']} adversarial steps (policy lr {results['settings']['gad_lr']}, "
             f"discriminator lr {results['settings']['disc_lr']}, warmup/SeqKD lr 2e-3); SeqKD = the same number "
             f"of supervised steps. "
             f"Evaluation: {results['settings']['eval_prompts']} held-out prompts x {results['settings']['samples']} "
             f"samples at temperature 1. Total time {results['minutes']:.1f} min on CPU.", "",
             "| | " + " | ".join(label for _, label in keys) + " |", "|---|" + "---|" * len(keys),
             "| teacher (its own samples) | " + " | ".join(f"{t[k]:.3f}" for k, _ in keys) + " |"]
    for m in methods:
        lines.append(f"| {m} (mean ± sd over seeds) | " +
                     " | ".join(f"{agg[m][k][0]:.3f} ± {agg[m][k][1]:.3f}" for k, _ in keys) + " |")
    lines += ["", "Per seed:", "", "| seed | method | teacher NLL | valid | distinct-2 | length | fruit answers |",
              "|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        lines.append(f"| {r['seed']} | {r['method']} | {r['teacher_nll']:.3f} | {r['valid']:.1%} | "
                     f"{r['distinct_2']:.3f} | {r['length']:.1f} | {r['fruit_counts']} |")
    lines += ["", f"Teacher's fruit answers: {t['fruit_counts']} (trained on {FRUITS})",
              "", "gad@warmup is GAD's own checkpoint at the end of its warmup (fewer supervised steps than SeqKD): "
                  "the adversarial stage's effect is the change from gad@warmup to gad."]
    budget = [m for m in methods if m.startswith("seqkd@")]
    if budget:
        lines += ["", f"{budget[0]} (from --budget-check) is SeqKD given only the generator steps of GAD's warmup. "
                      "If it scores close to gad@warmup, the gap between gad and seqkd is the budget split: "
                      "compare the change from seqkd@N to seqkd with the change from gad@warmup to gad."]
    (out / "report.md").write_text("\n".join(lines) + "\n")

    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.4))
    for ax, (k, label) in zip(axes, keys):
        for i, m in enumerate(methods):
            vals = [r[k] for r in results["runs"] if r["method"] == m]
            ax.scatter([i] * len(vals), vals, alpha=0.7)
            ax.errorbar([i], [agg[m][k][0]], yerr=[agg[m][k][1]], fmt="_", color="black", capsize=6)
        ax.axhline(t[k], color="grey", linestyle="--", label="teacher")
        ax.set_xticks(range(len(methods)), methods)
        ax.set_title(label, fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "report.png", dpi=110)
    plt.close(fig)
    print((out / "report.md").read_text())


if __name__ == "__main__":
    main()
