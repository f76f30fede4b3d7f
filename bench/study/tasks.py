"""The study's units of work. Each runs in a worker process (one thread, CPU only), is deterministic given
its arguments, and returns a JSON-able dict with its own wall and CPU seconds; the orchestration is in
bench/quality_study.py.

  train_lm        a model trained by the studio's own seqkd pipeline on a corpus (teacher, pretraining)
  teacher_assets  the fixed teacher budget (collected as text): N prompts x 1 response, the same number of
                  responses as N/k prompts x k responses, a held-out set; teacher samples for evaluation
  seqkd_es        SeqKD from the pretrained student with early stopping on the held-out teacher responses
  gad_arm         GAD from the pretrained student (the paper's recipe: one epoch of SeqKD + discriminator
                  warmup, then the adversarial stage), stopped at a fixed number of generator steps, with the
                  library's held-out discriminator monitor (gad.training.monitor) on
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from gad.training.metric_catalog import M
from gad.training.rundir import checkpoint_dir, student_dir


def setup_worker() -> None:
    import os

    # The study is a CPU study, on any machine: no GPU even where torch has a CUDA build and a GPU is present.
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from gad.training.progress import quiet_libraries

    quiet_libraries()
    import warnings

    warnings.filterwarnings("ignore")


class _Clock:
    """Wall and CPU seconds of one unit of work (the worker is single-threaded, so CPU ~ one core's time)."""

    def __init__(self):
        self.wall, self.cpu = time.time(), time.process_time()

    def stamp(self, out: dict) -> dict:
        out["seconds"] = time.time() - self.wall
        out["cpu_seconds"] = time.process_time() - self.cpu
        return out


def _load_lm(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path)).eval()


def _tok_info(path):
    from gad.training.modeling import load_tokenizer, token_info

    tok = load_tokenizer(str(path))
    return tok, token_info(tok, str(path))


def _read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _common(S: dict) -> dict:
    return dict(max_new_tokens=S["max_new_tokens"], max_prompt_length=S["max_prompt_length"])


DATA_FILES = {"single": "distill_train.jsonl", "multi": "distill_train_multi.jsonl"}


# ----------------------------------------------------------------------------------------------
def train_lm(out: str, data: str, seed: int, hidden: int, layers: int, steps: int, batch: int, lr: float,
             S: dict) -> dict:
    from gad.toy.tiny import build_tiny_model
    from gad.training.config import RunConfig
    from gad.training.pipeline import run

    clock = _Clock()
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    build_tiny_model(out / "init", seed=seed, hidden_size=hidden, layers=layers)
    res = run(RunConfig(method="seqkd", student=str(out / "init"), data=data, output=str(out / "run"), steps=steps,
                        batch_size=batch, seqkd_lr=lr, save_steps=10_000, sample_every=10_000, seed=seed, **_common(S)))
    params = sum(p.numel() for p in _load_lm(student_dir(res.final_checkpoint)).parameters())
    return clock.stamp({"path": str(student_dir(res.final_checkpoint)), "params": params})


# ----------------------------------------------------------------------------------------------
def teacher_assets(S: dict, teacher: str, work: str) -> dict:
    """The teacher budget (collected through the studio's local-teacher path: text only) and, for
    evaluation only, the teacher's own samples and scores on the held-out and OOD prompts.

    Two training sets with the same number of teacher responses: `n_train` prompts x 1 response, and the
    first n_train / multi_k of those prompts x multi_k responses (sampled independently at temperature 1, one
    row per response with its own id). Both share the `n_val` held-out responses (SeqKD's early stopping and
    GAD's discriminator monitor)."""
    import torch

    from bench.study import language as L
    from bench.study.evaluate import evaluate_model, fruit_distribution, prompt_ids, sample
    from gad.data.examples import Example
    from gad.llm.teacher import collect_local

    clock = _Clock()
    work = Path(work)
    n, k = S["n_train"] + S["n_val"], S["multi_k"]
    budget_prompts = L.prompts(S["prompt_seed"], n, "id")
    multi_prompts = budget_prompts[:S["n_train"] // k]
    examples = [Example(f"q{i}", [{"role": "user", "content": p}]) for i, p in enumerate(budget_prompts)]
    examples += [Example(f"m{i}-{j}", [{"role": "user", "content": p}]) for i, p in enumerate(multi_prompts)
                 for j in range(k)]
    prompts_of = {ex.id: ex.messages[0]["content"] for ex in examples}
    torch.manual_seed(S["prompt_seed"])
    res = collect_local(examples, teacher, work / "teacher_budget.jsonl", max_new_tokens=S["max_new_tokens"],
                        temperature=1.0)
    rows = [{"id": r["id"], "prompt": prompts_of[r["id"]], "response": r["response"]} for r in res.records]
    single = [r for r in rows if r["id"].startswith("q")]
    parts = {"distill_train": single[:S["n_train"]], "distill_val": single[S["n_train"]:],
             "distill_train_multi": [r for r in rows if r["id"].startswith("m")]}
    for name, part in parts.items():
        (work / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))

    model = _load_lm(teacher)
    tok, info = _tok_info(teacher)
    out = {"train_valid": {name: sum(L.is_valid(r["prompt"], r["response"]) for r in part) / len(part)
                           for name, part in parts.items()},
           "responses": {name: len(part) for name, part in parts.items()},
           "distinct_prompts": {name: len({r["prompt"] for r in part}) for name, part in parts.items()},
           "eval": {}, "fruit": {}}
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
    return clock.stamp(out)


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
def seqkd_es(seed: int, S: dict, student: str, teacher: str, work: str, teacher_fruit: dict,
             data: str = "single", eval_pretrained: bool = True) -> dict:
    """SeqKD from the pretrained student on one training set, a checkpoint per epoch, stopped when the held-out
    teacher responses' NLL has not improved for `patience` epochs. The best checkpoint is the baseline."""
    from bench.study import language as L
    from bench.study.evaluate import prompt_ids, sample, sequence_logprobs
    from gad.training.config import RunConfig
    from gad.training.pipeline import run
    from gad.training.progress import Progress

    clock = _Clock()
    work = Path(work)
    run_dir = work / f"seed{seed}" / f"seqkd-{data}"
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
            rec = score(student_dir(path), step)
            self.curve.append(rec)
            if self.best is None or rec["val_nll"] < self.best["val_nll"] - S["es_min_delta"]:
                self.best, self.bad = rec, 0
            else:
                self.bad += 1

        def should_stop(self):
            return self.bad >= S["patience"]

    rows = len(_read_jsonl(work / DATA_FILES[data]))
    epoch = rows // S["seqkd_batch"]
    es = EarlyStop()
    es.curve.append(score(Path(student), 0))  # the pretrained student, for the curve
    t0 = time.time()
    res = run(RunConfig(method="seqkd", student=student, data=str(work / DATA_FILES[data]), output=str(run_dir),
                        steps=S["max_epochs"] * epoch, batch_size=S["seqkd_batch"], seqkd_lr=S["seqkd_lr"],
                        save_steps=epoch, sample_every=10_000, seed=seed, **_common(S)), es)
    train_seconds = time.time() - t0
    best = es.best["step"]
    out = {"seed": seed, "data": data, "curve": es.curve, "best_step": best, "epoch_steps": epoch,
           "train_seconds": train_seconds, "status": res.status, "steps_run": res.global_step}
    picks = [("seqkd", student_dir(checkpoint_dir(run_dir, best)))]
    if eval_pretrained:
        picks.insert(0, ("pretrained", Path(student)))
    import torch

    for name, path in picks:
        torch.manual_seed(seed)
        out[name] = _eval_both(_load_lm(path), teacher_m, tok, info, S, work, teacher_fruit, seed)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # disk: 14 workers x 20 epochs of checkpoints
    return clock.stamp(out)


# ----------------------------------------------------------------------------------------------
KEPT = ("step", "stage", "loss", M.DISC_LOSS, M.DISC_ACCURACY, M.DISC_IDENTICAL, M.REWARD_STD, "kl", M.STEP_TIME,
        M.DISC_EVAL_ACCURACY, M.DISC_EVAL_IDENTICAL, M.DISC_EVAL_SPREAD, M.DISC_EVAL_MARGIN,
        M.DISC_EVAL_RHO_LOGRATIO, M.DISC_EVAL_RHO_TEACHER, M.DISC_EVAL_TIME)


def gad_arm(seed: int, name: str, spec: dict, S: dict, student: str, teacher: str, work: str,
            teacher_fruit: dict) -> dict:
    """GAD from the pretrained student: the warmup stage (one epoch: `disc_only_steps` discriminator-only steps,
    then SeqKD at seqkd_lr with the discriminator training beside it), then the adversarial stage with the arm's
    settings. The run is stopped once the generator has taken `generator_steps` optimiser steps in all (warmup +
    adversarial; discriminator-only steps are not generator steps), so every arm gets the same generator budget
    whatever its discriminator warmup does. The held-out monitor checks D every `disc_eval_every` steps on the
    `n_val` held-out teacher responses, white-box against the teacher (monitor_teacher)."""
    import torch

    from gad.training.config import RunConfig
    from gad.training.pipeline import run
    from gad.training.progress import Progress

    clock = _Clock()
    work = Path(work)
    run_dir = work / f"seed{seed}" / "".join(c if c.isalnum() or c in "-." else "_" for c in name)
    shutil.rmtree(run_dir, ignore_errors=True)
    data = spec.get("data", "single")
    rows = len(_read_jsonl(work / DATA_FILES[data]))
    warm = rows // S["gad_batch"]   # one epoch
    budget = S["generator_steps"]
    gen_warm = warm - S["disc_only_steps"]
    if budget <= gen_warm:
        raise ValueError(f"generator_steps {budget} leaves no adversarial step after a warmup with {gen_warm} "
                         f"generator steps; raise generator_steps")
    d_warm = spec.get("disc_warmup_steps", 0)
    cfg = RunConfig(
        method="gad", student=student, data=str(work / DATA_FILES[data]), output=str(run_dir), seed=seed,
        batch_size=S["gad_batch"], group_size=S["group_size"], temperature=S["temperature"],
        warmup_steps=warm, generator_warmup=True, discriminator_warmup=True, disc_only_steps=S["disc_only_steps"],
        warmup_lr=S["seqkd_lr"], steps=budget - gen_warm + d_warm,
        lr=spec["lr"], disc_lr=spec["disc_lr"], disc_steps_per_step=spec.get("disc_steps_per_step", 1),
        disc_warmup_steps=d_warm, disc_warmup_target=spec.get("disc_warmup_target") if d_warm else None,
        held_out=str(work / "distill_val.jsonl"), disc_eval_every=S["disc_eval_every"],
        disc_eval_prompts=S["disc_eval_prompts"], disc_eval_samples=S["disc_eval_samples"], monitor_teacher=teacher,
        save_steps=100_000, sample_every=100_000, **_common(S))

    class Log(Progress):
        """Keeps the metrics, and stops the run at the generator budget (a stop saves a final checkpoint)."""

        def __init__(self):
            self.records, self.generator_steps = [], 0

        def metrics(self, record):
            self.records.append({k: record[k] for k in KEPT if k in record})
            if "loss" in record and record.get("stage") in ("warmup", "adversarial"):
                self.generator_steps += 1

        def message(self, text):
            if "discriminator warmup reached" in text:
                self.records.append({"step": self.records[-1]["step"] if self.records else 0, "note": text})

        def should_stop(self):
            return self.generator_steps >= budget

    log = Log()
    torch.manual_seed(seed)
    res = run(cfg, log)
    recs = [r for r in log.records if "note" not in r]
    warm_end = max((r["step"] for r in recs if r.get("stage") == "warmup"), default=0)
    policy_start = min((r["step"] for r in recs if r.get("stage") == "adversarial" and "loss" in r), default=None)
    out = {"seed": seed, "name": name, "spec": spec, "data": data, "warmup_steps": warm,
           "optimizer_steps": res.global_step, "generator_steps": log.generator_steps,
           "disc_only_adversarial_steps": (policy_start - warm_end - 1) if policy_start else None,
           "status": "stopped at the generator budget" if log.generator_steps >= budget else res.status,
           "metrics": recs, "notes": [r["note"] for r in log.records if "note" in r]}
    tok, info = _tok_info(student)
    teacher_m = _load_lm(teacher)
    torch.manual_seed(seed)
    out["eval"] = _eval_both(_load_lm(student_dir(res.final_checkpoint)), teacher_m, tok, info, S, work,
                             teacher_fruit, seed)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    shutil.rmtree(run_dir / ".trl", ignore_errors=True)
    return clock.stamp(out)
