"""report.md and report.png from the study's results.json (bench/quality_study.py --report-only rewrites them)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from bench.study.language import GENERIC_FRUITS, TEACHER_FRUITS
from gad.study_metrics import mean_sd, paired_difference

SETS = (("id", "held-out prompts, training wording (ID)"), ("ood", "OOD wording, never in the teacher budget"))
METRICS = [  # key, label, better ("lower" / "higher" / None), format, smallest difference worth a mark
    ("teacher_nll", "teacher NLL of samples (reverse)", "lower", "{:.3f}", 0.01),
    ("student_nll", "student NLL of teacher samples (forward)", "lower", "{:.3f}", 0.005),
    ("valid", "valid", "higher", "{:.3f}", 0.01),
    ("fruit.tv", "fruit TV to teacher", "lower", "{:.3f}", 0.01),
    ("fruit.entropy", "fruit entropy (teacher {t})", None, "{:.2f}", 0.02),
    ("distinct_2", "distinct-2", None, "{:.3f}", 0.005),
    ("length", "length (tokens)", None, "{:.1f}", 0.1),
]


def marked(d: dict, min_effect: float) -> bool:
    """A difference worth a mark: beyond seed noise (paired t-test, 5%) and not negligible in size."""
    return d["exceeds_seed_noise"] and abs(d["mean"]) >= min_effect
PROBE_KEYS = [("rho_teacher_logp", "ρ(D, teacher log p)"),
              ("rho_teacher_logp_per_token", "ρ(D, teacher log p / token)"),
              ("rho_log_ratio", "ρ(D, log T − log S)"), ("valid_auc", "valid-vs-invalid AUC"),
              ("accuracy", "accuracy (non-identical pairs)"), ("identical_to_teacher", "samples = teacher response"),
              ("score_spread", "reward sd within group")]


def _get(row: dict, key: str):
    for part in key.split("."):
        row = row.get(part) if isinstance(row, dict) else None
    return row


def method_rows(results: dict) -> dict[str, dict[int, dict]]:
    """method name -> seed -> {"id": eval, "ood": eval, "steps", "generator_steps", "seconds"} (ordered)."""
    out: dict[str, dict[int, dict]] = {"pretrained (start)": {}, "seqkd (best, early-stopped)": {}}
    for s, r in results["seqkd"].items():
        out["pretrained (start)"][int(s)] = {**r["pretrained"], "steps": None, "generator_steps": None, "seconds": None}
        out["seqkd (best, early-stopped)"][int(s)] = {**r["seqkd"], "steps": r["best_step"],
                                                      "generator_steps": r["best_step"], "seconds": None}
    for b in results["branches"]:
        out.setdefault(b["name"], {})[b["seed"]] = {**b["eval"], "steps": b["optimizer_steps"],
                                                    "generator_steps": b["generator_steps"], "seconds": b["seconds"]}
    return out


BASE = "seqkd (best, early-stopped)"


def _fmt(fmt: str, m: float, sd: float) -> str:
    return f"{fmt.format(m)} ± {fmt.format(sd)}"


def write_report(results: dict, out: Path) -> None:
    out = Path(out)
    S = results["settings"]
    rows = method_rows(results)
    seeds = sorted(results["seeds"])
    teacher = results["teacher"]["eval"]
    L = []
    w = L.append
    w("# After SeqKD has converged on a fixed teacher budget, does GAD get more? (small-scale CPU study)")
    w("")
    w(f"Command: `{results['command']}`  ")
    w(f"Commit: {results['commit']}  ")
    w(f"Machine: {results['machine']}; {results['jobs']} worker processes, one thread each  ")
    w(f"Wall time: **{results['wall_minutes']:.1f} min** (" + ", ".join(
        f"{k}: {v / 60:.1f} min" for k, v in results["phase_seconds"].items()) + "); CPU time of all processes "
      f"{results['cpu_minutes']:.1f} min, i.e. at least {results['cpu_minutes'] / max(1, results['jobs']):.1f} min of "
      f"wall time on {results['jobs']} idle cores; load average at the end "
      f"{', '.join(f'{x:.1f}' for x in results['load_average'])} (other work shared the machine when it is above "
      f"{results['jobs']})  ")
    w(f"Seeds: {seeds} (each seed: SeqKD data order and sampling, every branch's sampling, data order and "
      f"discriminator head). Teacher, teacher budget and pretrained student are shared by all seeds, as a user "
      f"has one teacher set and one base model.")
    w("")
    w(_findings(results, rows))
    w("")
    w("## Setup")
    m = results["models"]
    w(f"- Task language (`bench/study/language.py`): count, repeat, name a fruit (teacher: apple .55, banana .25, "
      f"cherry .12, plum .08), describe an animal (two of 8 adjectives); each in an ID wording and an OOD wording. "
      f"Validity is the task's exact rule.")
    w(f"- Teacher: {m['teacher']['params']:,} parameters ({S['teacher_hidden']} hidden, {S['teacher_layers']} layers), "
      f"{S['teacher_steps']} steps on {S['teacher_corpus']} teacher-style examples (both wordings). Used in "
      f"distillation only through {S['n_train'] + S['n_val']} sampled responses (temperature 1) collected as text "
      f"with `gad.teacher.collect_local`: **N = {S['n_train']} for training, {S['n_val']} held out** for early "
      f"stopping, all in the ID wording.")
    w(f"- Student: {m['student']['params']:,} parameters ({S['student_hidden']} hidden, {S['student_layers']} layers), "
      f"pretrained {S['pretrain_steps']} steps on {S['pretrain_corpus']} generic-style examples (both wordings; "
      f"counts without commas, any of 8 fruits, any of 14 adjectives), never on teacher outputs.")
    w(f"- SeqKD: batch {S['seqkd_batch']}, lr {S['seqkd_lr']:g}, a checkpoint per epoch "
      f"({S['n_train'] // S['seqkd_batch']} steps), stopped when the held-out teacher responses' NLL has not "
      f"improved for {S['patience']} epochs (at most {S['max_epochs']}); the best checkpoint is the baseline.")
    w(f"- Extra budget from that checkpoint (`gad.fork.prepare_fork`), **{S['disc_warmup_steps'] + S['adv_steps']} "
      f"optimizer steps for every branch of the sweep**: `seqkd+` continues SeqKD (same run, moments kept); `gad` = "
      f"{S['disc_warmup_steps']} discriminator-warmup steps against the frozen student (the warmup stage with "
      f"`generator_warmup=false`: the generator's warmup is the SeqKD stage) + {S['adv_steps']} adversarial steps; "
      f"`offpolicy` = the same {S['disc_warmup_steps']} discriminator steps, then {S['adv_steps']} GRPO steps "
      f"against the frozen discriminator. Adversarial steps: {S['gad_batch']} prompts x {S['group_size']} samples "
      f"(temperature {S['temperature']}), the library's defaults otherwise (KL 0.001, clip 0.2, gradient clip 0.2). "
      f"The discriminator is the pretrained student's backbone with a fresh head, as the library builds it. "
      f"Policy lr x discriminator lr: {S['sweep_lr']} x {S['sweep_disc_lr']} for GAD; off-policy at discriminator lr "
      f"{S['offpolicy_disc_lr']:g}.")
    w(f"- Two more branches test what a longer discriminator warmup buys: GAD with {S['long_warmup']} discriminator-"
      f"warmup steps (+ {S['adv_steps']} adversarial) against SeqKD continued for the same "
      f"{S['long_warmup'] + S['adv_steps']} steps.")
    w(f"- A diagnostic control that is not a method of the studio (it reads the teacher's weights): the same GRPO "
      f"stage for {S['adv_steps']} steps, rewarded by log T(y) − log S(y), the score a perfect Bradley-Terry "
      f"discriminator converges to (`oracle reward`). It shows what a reward that does track the teacher buys.")
    w(f"- Evaluation (`bench/study/evaluate.py`): {S['eval_prompts']} prompts per set x {S['eval_samples']} samples at "
      f"temperature 1, the same prompts and sampling seeds for every method. Fruit distributions are exact "
      f"(the model's probability of each of the 8 fruit answers; 'other' is the rest).")
    w("")
    w(f"Teacher (its own samples): ID valid {teacher['id']['valid']:.3f}, teacher NLL "
      f"{teacher['id']['teacher_nll']:.3f}; "
      f"OOD valid {teacher['ood']['valid']:.3f}, teacher NLL {teacher['ood']['teacher_nll']:.3f}. Validity of the "
      f"{S['n_train']} training responses: {results['teacher']['train_valid']:.3f}.")
    w("")
    # --- early stopping -----------------------------------------------------------------------
    w("## SeqKD with early stopping")
    w("")
    w("| seed | best step (epochs) | stopped at | held-out teacher-response NLL: start, best, at stop | "
      "SeqKD wall time |")
    w("|---|---|---|---|---|")
    for s in seeds:
        r = results["seqkd"][str(s)]
        best = next(c for c in r["curve"] if c["step"] == r["best_step"])
        w(f"| {s} | {r['best_step']} ({r['best_step'] / r['epoch_steps']:.0f}) | {r['steps_run']} | "
          f"{r['curve'][0]['val_nll']:.3f}, {best['val_nll']:.3f}, {r['curve'][-1]['val_nll']:.3f} | "
          f"{r['seconds']:.0f} s |")
    w("")
    # --- headline tables ----------------------------------------------------------------------
    for key, title in SETS:
        w(f"## Results on {title}: mean ± sd over {len(seeds)} seeds")
        w("")
        heads = [label.format(t=f"{teacher[key]['fruit']['entropy']:.2f}") for _, label, _, _, _ in METRICS]
        w("| method | extra steps (generator) | extra wall s | " + " | ".join(heads) + " |")
        w("|---|---|---|" + "---|" * len(METRICS))
        w("| teacher (reference) | | | " + " | ".join(
            fmt.format(_get(teacher[key], k)) if _get(teacher[key], k) is not None else ""
            for k, _, _, fmt, _ in METRICS)
          + " |")
        for name, per_seed in rows.items():
            vals = list(per_seed.values())
            steps = vals[0]["steps"]
            extra = "" if name.startswith("pretrained") else "0" if name == BASE else \
                f"{steps} ({vals[0]['generator_steps']})"
            secs = "" if vals[0]["seconds"] is None else _fmt("{:.0f}", *mean_sd([v["seconds"] for v in vals]))
            cells = [_fmt(fmt, *mean_sd([_get(v[key], k) for v in vals])) for k, _, _, fmt, _ in METRICS]
            w(f"| {name} | {extra} | {secs} | " + " | ".join(cells) + " |")
        w("")
        w(f"Difference from SeqKD (best), paired by seed: mean ± sd; **bold** = larger than seed noise (paired t-test, "
          f"5%, {len(seeds) - 1} degrees of freedom) and at least " +
          ", ".join(f"{least:g} in {label.split(' (')[0]}" for _, label, _, _, least in METRICS) +
          "; ↑/↓ = better/worse where a direction is better.")
        w("")
        w("| method | " + " | ".join(label.split(" (")[0] for _, label, _, _, _ in METRICS) + " |")
        w("|---|" + "---|" * len(METRICS))
        base = rows[BASE]
        for name, per_seed in rows.items():
            if name in (BASE,) or name.startswith("pretrained"):
                continue
            cells = []
            for k, _, better, fmt, least in METRICS:
                common = [s for s in seeds if s in per_seed and s in base]
                d = paired_difference([_get(per_seed[s][key], k) for s in common],
                                      [_get(base[s][key], k) for s in common])
                arrow = ""
                if better and d["mean"] != 0:
                    arrow = " ↑" if (d["mean"] < 0) == (better == "lower") else " ↓"
                text = f"{fmt.format(d['mean'])} ± {fmt.format(d['sd'])}{arrow}"
                cells.append(f"**{text}**" if marked(d, least) else text)
            w(f"| {name} | " + " | ".join(cells) + " |")
        w("")
        se_nll = statistics.median(v[key]["teacher_nll_se"] for per in rows.values() for v in per.values())
        se_val = statistics.median(v[key]["valid_se"] for per in rows.values() for v in per.values())
        sd_nll = statistics.median(mean_sd([v[key]["teacher_nll"] for v in per.values()])[1] for per in rows.values())
        w(f"Sampling noise of one evaluation (standard error over prompts, median over runs): teacher NLL "
          f"{se_nll:.3f}, valid {se_val:.3f}; seed-to-seed sd of teacher NLL (median over methods) {sd_nll:.3f}. "
          f"The methods share prompts and sampling seeds, so paired differences are less noisy than either.")
        w("")
    # --- fruit distributions -------------------------------------------------------------------
    w("## Answer distributions on the fruit prompt (exact probabilities, mean over seeds)")
    w("")
    cols = list(TEACHER_FRUITS) + [f for f in GENERIC_FRUITS if f not in TEACHER_FRUITS] + ["other"]
    for key, title in SETS:
        w(f"{title}:")
        w("")
        w("| model | " + " | ".join(cols) + " |")
        w("|---|" + "---|" * len(cols))
        t = results["teacher"]["fruit"][key]
        w("| teacher | " + " | ".join(f"{t[c]:.3f}" for c in cols) + " |")
        for name, per_seed in rows.items():
            d = [v[key]["fruit_distribution"] for v in per_seed.values()]
            w(f"| {name} | " + " | ".join(f"{statistics.fmean(x[c] for x in d):.3f}" for c in cols) + " |")
        w("")
    # --- the reward's quality ------------------------------------------------------------------
    w("## Does the discriminator's reward track closeness to the teacher?")
    w("")
    w(f"At every checkpoint of the adversarial stage ({S['probe_every']}-step cadence, from the end of the "
      f"discriminator warmup), {S['probe_prompts']} fixed training prompts x {S['group_size']} fresh student samples "
      f"(temperature {S['temperature']}) are scored by that checkpoint's discriminator and by the teacher. ρ is "
      f"Spearman's rank correlation within each group (averaged over groups whose samples are not all identical); "
      f"log T − log S is the log-ratio the Bradley-Terry optimum estimates. Mean over checkpoints, ± sd over seeds; "
      f"'first' is the end of the discriminator warmup. Accuracy here leaves out samples identical to the "
      f"teacher's response (no discriminator can separate those); the library's `disc_accuracy` metric counts them "
      f"as errors, so at a converged student it reads about half of this.")
    w("")
    w("| branch | " + " | ".join(label for _, label in PROBE_KEYS) + " | ρ(D, teacher log p) first → last |")
    w("|---|" + "---|" * (len(PROBE_KEYS) + 1))
    for name in [n for n in rows if n.startswith(("gad", "offpolicy"))]:
        runs = [{**b, "probes": after_warmup(b)} for b in results["branches"] if b["name"] == name and b.get("probes")]
        cells = []
        for k, _ in PROBE_KEYS:
            per_seed = [statistics.fmean(p[k] for p in b["probes"] if p[k] is not None) for b in runs
                        if any(p[k] is not None for p in b["probes"])]
            cells.append(_fmt("{:.2f}", *mean_sd(per_seed)) if per_seed else "n/a")
        first = [b["probes"][0]["rho_teacher_logp"] for b in runs if b["probes"][0]["rho_teacher_logp"] is not None]
        last = [b["probes"][-1]["rho_teacher_logp"] for b in runs if b["probes"][-1]["rho_teacher_logp"] is not None]
        fl = f"{statistics.fmean(first):.2f} → {statistics.fmean(last):.2f}" if first and last else "n/a"
        w(f"| {name} | " + " | ".join(cells) + f" | {fl} |")
    w("")
    if results.get("disc_probe"):
        w(f"What changes it: discriminators trained offline with Bradley-Terry against the frozen best SeqKD student "
          f"(its samples drawn once per training prompt), scored on {S['probe_prompts']} held-out prompts x "
          f"{S['group_size']} fixed samples after each number of steps ({S['gad_batch']} prompts a step), and on "
          f"{S['probe_prompts']} of its own training groups. ρ is ρ(D, teacher log p) as above. Mean ± sd over seeds.")
        w("")
        steps = S["probe_at"]
        w("| discriminator | " + " | ".join(f"held-out ρ @{s}" for s in steps) +
          f" | valid AUC @{steps[-1]} | accuracy @{steps[-1]} | ρ(D, length) @{steps[-1]} | "
          f"ρ on its training groups @{steps[-1]} |")
        w("|---|" + "---|" * (len(steps) + 4))
        names = [v["name"] for v in results["disc_probe"][0]["variants"]]
        for name in names:
            curves = [next(v for v in d["variants"] if v["name"] == name)["curve"] for d in results["disc_probe"]]
            cells = []
            for i, _ in enumerate(steps):
                vals = [c[i]["rho_teacher_logp"] for c in curves if c[i]["rho_teacher_logp"] is not None]
                cells.append(_fmt("{:.2f}", *mean_sd(vals)) if vals else "n/a")
            for k in ("valid_auc", "accuracy", "rho_length"):
                vals = [c[-1][k] for c in curves if c[-1][k] is not None]
                cells.append(_fmt("{:.2f}", *mean_sd(vals)) if vals else "n/a")
            vals = [c[-1]["train"]["rho_teacher_logp"] for c in curves
                    if c[-1].get("train", {}).get("rho_teacher_logp") is not None]
            cells.append(_fmt("{:.2f}", *mean_sd(vals)) if vals else "n/a")
            w(f"| {name} | " + " | ".join(cells) + " |")
        w("")
    # --- per seed --------------------------------------------------------------------------------
    w("## Per seed")
    w("")
    w("| seed | method | ID teacher NLL | ID student NLL | ID valid | OOD teacher NLL | OOD student NLL | OOD valid | "
      "ID valid by task | OOD valid by task |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for name, per_seed in rows.items():
        for s, v in sorted(per_seed.items()):
            bt = lambda e: ", ".join(f"{k} {x:.2f}" for k, x in e["valid_by_task"].items())  # noqa: E731
            w(f"| {s} | {name} | {v['id']['teacher_nll']:.3f} | {v['id']['student_nll']:.3f} | "
              f"{v['id']['valid']:.3f} | "
              f"{v['ood']['teacher_nll']:.3f} | {v['ood']['student_nll']:.3f} | {v['ood']['valid']:.3f} | "
              f"{bt(v['id'])} | {bt(v['ood'])} |")
    w("")
    w("## Every setting")
    w("")
    w("```json")
    w(json.dumps(S, indent=1))
    w("```")
    (out / "report.md").write_text("\n".join(L) + "\n")
    plot(results, rows, out / "report.png")


def after_warmup(branch: dict) -> list[dict]:
    """The probes from the end of the discriminator warmup on (a long warmup is also probed inside)."""
    return [p for p in branch.get("probes", []) if p["step"] >= branch.get("disc_warmup", 0)]


def _findings(results: dict, rows: dict) -> str:
    """The numbers the conclusion rests on, in sentences generated from results.json."""
    seeds = sorted(results["seeds"])
    base = rows[BASE]
    lines = ["## Findings (generated from the numbers below)", ""]
    es = [results["seqkd"][str(s)] for s in seeds]
    lines.append(f"- SeqKD's held-out NLL stopped improving after "
                 f"{', '.join(str(r['best_step'] // r['epoch_steps']) for r in es)} epochs (seeds {seeds}); "
                 f"every branch starts from that checkpoint.")
    for name, per_seed in rows.items():
        if name == BASE or name.startswith("pretrained"):
            continue
        better, worse = [], []
        for key, set_name in (("id", "ID"), ("ood", "OOD")):
            for k, label, direction, fmt, least in METRICS:
                if direction is None:
                    continue
                common = [s for s in seeds if s in per_seed]
                d = paired_difference([_get(per_seed[s][key], k) for s in common],
                                      [_get(base[s][key], k) for s in common])
                if not marked(d, least):
                    continue
                good = (d["mean"] < 0) == (direction == "lower")
                (better if good else worse).append(f"{set_name} {label.split(' (')[0]} {fmt.format(d['mean'])}")
        text = f"- **{name}** vs SeqKD, beyond seed noise: "
        text += ("better on " + "; ".join(better)) if better else "better on nothing"
        text += ("; worse on " + "; ".join(worse)) if worse else ""
        lines.append(text + ".")
    gad_better = [line for line in lines if line.startswith("- **gad") and "better on nothing" not in line]
    lines.append(f"- Verdict: {len(gad_better)} of {sum(1 for n in rows if n.startswith('gad'))} GAD configurations "
                 f"improved on the converged SeqKD student on any metric beyond seed noise.")
    probes = [p["rho_teacher_logp"] for b in results["branches"] for p in after_warmup(b)
              if p["rho_teacher_logp"] is not None and b["method"] == "gad"]
    if probes:
        lines.append(f"- Through GAD's adversarial stage (all configurations, seeds and checkpoints, {len(probes)} "
                     f"probes), the rank correlation between the discriminator's reward and the teacher's "
                     f"log-likelihood of a group's samples averaged {statistics.fmean(probes):.2f} "
                     f"(range {min(probes):.2f} to {max(probes):.2f}).")
    return "\n".join(lines)


def plot(results: dict, rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    S = results["settings"]
    seeds = sorted(results["seeds"])
    names = list(rows)
    short = [n.replace(" (best, early-stopped)", "").replace(" (start)", "") for n in names]
    fig, axes = plt.subplots(3, 4, figsize=(22, 14))
    # early stopping
    ax = axes[0, 0]
    for s in seeds:
        r = results["seqkd"][str(s)]
        ax.plot([c["step"] for c in r["curve"]], [c["val_nll"] for c in r["curve"]], "o-", ms=3, label=f"seed {s}")
        ax.axvline(r["best_step"], color=ax.lines[-1].get_color(), ls=":", lw=1)
    ax.set_ylim(0, None)
    ax.set_xlabel("SeqKD step")
    ax.set_title("SeqKD: held-out teacher-response NLL (dotted: best)", fontsize=9)
    ax.legend(fontsize=7)
    # per-method metrics
    panels = [(axes[0, 1], "id", "teacher_nll", "ID: teacher NLL of samples (reverse; lower = closer)"),
              (axes[0, 2], "ood", "teacher_nll", "OOD: teacher NLL of samples"),
              (axes[0, 3], "id", "student_nll", "ID: student NLL of teacher samples (forward)"),
              (axes[1, 0], "ood", "student_nll", "OOD: student NLL of teacher samples"),
              (axes[1, 1], "id", "valid", "ID: valid answers"),
              (axes[1, 2], "ood", "valid", "OOD: valid answers"),
              (axes[1, 3], "ood", "fruit.tv", "OOD fruit prompt: TV distance to the teacher")]
    teacher = results["teacher"]["eval"]
    skip_pre = [i for i, n in enumerate(names) if not n.startswith("pretrained")]
    for ax, key, metric, title in panels:
        for j, i in enumerate(skip_pre):
            vals = [_get(v[key], metric) for v in rows[names[i]].values()]
            ax.scatter([j] * len(vals), vals, s=14, alpha=0.7)
            m, sd = mean_sd(vals)
            ax.errorbar([j], [m], yerr=[sd], fmt="_", color="black", capsize=5)
        tv = _get(teacher[key], metric)
        if tv is not None and metric != "fruit.tv":
            ax.axhline(tv, color="grey", ls="--", lw=1, label="teacher")
        base = statistics.fmean(_get(v[key], metric) for v in rows[BASE].values())
        ax.axhline(base, color="C0", ls=":", lw=1, label="SeqKD best (mean)")
        if "nll" in metric:
            ax.set_yscale("log")
        ax.set_xticks(range(len(skip_pre)), [short[i] for i in skip_pre], rotation=60, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    # reward quality through the adversarial stage
    ax = axes[2, 0]
    ax2 = axes[2, 1]
    for name in [n for n in names if n.startswith(("gad", "offpolicy"))]:
        runs = [b for b in results["branches"] if b["name"] == name and b.get("probes")]
        if not runs:
            continue
        steps = [p["step"] for p in runs[0]["probes"]]
        ls = "-" if name.startswith("gad") else "--"
        for a, k in ((ax, "rho_teacher_logp"), (ax2, "accuracy")):
            ys = []
            for i in range(len(steps)):
                vals = [b["probes"][i][k] for b in runs if i < len(b["probes"]) and b["probes"][i][k] is not None]
                ys.append(statistics.fmean(vals) if vals else float("nan"))
            a.plot(steps, ys, ls, marker="o", ms=3, label=name)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylim(-1, 1)
    ax.set_xlabel("extra steps (discriminator warmup + adversarial)")
    ax.set_title("reward vs teacher: Spearman ρ(D score, teacher log p) per group", fontsize=9)
    ax.legend(fontsize=6)
    ax2.axhline(0.5, color="grey", lw=0.8)
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("extra steps")
    ax2.set_title("discriminator accuracy (pairs that differ from the teacher's response)", fontsize=9)
    ax2.legend(fontsize=6)
    # offline discriminators
    ax = axes[2, 2]
    if results.get("disc_probe"):
        names_v = [v["name"] for v in results["disc_probe"][0]["variants"]]
        for name in names_v:
            curves = [next(v for v in d["variants"] if v["name"] == name)["curve"] for d in results["disc_probe"]]
            xs = [c["step"] for c in curves[0]]
            ys = [statistics.fmean([c[i]["rho_teacher_logp"] for c in curves if c[i]["rho_teacher_logp"] is not None]
                                   or [float("nan")]) for i in range(len(xs))]
            sds = [mean_sd([c[i]["rho_teacher_logp"] for c in curves if c[i]["rho_teacher_logp"] is not None]
                           or [0.0])[1] for i in range(len(xs))]
            line = ax.errorbar(xs, ys, yerr=sds, marker="o", ms=3, capsize=3, label=f"{name} (held-out)")
            tr = [statistics.fmean([c[i]["train"]["rho_teacher_logp"] for c in curves
                                    if c[i].get("train", {}).get("rho_teacher_logp") is not None] or [float("nan")])
                  for i in range(len(xs))]
            ax.plot(xs, tr, "--", color=line[0].get_color(), lw=1, label=f"{name} (training groups)")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_ylim(-1, 1)
        ax.set_xlim(-10, None)
        ax.set_xlabel("discriminator steps against the frozen SeqKD student")
        ax.set_title("what changes it: ρ(D, teacher log p), offline discriminators", fontsize=9)
        ax.legend(fontsize=5, loc="lower left")
    # fruit distributions
    ax = axes[2, 3]
    cols = list(TEACHER_FRUITS) + ["other fruits", "other"]
    models = [("teacher", {k: results["teacher"]["fruit"][k] for k in ("id", "ood")})]
    for i in skip_pre:
        per_seed = rows[names[i]].values()
        models.append((short[i], {k: {c: statistics.fmean(v[k]["fruit_distribution"][c] for v in per_seed)
                                      for c in GENERIC_FRUITS + ["other"]} for k in ("id", "ood")}))
    labels, bottoms = [], None
    x = 0
    xs_all, heights = [], {c: [] for c in cols}
    for label, d in models:
        for key in ("id", "ood"):
            dist = d[key]
            for c in cols:
                if c == "other fruits":
                    heights[c].append(sum(dist[f] for f in GENERIC_FRUITS if f not in TEACHER_FRUITS))
                else:
                    heights[c].append(dist[c])
            xs_all.append(x)
            labels.append(f"{label} {key.upper()}")
            x += 1
        x += 0.5
    bottoms = [0.0] * len(xs_all)
    for c in cols:
        ax.bar(xs_all, heights[c], bottom=bottoms, label=c, width=0.9)
        bottoms = [b + h for b, h in zip(bottoms, heights[c])]
    ax.set_xticks(xs_all, labels, rotation=70, ha="right", fontsize=6)
    ax.set_title("fruit answers: exact probabilities (mean over seeds)", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    fig.suptitle(f"GAD vs converged SeqKD, N = {S['n_train']} teacher responses, {len(seeds)} seeds "
                 f"(bench/quality_study.py)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
