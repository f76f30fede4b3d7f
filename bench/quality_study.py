"""Small-scale study: after SeqKD has squeezed a fixed set of teacher responses, does GAD get more?

    nice -n 10 .venv/bin/python bench/quality_study.py    # writes bench/results/quality_study/
    # 29 CPU-minutes over 2 worker processes: about 15-20 min on 2 idle cores (27.8 min measured while
    # other jobs shared the machine). --report-only rewrites report.md/png from results.json.

The question a user of the studio faces: "I have N teacher responses; after SeqKD has converged on
them, does GAD's adversarial stage (or the off-policy discriminator baseline) improve the student?"

  1. A task language with an exact validity rule (bench/study/language.py): four instruction tasks,
     two of them with several valid answers, in an in-distribution (ID) wording and an
     out-of-distribution (OOD) wording the distillation data never shows.
  2. Teacher: a tiny LM trained on teacher-style text (both wordings). During distillation it is a
     black box: its N sampled responses, collected as text by the studio's local-teacher path.
  3. Student: a smaller LM "pretrained" on generic-style text of the same language (both wordings),
     never on teacher outputs.
  4. SeqKD on the N responses with early stopping on held-out teacher responses (per-epoch checkpoints).
     The best checkpoint is the SeqKD baseline and GAD's warmed-up generator.
  5. From that checkpoint (gad.fork.prepare_fork), equal extra budgets: more SeqKD; GAD (its
     discriminator warmed up against the frozen student, then the adversarial stage); the off-policy
     baseline (the same discriminator warmup, then GRPO against the frozen discriminator); a sweep of
     GAD's policy and discriminator learning rates; a long discriminator warmup against SeqKD of the same
     length; and a white-box control (GRPO rewarded by log T - log S, what a perfect discriminator would
     score) that shows what a reward that tracks the teacher buys.
  6. Evaluation with access the methods never had (bench/study/evaluate.py), on held-out ID prompts and
     on OOD prompts; the reward's quality through the adversarial stage (Spearman between the
     discriminator's scores and the teacher's log-likelihood within each group of samples); and
     discriminators trained offline against the frozen student with other backbones, learning rates
     and lengths, to see what changes the reward's quality.

Everything is seeded; the report states the command, commit, machine, wall time and every setting.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETTINGS = {
    # models
    "teacher_hidden": 128, "teacher_layers": 3, "teacher_steps": 800, "teacher_corpus": 4000,
    "student_hidden": 64, "student_layers": 2, "pretrain_steps": 600, "pretrain_corpus": 4000,
    "lm_batch": 32, "lm_lr": 3e-3, "max_new_tokens": 32, "max_prompt_length": 32,
    # the teacher budget
    "n_train": 400, "n_val": 80, "prompt_seed": 5000,
    # SeqKD with early stopping
    "seqkd_batch": 16, "seqkd_lr": 1e-3, "max_epochs": 20, "patience": 3, "es_min_delta": 0.0,
    # the extra budget from the best SeqKD checkpoint
    "disc_warmup_steps": 20, "adv_steps": 100, "gad_batch": 8, "group_size": 8, "temperature": 0.8,
    "sweep_lr": [3e-5, 1e-4], "sweep_disc_lr": [1e-4, 1e-3], "offpolicy_disc_lr": 1e-3,
    "long_warmup": 400, "long_lr": [1e-4, 1e-3],  # a GAD branch with a long discriminator warmup: steps, (policy, D) lr
    "oracle_lr": 1e-4,  # diagnostic GRPO branch rewarded by log T - log S (white-box), policy lr
    # evaluation
    "eval_prompts": 128, "eval_samples": 4, "eval_seed": 90_000,
    # the reward's quality
    "probe_prompts": 48, "probe_every": 25, "probe_warmup_every": 100,
    "probe_steps": 600, "probe_at": [0, 50, 150, 300, 600],
    "probe_variants": [
        {"name": "D=pretrained student, lr 1e-4", "backbone": "pretrained", "lr": 1e-4},
        {"name": "D=pretrained student, lr 1e-3", "backbone": "pretrained", "lr": 1e-3},
        {"name": "D=SeqKD student, lr 1e-3", "backbone": "seqkd", "lr": 1e-3},
        {"name": "D=larger pretrained LM (4x), lr 1e-3", "backbone": "large", "lr": 1e-3},
    ],
}


MODEL_KEYS = ["teacher_hidden", "teacher_layers", "teacher_steps", "teacher_corpus", "student_hidden", "student_layers",
              "pretrain_steps", "pretrain_corpus", "lm_batch", "lm_lr", "max_new_tokens", "max_prompt_length"]
ASSET_KEYS = ["n_train", "n_val", "prompt_seed", "eval_prompts", "eval_samples", "eval_seed"]


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "bench/quality_study.py", "bench/study",
                                "gad"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return sha + (" (with uncommitted changes in bench/ or gad/)" if dirty else "")
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
    import trl

    return (f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores; Python "
            f"{platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
            f"trl {trl.__version__}")


def rounded(value, digits: int = 5):
    """results.json keeps 5 significant digits: the report shows at most 3 decimals."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


KEPT_METRICS = ("step", "stage", "loss", "disc_loss", "disc_accuracy", "reward_std", "kl", "step_time")


def columns(records: list[dict]) -> dict[str, list]:
    """Per-step metric records as columns (one list per kept key, None where a step lacks it): a compact
    results.json."""
    if not records or isinstance(records, dict):
        return records
    keys = [k for k in KEPT_METRICS if any(k in r for r in records)]
    return {k: [r.get(k) for r in records] for k in keys}


def lr_name(x: float) -> str:
    """1e-4 -> '1e-4', 3e-05 -> '3e-5'."""
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def branches(S: dict) -> dict[str, dict]:
    """name -> spec of every branch from the best SeqKD checkpoint: the sweep with the same extra steps
    (disc_warmup_steps + adv_steps), the white-box control, then a longer discriminator warmup with a SeqKD
    branch of the same length."""
    out = {"seqkd+": {"method": "seqkd"}}
    for lr in S["sweep_lr"]:
        for dlr in S["sweep_disc_lr"]:
            out[f"gad p{lr_name(lr)} d{lr_name(dlr)}"] = {"method": "gad", "lr": lr, "disc_lr": dlr}
    for lr in S["sweep_lr"]:
        dlr = S["offpolicy_disc_lr"]
        out[f"offpolicy p{lr_name(lr)} d{lr_name(dlr)}"] = {"method": "offpolicy", "lr": lr, "disc_lr": dlr}
    out[f"oracle reward p{lr_name(S['oracle_lr'])} (white-box control)"] = {"method": "oracle", "lr": S["oracle_lr"]}
    lr, dlr = S["long_lr"]
    long = S["long_warmup"] + S["adv_steps"]
    out[f"seqkd+ {long} steps"] = {"method": "seqkd", "steps": long}
    out[f"gad p{lr_name(lr)} d{lr_name(dlr)}, D warmup {S['long_warmup']}"] = {
        "method": "gad", "lr": lr, "disc_lr": dlr, "disc_warmup": S["long_warmup"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="bench/results/quality_study")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (one thread each)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                    help="override a setting, e.g. --set adv_steps=50 'sweep_lr=[1e-4]'")
    ap.add_argument("--reuse", action="store_true",
                    help="development: reuse the models and teacher budget in OUT/work when their settings match")
    ap.add_argument("--report-only", action="store_true", help="rewrite report.md/png from results.json")
    args = ap.parse_args()

    from bench.study import tasks
    from bench.study.report import write_report

    out = Path(args.out)
    if args.report_only:
        write_report(json.loads((out / "results.json").read_text()), out)
        return
    S = json.loads(json.dumps(SETTINGS))
    for item in args.set:
        key, value = item.split("=", 1)
        if key not in S:
            raise SystemExit(f"--set: unknown setting {key!r}")
        S[key] = json.loads(value)
    work = (out / "work").resolve()
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    phases = {}
    command = "python " + " ".join([Path(sys.argv[0]).as_posix() if not Path(sys.argv[0]).is_absolute() else
                                    os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])

    from bench.study import language as L

    for name, style, n, seed in (("teacher_corpus", "teacher", S["teacher_corpus"], 1234),
                                 ("generic_corpus", "generic", S["pretrain_corpus"], 4321)):
        (work / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in L.corpus(seed, n, style)))

    def log(msg):
        print(f"[{(time.time() - t_start) / 60:5.1f} min] {msg}", flush=True)

    ctx = get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx, initializer=tasks.setup_worker) as pool:
        # 1. teacher, the pretrained student, the larger pretrained backbone (discriminator probe only)
        t = time.time()
        need_large = any(v["backbone"] == "large" for v in S["probe_variants"])
        cached = work / "models.json"
        key = {k: S[k] for k in MODEL_KEYS}
        if args.reuse and cached.is_file() and json.loads(cached.read_text())["key"] == key:
            lms = json.loads(cached.read_text())["models"]
        else:
            lm = dict(batch=S["lm_batch"], lr=S["lm_lr"], S=S)
            jobs = {"teacher": pool.submit(tasks.train_lm, str(work / "teacher"), str(work / "teacher_corpus.jsonl"),
                                           1234, S["teacher_hidden"], S["teacher_layers"], steps=S["teacher_steps"],
                                           **lm),
                    "student": pool.submit(tasks.train_lm, str(work / "student"), str(work / "generic_corpus.jsonl"),
                                           4321, S["student_hidden"], S["student_layers"], steps=S["pretrain_steps"],
                                           **lm)}
            if need_large:
                jobs["large"] = pool.submit(tasks.train_lm, str(work / "large"), str(work / "generic_corpus.jsonl"),
                                            99, S["teacher_hidden"], S["teacher_layers"], steps=S["pretrain_steps"],
                                            **lm)
            lms = {k: f.result() for k, f in jobs.items()}
            cached.write_text(json.dumps({"key": key, "models": lms}))
        phases["1 teacher and pretraining"] = time.time() - t
        log("models: " + ", ".join(f"{k} {v['params']:,} params {v['seconds']:.0f}s" for k, v in lms.items()))
        teacher, student = lms["teacher"]["path"], lms["student"]["path"]

        # 2. the teacher budget, and the teacher's own scores
        t = time.time()
        cached = work / "assets.json"
        key = {k: S[k] for k in MODEL_KEYS + ASSET_KEYS}
        if args.reuse and cached.is_file() and json.loads(cached.read_text())["key"] == key:
            assets = json.loads(cached.read_text())["assets"]
        else:
            assets = pool.submit(tasks.teacher_assets, S, teacher, str(work)).result()
            cached.write_text(json.dumps({"key": key, "assets": assets}))
        phases["2 teacher budget"] = time.time() - t
        log(f"teacher: ID valid {assets['eval']['id']['valid']:.1%}, OOD valid {assets['eval']['ood']['valid']:.1%}, "
            f"budget valid {assets['train_valid']:.1%}")

        # 3. SeqKD with early stopping, per seed
        t = time.time()
        es = {s: pool.submit(tasks.seqkd_es, s, S, student, teacher, str(work), assets["fruit"])
              for s in args.seeds}
        es = {s: f.result() for s, f in es.items()}
        phases["3 SeqKD with early stopping"] = time.time() - t
        for s, r in es.items():
            log(f"seed {s}: SeqKD best at step {r['best_step']} ({r['best_step'] // r['epoch_steps']} epochs), "
                f"stopped at {r['steps_run']}; ID valid {r['seqkd']['id']['valid']:.1%}, "
                f"teacher NLL {r['seqkd']['id']['teacher_nll']:.3f}")

        # 4. branches and discriminator probes
        t = time.time()
        jobs = {}
        specs = branches(S)
        # longest first, so the two workers finish together: adversarial branches, probes, then SeqKD+
        order = [n for n, sp in specs.items() if "disc_warmup" in sp] + ["disc_probe"] + \
            [n for n, sp in specs.items() if sp["method"] != "seqkd" and "disc_warmup" not in sp] + \
            [n for n, sp in specs.items() if sp["method"] == "seqkd"]
        for name in order:
            for s in args.seeds:
                best = es[s]["best_step"]
                seqkd_student = str(Path(es[s]["run_dir"]) / "checkpoints" / f"step-{best}" / "student")
                if name == "disc_probe":
                    if S["probe_variants"]:
                        backbones = {"pretrained": student, "seqkd": seqkd_student,
                                     "large": lms["large"]["path"] if need_large else None}
                        jobs[(s, name)] = pool.submit(tasks.disc_probe, s, S, backbones, seqkd_student, teacher,
                                                      str(work))
                    continue
                fn = tasks.oracle_branch if specs[name]["method"] == "oracle" else tasks.branch
                jobs[(s, name)] = pool.submit(fn, s, name, specs[name], S, student, teacher, str(work),
                                              es[s]["run_dir"], best, assets["fruit"])
        done = {}
        for key, f in jobs.items():
            done[key] = f.result()
            log(f"seed {key[0]} {key[1]} done")
        phases["4 branches and probes"] = time.time() - t

    import resource

    cpu = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for f in ("ru_utime", "ru_stime"))
    results = {"command": command, "cpu_minutes": cpu / 60, "load_average": os.getloadavg(),
               "commit": git_commit(), "machine": machine(), "settings": S,
               "seeds": args.seeds, "jobs": args.jobs, "wall_minutes": (time.time() - t_start) / 60,
               "phase_seconds": phases, "models": lms, "teacher": assets,
               "seqkd": {str(s): r for s, r in es.items()},
               "branches": sorted((v for k, v in done.items() if k[1] != "disc_probe"),
                                  key=lambda b: (list(specs).index(b["name"]), b["seed"])),
               "disc_probe": [v for k, v in done.items() if k[1] == "disc_probe"]}
    for b in results["branches"]:
        b["metrics"] = columns(b["metrics"])
    results = rounded(results)
    (out / "results.json").write_text(json.dumps(results, separators=(",", ":")))
    write_report(results, out)
    log(f"wrote {out / 'report.md'}, {out / 'report.png'}, {out / 'results.json'}")


if __name__ == "__main__":
    main()
