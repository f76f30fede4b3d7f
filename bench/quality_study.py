"""Small-scale study, issue 16 part 2: where can GAD beat SeqKD on a fixed teacher budget?

    PYTHONPATH=. python3 bench/quality_study.py --jobs 14 --out /tmp/qs     # the full study (16 cores)
    python3 bench/quality_study.py --smoke --jobs 2 --out /tmp/qs-smoke      # tiny settings, 1 seed, ~3-5 min
    python3 bench/quality_study.py --report-only --out DIR                   # rewrite report.md/png

Everything runs on CPU (CUDA_VISIBLE_DEVICES="" in every worker), one thread per worker, and imports only
gad/ and bench/ from the checkout (no install, nothing from app/).

  1. A task language with an exact validity rule (bench/study/language.py): four instruction tasks in an
     in-distribution (ID) wording and an out-of-distribution (OOD) wording the distillation data never shows.
  2. Teacher: a tiny LM trained on teacher-style text. In distillation it is a black box: a fixed budget of
     sampled responses collected as text (gad.llm.teacher.collect_local): N prompts x 1 response, or N/k prompts x
     k responses (the same number of responses), plus `n_val` held-out responses shared by every method.
  3. Student: a smaller LM pretrained on generic-style text, never on teacher outputs.
  4. Baseline: SeqKD from the pretrained student, a checkpoint per epoch, the best one by held-out teacher
     responses' NLL (early stopping), on each training set.
  5. GAD from the same pretrained student (the paper's recipe): warmup = one epoch of SeqKD with the
     discriminator training beside it, then the adversarial stage; every arm stopped at the same number of
     generator optimiser steps (`generator_steps`, a fixed budget). The arms are RunConfig settings: the
     paper's equal learning rates, a discriminator warmup until held-out accuracy >= target, several D steps
     per policy step, a policy lr below D's, k responses per prompt, and all of them together. The library's
     held-out monitor (gad.training.monitor) runs in every GAD arm on the `n_val` held-out responses, white-box
     against the teacher: held-out accuracy, identical share, spread, rho with log p_T and log p_T - log p_S.
  6. Evaluation with access the methods never had (bench/study/evaluate.py) on held-out ID and OOD prompts.

Everything is seeded; the report states the command, commit, machine, wall and CPU time and every setting.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# One arm per RunConfig setting the issue names, from the paper's base (equal policy and D learning rates).
ARMS = [
    {"name": "gad (paper: p1e-4 = D1e-4)", "lr": 1e-4, "disc_lr": 1e-4},
    {"name": "gad + D warmup to 0.65", "lr": 1e-4, "disc_lr": 1e-4, "disc_warmup_steps": 100,
     "disc_warmup_target": 0.65},
    {"name": "gad + 4 D steps/step", "lr": 1e-4, "disc_lr": 1e-4, "disc_steps_per_step": 4},
    {"name": "gad p1e-5 < D1e-3", "lr": 1e-5, "disc_lr": 1e-3},
    {"name": "gad all D changes", "lr": 1e-5, "disc_lr": 1e-3, "disc_steps_per_step": 4, "disc_warmup_steps": 100,
     "disc_warmup_target": 0.65},
    {"name": "gad all D changes, k x responses", "lr": 1e-5, "disc_lr": 1e-3, "disc_steps_per_step": 4,
     "disc_warmup_steps": 100, "disc_warmup_target": 0.65, "data": "multi"},
]

SETTINGS = {
    # models
    "teacher_hidden": 128, "teacher_layers": 3, "teacher_steps": 800, "teacher_corpus": 4000,
    "student_hidden": 64, "student_layers": 2, "pretrain_steps": 600, "pretrain_corpus": 4000,
    "lm_batch": 32, "lm_lr": 3e-3, "max_new_tokens": 32, "max_prompt_length": 32,
    # the teacher budget: n_train responses (n_train x 1, or n_train / multi_k prompts x multi_k), n_val held out
    "n_train": 400, "n_val": 80, "multi_k": 4, "prompt_seed": 5000,
    # SeqKD with early stopping
    "seqkd_batch": 16, "seqkd_lr": 1e-3, "max_epochs": 20, "patience": 3, "es_min_delta": 0.0,
    # GAD: warmup one epoch (disc_only_steps D-only, then SeqKD at seqkd_lr + D), adversarial to the budget
    "gad_batch": 8, "group_size": 8, "temperature": 0.8, "disc_only_steps": 10, "generator_steps": 120,
    "disc_eval_every": 10, "disc_eval_prompts": 32, "disc_eval_samples": 4,
    "arms": ARMS,
    # evaluation
    "eval_prompts": 128, "eval_samples": 4, "eval_seed": 90_000,
}

# --smoke: every code path, tiny sizes, one seed (the numbers mean nothing)
SMOKE = {"teacher_steps": 120, "teacher_corpus": 800, "pretrain_steps": 80, "pretrain_corpus": 800,
         "n_train": 48, "n_val": 16, "seqkd_batch": 8, "max_epochs": 3, "patience": 1,
         "gad_batch": 4, "group_size": 4, "disc_only_steps": 4, "generator_steps": 14,
         "disc_eval_every": 4, "disc_eval_prompts": 8, "disc_eval_samples": 2, "eval_prompts": 16,
         "eval_samples": 2,
         "arms": [{**a, "disc_warmup_steps": min(a.get("disc_warmup_steps", 0), 6)} for a in ARMS]}

MODEL_KEYS = ["teacher_hidden", "teacher_layers", "teacher_steps", "teacher_corpus", "student_hidden", "student_layers",
              "pretrain_steps", "pretrain_corpus", "lm_batch", "lm_lr", "max_new_tokens", "max_prompt_length"]


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "bench/quality_study.py", "bench/study",
                                "gad"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return (sha or "unknown") + (" (with uncommitted changes in bench/ or gad/)" if dirty else "")
    except OSError:
        return "unknown"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch
    import transformers

    try:
        import trl
        trl_version = trl.__version__
    except ImportError:
        trl_version = "missing"
    return (f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores; Python "
            f"{platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
            f"trl {trl_version}")


def rounded(value, digits: int = 5):
    """results.json keeps 5 significant digits: the report shows at most 3 decimals."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def columns(records: list[dict]) -> dict[str, list]:
    """Per-step metric records as columns (one list per key, None where a step lacks it): a compact results.json."""
    if not records or isinstance(records, dict):
        return records
    keys = list(dict.fromkeys(k for r in records for k in r))
    return {k: [r.get(k) for r in records] for k in keys}


def settings(args) -> dict:
    S = json.loads(json.dumps(SETTINGS))
    if args.smoke:
        S.update(json.loads(json.dumps(SMOKE)))
    for item in args.set:
        key, value = item.split("=", 1)
        if key not in S:
            raise SystemExit(f"--set: unknown setting {key!r} (known: {', '.join(S)})")
        try:
            S[key] = json.loads(value)
        except json.JSONDecodeError as err:
            raise SystemExit(f"--set {key}: not JSON ({err}): {value!r}") from None
    return S


def main() -> None:
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU study; spawned workers inherit this
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2 (smoke: 0)")
    ap.add_argument("--out", default="bench/results/quality_study")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (one thread each)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                    help="override a setting, e.g. --set generator_steps=120 'arms=[...]'")
    ap.add_argument("--smoke", action="store_true", help="tiny settings and one seed: proves the pipeline end to end")
    ap.add_argument("--report-only", action="store_true", help="rewrite report.md/png from results.json")
    args = ap.parse_args()

    from bench.study.report import write_report

    out = Path(args.out)
    if args.report_only:
        write_report(json.loads((out / "results.json").read_text()), out)
        print(f"wrote {out / 'report.md'}, {out / 'report.png'}")
        return
    if args.smoke and out.resolve() == (ROOT / "bench/results/quality_study").resolve():
        raise SystemExit("--smoke writes tiny, meaningless numbers: give --out elsewhere (e.g. /tmp/qs-smoke)")
    S = settings(args)
    seeds = args.seeds if args.seeds is not None else ([0] if args.smoke else [0, 1, 2])
    names = [a["name"] for a in S["arms"]]
    if len(set(names)) != len(names):
        raise SystemExit("arms: names must be unique")
    results = run_study(S, seeds, args.jobs, out)
    results["command"] = "python " + " ".join([os.path.relpath(sys.argv[0], ROOT) if Path(sys.argv[0]).is_absolute()
                                               else Path(sys.argv[0]).as_posix()] + sys.argv[1:])
    results = rounded(results)
    (out / "results.json").write_text(json.dumps(results, separators=(",", ":")))
    write_report(results, out)
    print(f"wrote {out / 'report.md'}, {out / 'report.png'}, {out / 'results.json'}", flush=True)


def run_study(S: dict, seeds: list[int], jobs: int, out: Path) -> dict:
    import resource

    from bench.study import language as L
    from bench.study import tasks

    work = (out / "work").resolve()
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    phases = {}

    def log(msg):
        print(f"{time.strftime('%H:%M:%S', time.gmtime())} UTC [{(time.time() - t_start) / 60:5.1f} min] {msg}",
              flush=True)

    for name, style, n, seed in (("teacher_corpus", "teacher", S["teacher_corpus"], 1234),
                                 ("generic_corpus", "generic", S["pretrain_corpus"], 4321)):
        (work / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in L.corpus(seed, n, style)))
    log(f"start: {len(seeds)} seeds x ({len(S['arms'])} GAD arms + 2 SeqKD), {jobs} workers")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                             initializer=tasks.setup_worker) as pool:
        # 1. teacher and pretrained student
        t = time.time()
        lm = dict(batch=S["lm_batch"], lr=S["lm_lr"], S=S)
        futs = {"teacher": pool.submit(tasks.train_lm, str(work / "teacher"), str(work / "teacher_corpus.jsonl"),
                                       1234, S["teacher_hidden"], S["teacher_layers"], steps=S["teacher_steps"], **lm),
                "student": pool.submit(tasks.train_lm, str(work / "student"), str(work / "generic_corpus.jsonl"),
                                       4321, S["student_hidden"], S["student_layers"], steps=S["pretrain_steps"],
                                       **lm)}
        lms = {k: f.result() for k, f in futs.items()}
        phases["1 teacher and pretraining"] = time.time() - t
        log("models: " + ", ".join(f"{k} {v['params']:,} params {v['seconds']:.0f}s" for k, v in lms.items()))
        teacher, student = lms["teacher"]["path"], lms["student"]["path"]

        # 2. the teacher budget, and the teacher's own scores
        t = time.time()
        assets = pool.submit(tasks.teacher_assets, S, teacher, str(work)).result()
        phases["2 teacher budget"] = time.time() - t
        log(f"teacher: ID valid {assets['eval']['id']['valid']:.1%}, OOD valid {assets['eval']['ood']['valid']:.1%}; "
            f"budget {assets['responses']}")

        # 3. every method, longest first so the workers finish together
        t = time.time()
        futs = {}
        order = sorted(S["arms"], key=lambda a: -(a.get("disc_warmup_steps", 0) + 20 * (a.get("disc_steps_per_step",
                                                                                               1) - 1)))
        for arm in order:
            for s in seeds:
                futs[pool.submit(tasks.gad_arm, s, arm["name"], arm, S, student, teacher, str(work),
                                 assets["fruit"])] = ("gad", arm["name"], s)
        for data in ("single", "multi"):
            for s in seeds:
                futs[pool.submit(tasks.seqkd_es, s, S, student, teacher, str(work), assets["fruit"], data,
                                 data == "single")] = ("seqkd", data, s)
        done = {}
        for f in as_completed(futs):
            key = futs[f]
            r = done[key] = f.result()
            extra = (f"best step {r['best_step']} of {r['steps_run']}" if key[0] == "seqkd" else
                     f"{r['generator_steps']} generator steps of {r['optimizer_steps']}")
            log(f"{key[0]} {key[1]} seed {key[2]} done: {r['seconds']:.0f}s wall, {r['cpu_seconds']:.0f}s CPU, "
                f"{extra}; ID teacher NLL {r['seqkd' if key[0] == 'seqkd' else 'eval']['id']['teacher_nll']:.3f}")
        phases["3 SeqKD and GAD arms"] = time.time() - t

    cpu = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for f in ("ru_utime", "ru_stime"))
    arms = [done[("gad", a["name"], s)] for a in S["arms"] for s in seeds]
    for a in arms:
        a["metrics"] = columns(a["metrics"])
    log(f"all done: {(time.time() - t_start) / 60:.1f} min wall, {cpu / 60:.1f} CPU-min")
    return {"cpu_minutes": cpu / 60, "load_average": os.getloadavg(), "commit": git_commit(), "machine": machine(),
            "settings": S, "seeds": seeds, "jobs": jobs, "wall_minutes": (time.time() - t_start) / 60,
            "phase_seconds": phases, "models": lms, "teacher": assets,
            "seqkd": {data: {str(s): done[("seqkd", data, s)] for s in seeds} for data in ("single", "multi")},
            "arms": arms}


if __name__ == "__main__":
    main()
