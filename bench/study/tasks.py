"""The study's units of work. Each runs in a worker process (one thread), is deterministic given its
arguments, and returns a JSON-able dict; the orchestration is in bench/quality_study.py.

  train_lm        a model trained by the studio's own seqkd pipeline on a corpus (teacher, pretraining)
  teacher_assets  the fixed teacher budget (N responses, collected as text), teacher samples for evaluation
  seqkd_es        SeqKD on the N responses with early stopping on held-out teacher responses
  branch          from the best SeqKD checkpoint: more SeqKD, GAD, or the off-policy baseline (a fork)
  disc_probe      discriminators trained against the frozen SeqKD student: do their scores rank samples
                  the way the teacher's likelihood does, and what changes that
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path


def setup_worker() -> None:
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from gad.progress import quiet_libraries

    quiet_libraries()
    import warnings

    warnings.filterwarnings("ignore")


def _load_lm(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path)).eval()


def _tok_info(path):
    from gad.modeling import load_tokenizer, token_info

    tok = load_tokenizer(str(path))
    return tok, token_info(tok, str(path))


def _read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _common(S: dict) -> dict:
    return dict(max_new_tokens=S["max_new_tokens"], max_prompt_length=S["max_prompt_length"])


# ----------------------------------------------------------------------------------------------
def train_lm(out: str, data: str, seed: int, hidden: int, layers: int, steps: int, batch: int, lr: float,
             S: dict) -> dict:
    from gad.config import RunConfig
    from gad.pipeline import run
    from gad.tiny import build_tiny_model

    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    build_tiny_model(out / "init", seed=seed, hidden_size=hidden, layers=layers)
    t0 = time.time()
    res = run(RunConfig(method="seqkd", student=str(out / "init"), data=data, output=str(out / "run"), steps=steps,
                        batch_size=batch, seqkd_lr=lr, save_steps=10_000, sample_every=10_000, seed=seed, **_common(S)))
    import torch

    params = sum(p.numel() for p in _load_lm(res.final_checkpoint / "student").parameters())
    torch.manual_seed(0)
    return {"path": str(res.final_checkpoint / "student"), "seconds": time.time() - t0, "params": params}


# ----------------------------------------------------------------------------------------------
def teacher_assets(S: dict, teacher: str, work: str) -> dict:
    """The teacher budget (collected through the studio's local-teacher path: text only) and, for
    evaluation only, the teacher's own samples and scores on the held-out and OOD prompts."""
    import torch

    from bench.study import language as L
    from bench.study.evaluate import evaluate_model, fruit_distribution, prompt_ids, sample
    from gad.data import Example
    from gad.teacher import collect_local

    work = Path(work)
    n = S["n_train"] + S["n_val"]
    budget_prompts = L.prompts(S["prompt_seed"], n, "id")
    torch.manual_seed(S["prompt_seed"])
    t0 = time.time()
    res = collect_local([Example(f"q{i}", [{"role": "user", "content": p}]) for i, p in enumerate(budget_prompts)],
                        teacher, work / "teacher_budget.jsonl", max_new_tokens=S["max_new_tokens"], temperature=1.0)
    rows = [{"id": r["id"], "prompt": p, "response": r["response"]} for r, p in zip(res.records, budget_prompts)]
    train, val = rows[:S["n_train"]], rows[S["n_train"]:]
    for name, part in (("distill_train", train), ("distill_val", val)):
        (work / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    collect_s = time.time() - t0

    model = _load_lm(teacher)
    tok, info = _tok_info(teacher)
    out = {"collect_seconds": collect_s, "train_valid": sum(L.is_valid(r["prompt"], r["response"]) for r in train)
           / len(train), "eval": {}, "fruit": {}}
    for wording, seed in (("id", S["eval_seed"]), ("ood", S["eval_seed"] + 1)):
        ps = L.prompts(seed, S["eval_prompts"], wording)
        ts = sample(model, [prompt_ids(tok, p) for p in ps], S["eval_samples"], info, 1.0, 10_000 + seed,
                    S["max_new_tokens"])
        (work / f"teacher_eval_samples_{wording}.json").write_text(json.dumps(ts))
        fruit = fruit_distribution(model, tok, info, L.FRUIT_PROMPTS[wording])
        out["fruit"][wording] = fruit
        out["eval"][wording] = evaluate_model(model, model, tok, info, ps, S["eval_samples"], ts, seed=seed,
                                              max_new_tokens=S["max_new_tokens"], teacher_fruit=fruit,
                                              wording=wording)
    return out


def _eval_both(model, teacher, tok, info, S: dict, work: Path, teacher_fruit: dict, seed: int) -> dict:
    from bench.study import language as L
    from bench.study.evaluate import evaluate_model

    out = {}
    for wording, pseed in (("id", S["eval_seed"]), ("ood", S["eval_seed"] + 1)):
        ps = L.prompts(pseed, S["eval_prompts"], wording)
        ts = [[(r, f) for r, f in g] for g in json.loads((work / f"teacher_eval_samples_{wording}.json").read_text())]
        out[wording] = evaluate_model(model, teacher, tok, info, ps, S["eval_samples"], ts, seed=1000 * seed + pseed,
                                      max_new_tokens=S["max_new_tokens"], teacher_fruit=teacher_fruit[wording],
                                      wording=wording)
    return out


def _val_items(tok, info, path) -> tuple[list[str], list]:
    from bench.study.evaluate import prompt_ids, response_ids

    rows = _read_jsonl(path)
    items = []
    for r in rows:
        rid = response_ids(tok, r["response"])
        items.append((prompt_ids(tok, r["prompt"]), rid, True))
    return [r["prompt"] for r in rows], items


# ----------------------------------------------------------------------------------------------
def seqkd_es(seed: int, S: dict, student: str, teacher: str, work: str, teacher_fruit: dict) -> dict:
    """SeqKD on the N responses, a checkpoint per epoch, stopped when the held-out teacher responses'
    NLL has not improved for `patience` epochs. The best checkpoint is the baseline and the branch point."""
    from bench.study import language as L
    from bench.study.evaluate import prompt_ids, sample, sequence_logprobs
    from gad.config import RunConfig
    from gad.pipeline import run
    from gad.progress import Progress

    work = Path(work)
    run_dir = work / f"seed{seed}" / "seqkd"
    shutil.rmtree(run_dir, ignore_errors=True)
    tok, info = _tok_info(student)
    teacher_m = _load_lm(teacher)
    val_prompts, val_items = _val_items(tok, info, work / "distill_val.jsonl")
    val_pids = [prompt_ids(tok, p) for p in val_prompts]

    def score(path: Path, step: int) -> dict:
        m = _load_lm(path)
        lp = sequence_logprobs(m, val_items, info)
        groups = sample(m, val_pids, 1, info, 1.0, 7 + step, S["max_new_tokens"])
        items = [(p, g[0][0], g[0][1]) for p, g in zip(val_pids, groups)]
        t_lp = sequence_logprobs(teacher_m, items, info)
        valid = [g[0][1] and L.is_valid(p, tok.decode(g[0][0], skip_special_tokens=True))
                 for p, g in zip(val_prompts, groups)]
        return {"step": step, "val_nll": -sum(s for s, _ in lp) / sum(n for _, n in lp),
                "val_valid": sum(valid) / len(valid),
                "val_teacher_nll": -sum(s for s, _ in t_lp) / max(1, sum(n for _, n in t_lp))}

    class EarlyStop(Progress):
        def __init__(self):
            self.curve, self.best, self.bad = [], None, 0

        def checkpoint(self, step, path):
            rec = score(Path(path) / "student", step)
            self.curve.append(rec)
            if self.best is None or rec["val_nll"] < self.best["val_nll"] - S["es_min_delta"]:
                self.best, self.bad = rec, 0
            else:
                self.bad += 1

        def should_stop(self):
            return self.bad >= S["patience"]

    epoch = S["n_train"] // S["seqkd_batch"]
    es = EarlyStop()
    es.curve.append(score(Path(student), 0))  # the pretrained student, for the curve (never the branch point)
    t0 = time.time()
    res = run(RunConfig(method="seqkd", student=student, data=str(work / "distill_train.jsonl"), output=str(run_dir),
                        steps=S["max_epochs"] * epoch, batch_size=S["seqkd_batch"], seqkd_lr=S["seqkd_lr"],
                        save_steps=epoch, sample_every=10_000, seed=seed, **_common(S)), es)
    seconds = time.time() - t0
    best = es.best["step"]
    out = {"seed": seed, "curve": es.curve, "best_step": best, "epoch_steps": epoch, "seconds": seconds,
           "status": res.status, "steps_run": res.global_step, "run_dir": str(run_dir)}
    teacher_fruit = {k: v for k, v in teacher_fruit.items()}
    for name, path in (("pretrained", Path(student)), ("seqkd", run_dir / "checkpoints" / f"step-{best}" / "student")):
        import torch

        torch.manual_seed(seed)
        out[name] = _eval_both(_load_lm(path), teacher_m, tok, info, S, work, teacher_fruit, seed)
    return out


# ----------------------------------------------------------------------------------------------
def _probe_groups(tok, info, work: Path, S: dict, seed: int):
    """Fixed training prompts with their teacher responses, for the rank-correlation probe."""
    from bench.study.evaluate import prompt_ids, response_ids
    from gad.modeling import split_response

    rows = _read_jsonl(work / "distill_train.jsonl")
    rng = random.Random(seed)
    picked = rng.sample(rows, S["probe_prompts"])
    out = []
    for r in picked:
        t_ids, fin = split_response(response_ids(tok, r["response"]) + [info.eot_id], info)
        out.append((r["prompt"], prompt_ids(tok, r["prompt"]), t_ids, fin))
    return out


def branch(seed: int, name: str, spec: dict, S: dict, student: str, teacher: str, work: str, parent: str,
           best_step: int, teacher_fruit: dict) -> dict:
    """Fork the SeqKD run at its best checkpoint and train the extra budget with one method."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from bench.study.evaluate import discriminator_probe
    from gad.config import RunConfig
    from gad.fork import prepare_fork
    from gad.pipeline import list_checkpoints, run
    from gad.progress import Progress

    work = Path(work)
    run_dir = work / f"seed{seed}" / "".join(c if c.isalnum() or c in "-." else "_" for c in name)
    shutil.rmtree(run_dir, ignore_errors=True)
    W, A = spec.get("disc_warmup", S["disc_warmup_steps"]), S["adv_steps"]
    common = dict(student=student, data=str(work / "distill_train.jsonl"), output=str(run_dir), seed=seed,
                  sample_every=10_000, **_common(S))
    adv = dict(batch_size=S["gad_batch"], group_size=S["group_size"], lr=spec.get("lr", 1e-6),
               disc_lr=spec.get("disc_lr", 1e-6), save_steps=S["probe_every"], temperature=S["temperature"])
    kind = spec["method"]
    offset = best_step  # a fork keeps the parent's step numbers
    if kind == "seqkd":
        cfg = RunConfig(method="seqkd", steps=best_step + spec.get("steps", W + A), batch_size=S["seqkd_batch"],
                        seqkd_lr=S["seqkd_lr"],
                        save_steps=S["n_train"] // S["seqkd_batch"], **common)
    elif kind == "gad" and spec.get("disc_init") == "seqkd":
        # Not a fork: a new run whose student *is* the best SeqKD checkpoint, so the library builds the
        # discriminator from that backbone (a fork builds it from the run's original student).
        offset = 0
        seqkd_student = str(Path(parent) / "checkpoints" / f"step-{best_step}" / "student")
        cfg = RunConfig(method="gad", warmup_steps=W, generator_warmup=False, steps=A,
                        **adv, **{**common, "student": seqkd_student})
    elif kind == "gad":  # the generator's warmup is SeqKD; the discriminator warms up W steps against it
        cfg = RunConfig(method="gad", warmup_steps=best_step + W, generator_warmup=False, steps=A, **adv, **common)
    else:                # offpolicy: SeqKD (the parent's) -> D against the frozen student -> GRPO on frozen D
        cfg = RunConfig(method="offpolicy", warmup_steps=best_step, offpolicy_disc_steps=W, steps=A,
                        seqkd_lr=S["seqkd_lr"], **adv, **common)
    if offset:
        prepare_fork(parent, run_dir, best_step, cfg)

    class Log(Progress):
        def __init__(self):
            self.records = []

        def metrics(self, record):
            keep = ("step", "stage", "loss", "disc_loss", "disc_accuracy", "reward_std", "kl", "step_time",
                    "disc_teacher_score", "disc_student_score", "student_length", "entropy")
            self.records.append({k: record.get(k) for k in keep if k in record})

    log = Log()
    torch.manual_seed(seed)
    t0 = time.time()
    res = run(cfg, log)
    seconds = time.time() - t0
    new = [r for r in log.records if r["step"] > offset]
    out = {"seed": seed, "name": name, "method": kind, "spec": spec, "seconds": seconds, "disc_warmup": W,
           "optimizer_steps": len(new),
           "generator_steps": sum(1 for r in new if r["stage"] in ("seqkd", "adversarial")),
           "metrics": new, "status": res.status}
    tok, info = _tok_info(student)
    teacher_m = _load_lm(teacher)
    final = res.final_checkpoint / "student"
    torch.manual_seed(seed)
    out["eval"] = _eval_both(_load_lm(final), teacher_m, tok, info, S, work, teacher_fruit, seed)
    if kind != "seqkd":  # the reward through the adversarial stage, at every checkpoint from the D warmup's end
        groups = _probe_groups(tok, info, work, S, seed)
        probes = []
        for step, path, meta in list_checkpoints(run_dir):
            if step <= offset or not (path / "discriminator").is_dir():
                continue
            if step < offset + W and (step - offset) % S["probe_warmup_every"]:
                continue  # during a long discriminator warmup, a probe every probe_warmup_every steps
            disc = AutoModelForSequenceClassification.from_pretrained(str(path / "discriminator"), num_labels=1).eval()
            disc.config.pad_token_id = info.pad_id
            p = discriminator_probe(_load_lm(path / "student"), disc, teacher_m, tok, info, groups, S["group_size"],
                                    S["temperature"], seed=step, max_new_tokens=S["max_new_tokens"])
            probes.append({"step": step - offset, "stage": meta.get("stage"), **p})
        out["probes"] = probes
    return out


# ----------------------------------------------------------------------------------------------
def oracle_branch(seed: int, name: str, spec: dict, S: dict, student: str, teacher: str, work: str, parent: str,
                  best_step: int, teacher_fruit: dict) -> dict:
    """A diagnostic control, not a method of the studio: the same GRPO stage (TRL, the library's settings) from the
    best SeqKD checkpoint, but rewarded by what a perfect Bradley-Terry discriminator would score,
    log T(y) - log S(y) (the teacher's weights are used: white-box). If this does not move the student towards
    the teacher either, no discriminator could."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from bench.study.evaluate import prompt_ids, sequence_logprobs
    from gad.modeling import split_response

    work = Path(work)
    run_dir = work / f"seed{seed}" / "oracle"
    shutil.rmtree(run_dir, ignore_errors=True)
    start = str(Path(parent) / "checkpoints" / f"step-{best_step}" / "student")
    tok, info = _tok_info(start)
    teacher_m = _load_lm(teacher)
    pids = {}
    for r in _read_jsonl(work / "distill_train.jsonl"):
        ids = prompt_ids(tok, r["prompt"])
        pids[tok.decode(ids)] = ids

    class Trainer(GRPOTrainer):
        def _tokenize_prompts(self, prompts):  # the pipeline's exact ids, as gad.trainers.AdversarialTrainer
            return [pids[p] for p in prompts], None, {}

    holder = {}

    def reward(prompts, completions, completion_ids, **kwargs):
        items = [(pids[p], *split_response(ids, info)) for p, ids in zip(prompts, completion_ids)]
        t_lp = sequence_logprobs(teacher_m, items, info)
        model = holder["trainer"].model
        was = model.training
        model.eval()
        s_lp = sequence_logprobs(model, items, info)
        model.train(was)
        return [t - s for (t, _), (s, _) in zip(t_lp, s_lp)]

    reward.__name__ = "oracle_log_ratio"
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(start)
    args = GRPOConfig(
        output_dir=str(run_dir / "trl"), max_steps=S["adv_steps"], learning_rate=spec["lr"],
        lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.01, max_grad_norm=0.2, logging_steps=1, save_strategy="no", report_to=[],
        seed=seed, data_seed=seed, bf16=False, use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
        per_device_train_batch_size=S["gad_batch"] * S["group_size"], num_generations=S["group_size"],
        max_completion_length=S["max_new_tokens"], temperature=S["temperature"], top_p=1.0, beta=0.001, epsilon=0.2,
        scale_rewards="group", remove_unused_columns=False, gradient_checkpointing=False)
    trainer = Trainer(model=model, reward_funcs=[reward], args=args, processing_class=tok,
                      train_dataset=Dataset.from_list([{"prompt": p} for p in pids]))
    holder["trainer"] = trainer
    t0 = time.time()
    trainer.train()
    seconds = time.time() - t0
    out = {"seed": seed, "name": name, "method": "oracle", "spec": spec, "seconds": seconds, "disc_warmup": 0,
           "optimizer_steps": trainer.state.global_step, "generator_steps": trainer.state.global_step,
           "status": "succeeded",
           "metrics": [{"step": h.get("step"), "reward_std": h.get("reward_std"), "kl": h.get("kl")}
                       for h in trainer.state.log_history if "reward_std" in h]}
    model = trainer.model.eval()
    torch.manual_seed(seed)
    out["eval"] = _eval_both(model, teacher_m, tok, info, S, work, teacher_fruit, seed)
    shutil.rmtree(run_dir, ignore_errors=True)
    return out


# ----------------------------------------------------------------------------------------------
def disc_probe(seed: int, S: dict, backbones: dict, seqkd_student: str, teacher: str, work: str) -> dict:
    """Discriminators trained with Bradley-Terry against the frozen best SeqKD student (its samples drawn
    once, fresh per prompt visit would cost far more), scored as they train on fixed held-out groups and on
    groups of their own training data (the first `probe_prompts` training prompts with their pooled samples)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from bench.study.evaluate import discriminator_probe, prompt_ids, response_ids, sample
    from gad.discriminator import Discriminator, Group
    from gad.modeling import split_response

    work = Path(work)
    tok, info = _tok_info(seqkd_student)
    student = _load_lm(seqkd_student)
    teacher_m = _load_lm(teacher)
    rows = _read_jsonl(work / "distill_train.jsonl")
    train = []
    for r in rows:
        t_ids, fin = split_response(response_ids(tok, r["response"]) + [info.eot_id], info)
        train.append((r["prompt"], prompt_ids(tok, r["prompt"]), t_ids, fin))
    pool = sample(student, [g[1] for g in train], S["group_size"], info, S["temperature"], 31 + seed,
                  S["max_new_tokens"])
    held = []
    for r in _read_jsonl(work / "distill_val.jsonl")[:S["probe_prompts"]]:
        t_ids, fin = split_response(response_ids(tok, r["response"]) + [info.eot_id], info)
        held.append((r["prompt"], prompt_ids(tok, r["prompt"]), t_ids, fin))
    held_samples = sample(student, [g[1] for g in held], S["group_size"], info, S["temperature"], 47 + seed,
                          S["max_new_tokens"])
    out = {"seed": seed, "variants": []}
    for variant in S["probe_variants"]:
        path = backbones[variant["backbone"]]
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1)
        model.config.pad_token_id = info.pad_id
        disc = Discriminator(model, info, lr=variant["lr"], weight_decay=0.01, grad_clip=0.2)
        rng = random.Random(seed)
        curve, t0 = [], time.time()
        n = S["probe_prompts"]
        for step in range(S["probe_steps"] + 1):
            if step in S["probe_at"]:
                p = discriminator_probe(student, model, teacher_m, tok, info, held, S["group_size"], S["temperature"],
                                        seed=0, max_new_tokens=S["max_new_tokens"], samples=held_samples)
                q = discriminator_probe(student, model, teacher_m, tok, info, train[:n], S["group_size"],
                                        S["temperature"], seed=0, max_new_tokens=S["max_new_tokens"], samples=pool[:n])
                curve.append({"step": step, **p, "train": q})
            if step == S["probe_steps"]:
                break
            idx = rng.sample(range(len(train)), S["gad_batch"])
            disc.step([Group(train[i][1], train[i][2], train[i][3], pool[i]) for i in idx])
        out["variants"].append({**variant, "curve": curve, "seconds": time.time() - t0})
    return out
