"""report.md and report.png from the study's results.json (bench/quality_study.py --report-only rewrites them).

The first lines state the best GAD setting against the best SeqKD with paired differences and 95% intervals on
ID and OOD prompts; then where each GAD setting wins, ties or loses, what the discriminator monitor measured,
the share of samples identical to the teacher's, and wall-clock/CPU per arm.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from bench.study.metrics import mean_sd, paired_difference, paired_verdict
from gad.training.metric_catalog import M

SETS = (("id", "held-out prompts, training wording (ID)"), ("ood", "OOD wording, never in the teacher budget"))
METRICS = [  # key, label, better ("lower" / "higher" / None), format, smallest difference worth a mark
    ("teacher_nll", "teacher NLL of samples (reverse)", "lower", "{:.3f}", 0.01),
    ("student_nll", "student NLL of teacher samples (forward)", "lower", "{:.3f}", 0.005),
    ("valid", "valid", "higher", "{:.3f}", 0.01),
    ("fruit.tv", "fruit TV to teacher", "lower", "{:.3f}", 0.01),
    ("identical_to_teacher", "= teacher's sample", None, "{:.3f}", 0.01),
    ("distinct_2", "distinct-2", None, "{:.3f}", 0.005),
    ("length", "length (tokens)", None, "{:.1f}", 0.1),
]
MAIN = [("teacher_nll", "teacher NLL of samples", "lower", "{:+.3f}", 0.01), ("valid", "valid", "higher", "{:+.3f}",
                                                                            0.01)]
MONITOR = [(M.DISC_EVAL_ACCURACY, "held-out accuracy (identical pairs apart)"),
           (M.DISC_EVAL_IDENTICAL, "identical share"), (M.DISC_EVAL_SPREAD, "score spread"),
           (M.DISC_EVAL_RHO_LOGRATIO, "ρ(D, log p_T − log p_S)"), (M.DISC_EVAL_RHO_TEACHER, "ρ(D, log p_T)")]
SEQKD = {"single": "seqkd N x 1 (best, early-stopped)", "multi": "seqkd N/k x k (best, early-stopped)"}


def _get(row, key: str):
    for part in key.split("."):
        row = row.get(part) if isinstance(row, dict) else None
    return row


def _ok(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def method_rows(results: dict) -> dict[str, dict[int, dict]]:
    """method name -> seed -> {"id", "ood", "data", "seconds", "cpu_seconds", "generator_steps"} (ordered)."""
    out: dict[str, dict[int, dict]] = {"pretrained (start)": {}}
    for s, r in results["seqkd"]["single"].items():
        out["pretrained (start)"][int(s)] = {**r["pretrained"], "data": None, "seconds": None, "cpu_seconds": None,
                                            "generator_steps": 0}
    for data, label in SEQKD.items():
        out[label] = {int(s): {**r["seqkd"], "data": data, "seconds": r["seconds"], "cpu_seconds": r["cpu_seconds"],
                               "generator_steps": r["best_step"], "steps_run": r["steps_run"]}
                      for s, r in results["seqkd"][data].items()}
    for a in results["arms"]:
        out.setdefault(a["name"], {})[a["seed"]] = {**a["eval"], "data": a["data"], "seconds": a["seconds"],
                                                    "cpu_seconds": a["cpu_seconds"],
                                                    "generator_steps": a["generator_steps"]}
    return out


def _diff(rows, a: str, b: str, key: str, metric: str) -> dict:
    seeds = sorted(set(rows[a]) & set(rows[b]))
    return paired_difference([_get(rows[a][s][key], metric) for s in seeds], [_get(rows[b][s][key], metric)
                                                                             for s in seeds])


def _ci(d: dict, fmt: str) -> str:
    if math.isinf(d["half_width"]):
        return f"{fmt.format(d['mean'])} (one seed: no interval)"
    low, high = d["mean"] - d["half_width"], d["mean"] + d["half_width"]
    return f"{fmt.format(d['mean'])} [{fmt.format(low)}, {fmt.format(high)}]"


verdict = paired_verdict


def _mean(xs):
    xs = [x for x in xs if _ok(x)]
    return statistics.fmean(xs) if xs else float("nan")


def _checks(arm: dict, key: str) -> list[tuple[int, float, str]]:
    """(step, value, stage) of the monitor's checks of one arm's run."""
    m = arm["metrics"]
    return [(st, v, sg) for st, v, sg in zip(m["step"], m.get(key, [None] * len(m["step"])), m["stage"]) if _ok(v)]


def monitor_summary(arm: dict) -> dict:
    """The monitor's figures at the end of the warmup stage, at the last check, and averaged over the adversarial
    stage's checks; the training-time disc_accuracy/disc_identical averaged over the adversarial stage."""
    out = {}
    for key, _ in MONITOR:
        c = _checks(arm, key)
        warm = [v for _, v, sg in c if sg == "warmup"]
        adv = [v for _, v, sg in c if sg == "adversarial"]
        out[key] = {"warmup_end": warm[-1] if warm else float("nan"), "last": c[-1][1] if c else float("nan"),
                    "adversarial_mean": _mean(adv)}
    m = arm["metrics"]
    for key in (M.DISC_ACCURACY, M.DISC_IDENTICAL):
        out[key] = _mean([v for v, sg in zip(m.get(key, []), m["stage"]) if sg == "adversarial"])
    return out


def write_report(results: dict, out: Path) -> None:
    out = Path(out)
    S = results["settings"]
    rows = method_rows(results)
    seeds = sorted(results["seeds"])
    teacher = results["teacher"]["eval"]
    arms = [a["name"] for a in S["arms"]]
    L = []
    w = L.append
    best_sk = min(SEQKD.values(), key=lambda n: _mean(v["id"]["teacher_nll"] for v in rows[n].values()))
    best_gad = min(arms, key=lambda n: _mean(v["id"]["teacher_nll"] for v in rows[n].values()))
    w("# Where can GAD beat SeqKD on a fixed teacher budget? (small-scale CPU study, issue 16)")
    w("")
    w(f"**Best GAD setting ({best_gad}) against the best SeqKD ({best_sk})**, GAD − SeqKD paired by seed, mean "
      f"[95% interval] over {len(seeds)} seeds (best = lowest mean ID teacher NLL; picking the best of "
      f"{len(arms)} GAD settings on these seeds flatters GAD):")
    w("")
    heads = []
    for key, label in (("id", "ID"), ("ood", "OOD")):
        cells = []
        for metric, mlabel, better, fmt, least in MAIN:
            d = _diff(rows, best_gad, best_sk, key, metric)
            v = verdict(d, better, least)
            heads.append(v)
            cells.append(f"{mlabel} {_ci(d, fmt)} ({v} for GAD; {better} is better)")
        w(f"- {label}: " + "; ".join(cells))
    wins, losses = heads.count("win"), heads.count("loss")
    overall = "wins" if wins and not losses else "loses" if losses and not wins else "is mixed" if wins else "ties"
    w(f"- Verdict: GAD {overall} "
      f"against the best SeqKD on these 4 measures ({wins} wins, {losses} losses, {4 - wins - losses} ties; "
      f"a win or loss needs the interval to exclude 0 and at least 0.01).")
    w("")
    w(_where(results, rows, arms))
    w("")
    w(_what_stops(results, rows, arms, best_sk))
    w("")
    w(f"Command: `{results.get('command', '?')}`  ")
    w(f"Commit: {results['commit']}  ")
    w(f"Machine: {results['machine']}; {results['jobs']} worker processes, one thread each, CPU only  ")
    w(f"Wall time: **{results['wall_minutes']:.1f} min** (" + ", ".join(
        f"{k}: {v / 60:.1f} min" for k, v in results["phase_seconds"].items()) + f"); CPU time of all processes "
      f"**{results['cpu_minutes']:.1f} min**; load average at the end "
      f"{', '.join(f'{x:.1f}' for x in results['load_average'])}  ")
    w(f"Seeds: {seeds} (each seed: data order, sampling, discriminator head; the teacher, the teacher budget and the "
      f"pretrained student are shared, as a user has one teacher set and one base model).")
    w("")
    _setup(w, results, S)
    _monitor_section(w, results, arms)
    _identical_and_cost(w, results, rows, teacher)
    _tables(w, results, rows, teacher, seeds, best_sk)
    w("## Every setting")
    w("")
    w("```json")
    w(json.dumps(S, indent=1))
    w("```")
    (out / "report.md").write_text("\n".join(L) + "\n")
    plot(results, rows, out / "report.png")


def _baseline(name: str, rows: dict) -> str:
    data = next(iter(rows[name].values()))["data"]
    return SEQKD[data]


def _where(results: dict, rows: dict, arms: list[str]) -> str:
    """Each GAD setting against SeqKD on the same training set: win / tie / loss per main measure."""
    lines = ["## Where GAD wins, ties and loses (each setting vs SeqKD on the same training set)", "",
             "GAD − SeqKD paired by seed, mean [95% interval]; win/loss = the interval excludes 0 and the difference "
             "is at least 0.01. All GAD settings start from the pretrained student and take the same number of "
             "generator steps.", "",
             "| GAD setting | vs | "
             + " | ".join(f"{s.upper()} {lab}" for s in ("id", "ood") for _, lab, _, _, _ in MAIN) + " | overall |",
             "|---|---|" + "---|" * 5]
    for name in arms:
        base = _baseline(name, rows)
        cells, vs = [], []
        for key in ("id", "ood"):
            for metric, _, better, fmt, least in MAIN:
                d = _diff(rows, name, base, key, metric)
                v = verdict(d, better, least)
                vs.append(v)
                cells.append(f"{_ci(d, fmt)} {v}")
        overall = ("wins" if "win" in vs and "loss" not in vs else "loses" if "loss" in vs and "win" not in vs
                   else "mixed" if "win" in vs else "ties")
        lines.append(f"| {name} | {base.split(' (')[0]} | " + " | ".join(cells) + f" | **{overall}** |")
    return "\n".join(lines)


def _what_stops(results: dict, rows: dict, arms: list[str], best_sk: str) -> str:
    """The measured quantities that limit GAD here, in sentences generated from the numbers."""
    summaries = [monitor_summary(a) for a in results["arms"]]
    acc = _mean(s[M.DISC_EVAL_ACCURACY]["last"] for s in summaries)
    acc_w = _mean(s[M.DISC_EVAL_ACCURACY]["warmup_end"] for s in summaries)
    ident = _mean(s[M.DISC_EVAL_IDENTICAL]["last"] for s in summaries)
    rho = _mean(s[M.DISC_EVAL_RHO_LOGRATIO]["adversarial_mean"] for s in summaries)
    rho_t = _mean(s[M.DISC_EVAL_RHO_TEACHER]["adversarial_mean"] for s in summaries)
    t = results["teacher"]["eval"]
    gap = {k: _mean(v[k]["teacher_nll"] for v in rows[best_sk].values()) - t[k]["teacher_nll"] for k in ("id", "ood")}
    pre = {k: _mean(v[k]["teacher_nll"] for v in rows["pretrained (start)"].values()) for k in ("id", "ood")}
    sk_ident = _mean(v["id"]["identical_to_teacher"] for v in rows[best_sk].values())
    lines = ["## What the measurements say about why", "",
             f"- Room left: the teacher's own samples score teacher NLL {t['id']['teacher_nll']:.3f} (ID) / "
             f"{t['ood']['teacher_nll']:.3f} (OOD); the pretrained student {pre['id']:.3f} / {pre['ood']:.3f}; the "
             f"best SeqKD is {gap['id']:+.3f} / {gap['ood']:+.3f} above the teacher.",
             f"- The discriminator (all GAD settings and seeds, held-out monitor): accuracy on held-out pairs "
             f"{acc_w:.2f} at the end of the warmup stage, {acc:.2f} at the last check (0.5 = chance); "
             f"ρ(D, log p_T − log p_S) {rho:.2f} and ρ(D, log p_T) {rho_t:.2f} averaged over the adversarial stage's "
             f"checks; {ident:.0%} of the student's held-out samples were the teacher's response word for word at the "
             f"last check (best SeqKD on ID evaluation prompts: {sk_ident:.0%} equal to the teacher's first sample)."]
    limits = []
    if _ok(acc) and acc < 0.6:
        limits.append(f"D is near chance on held-out pairs ({acc:.2f})")
    if _ok(rho) and rho < 0.2:
        limits.append(f"its reward barely ranks samples by the log-ratio it should estimate (ρ {rho:.2f})")
    if _ok(ident) and ident > 0.3:
        limits.append(f"{ident:.0%} of samples are identical to the teacher's response, pairs no D can order")
    if limits:
        lines.append("- What stops GAD here: " + "; ".join(limits) + ".")
    else:
        lines.append("- The discriminator passes the monitor's checks (held-out accuracy ≥ 0.6, ρ with the "
                     "log-ratio ≥ 0.2, identical share ≤ 30%): where GAD still does not win, the limit is the "
                     "policy update per generator step (a GRPO step on a learned reward against a supervised step on "
                     "the teacher's text), not the discriminator.")
    es = [results["seqkd"]["single"][str(x)] for x in results["seeds"]]
    one = _mean(next((c["val_nll"] for c in r["curve"] if c["step"] >= r["epoch_steps"]), float("nan")) for r in es)
    best = _mean(min(c["val_nll"] for c in r["curve"]) for r in es)
    lines.append(f"- Where the adversarial stage starts: after one epoch (GAD's warmup) SeqKD's held-out NLL is "
                 f"{one:.3f}, at its best {best:.3f} (start {_mean(r['curve'][0]['val_nll'] for r in es):.3f}); "
                 f"SeqKD's own best step: {', '.join(str(r['best_step']) for r in es)} vs GAD's "
                 f"{results['settings']['generator_steps']} generator steps.")
    lines.append("- Scale (a judgement from the figures above, not a measurement): where the monitor passes and GAD "
                 "still loses, a GRPO step on a learned reward moves this student less than a supervised step on "
                 "the teacher's text, so GAD needs a regime where SeqKD's signal is spent while the student still "
                 "differs from the teacher (a bigger capacity gap, open-ended answers, a larger teacher budget) - "
                 "models larger than a CPU study can train; where the monitor fails, the limit is the "
                 "discriminator's data (held-out accuracy, identical pairs) before it is the scale.")
    return "\n".join(lines)


def _setup(w, results: dict, S: dict) -> None:
    m, a = results["models"], results["teacher"]
    k = S["multi_k"]
    w("## Setup")
    w("")
    w("- Task language (`bench/study/language.py`): count, repeat, name a fruit (teacher: apple .55, banana .25, "
      "cherry .12, plum .08), describe an animal (two of 8 adjectives); ID and OOD wordings; validity is the "
      "task's exact rule.")
    w(f"- Teacher: {m['teacher']['params']:,} parameters, {S['teacher_steps']} steps on {S['teacher_corpus']} "
      f"teacher-style examples. Student: {m['student']['params']:,} parameters, pretrained {S['pretrain_steps']} "
      f"steps on generic-style text, never on teacher outputs.")
    w(f"- **Teacher budget, equal for every method: {S['n_train']} training responses + {S['n_val']} held out**, "
      f"sampled at temperature 1 and collected as text (`gad.llm.teacher.collect_local`). Training set 'N x 1': "
      f"{S['n_train']} prompts x 1 response; 'N/k x k': the first {S['n_train'] // k} of those prompts x {k} "
      f"independent responses, one row each (the library's discriminator takes one teacher response per group, so "
      f"'several positives' is approximated honestly by repeated prompts: each row is its own group with its own "
      f"positive). The {S['n_val']} held-out responses serve SeqKD's early stopping and GAD's discriminator monitor "
      f"(RunConfig `held_out`, test_fraction 0): no method trains on them. Budget validity: "
      + ", ".join(f"{n} {v:.3f}" for n, v in a["train_valid"].items()) + ".")
    w(f"- SeqKD from the pretrained student: batch {S['seqkd_batch']}, lr {S['seqkd_lr']:g}, a checkpoint per epoch, "
      f"stopped after {S['patience']} epochs without improvement of the held-out responses' NLL (at most "
      f"{S['max_epochs']}); the best checkpoint is the baseline.")
    w(f"- GAD from the same pretrained student (the paper's recipe): warmup stage = one epoch at batch "
      f"{S['gad_batch']} ({S['n_train'] // S['gad_batch']} steps: {S['disc_only_steps']} discriminator-only, then "
      f"SeqKD at lr {S['seqkd_lr']:g} with the discriminator training beside it), then the adversarial stage "
      f"({S['gad_batch']} prompts x {S['group_size']} samples at temperature {S['temperature']}, the library's "
      f"defaults otherwise). **Fixed generator budget: every GAD run is stopped after {S['generator_steps']} "
      f"generator optimiser steps** (warmup + adversarial; discriminator-only steps are extra and reported). "
      f"SeqKD's best step count is in the SeqKD table below; its batch is {S['seqkd_batch']} prompts, GAD's "
      f"{S['gad_batch']} prompts x {S['group_size']} samples.")
    w("- GAD settings (RunConfig fields): " + "; ".join(
        f"**{x['name']}**: " + ", ".join(f"{k2}={v}" for k2, v in x.items() if k2 != "name") for x in S["arms"]) + ".")
    w(f"- Monitor (gad.training.monitor): every {S['disc_eval_every']} steps, {S['disc_eval_prompts']} held-out "
      f"prompts x {S['disc_eval_samples']} fresh student samples against the held-out teacher responses; "
      f"monitor_teacher = the study's teacher (white-box).")
    w(f"- Evaluation (`bench/study/evaluate.py`): {S['eval_prompts']} prompts per set x {S['eval_samples']} samples at "
      f"temperature 1, the same prompts and sampling seeds for every method.")
    w("")


def _monitor_section(w, results: dict, arms: list[str]) -> None:
    w("## The discriminator through training (held-out monitor)")
    w("")
    w("Mean ± sd over seeds. 'warmup end' = the last check of the warmup stage; 'adv' = mean over the adversarial "
      "stage's checks; 'last' = the last check. The training-time `disc_accuracy` leaves identical pairs out; "
      "`disc_identical` is their share. D-only steps: adversarial steps the policy waited for D (disc_warmup_steps).")
    w("")
    w("| GAD setting | D-only steps | held-out acc: warmup end → last | ρ(D, log p_T − log p_S): warmup end, adv | "
      "ρ(D, log p_T): adv | identical share: last | spread: last | training disc_accuracy / identical (adv) |")
    w("|---|---|---|---|---|---|---|---|")

    def f(vals, fmt="{:.2f}"):
        vals = [v for v in vals if _ok(v)]
        return "n/a" if not vals else f"{fmt.format(statistics.fmean(vals))} ± {fmt.format(mean_sd(vals)[1])}"

    for name in arms:
        runs = [a for a in results["arms"] if a["name"] == name]
        ms = [monitor_summary(a) for a in runs]
        w(f"| {name} | {f([a['disc_only_adversarial_steps'] for a in runs], '{:.0f}')} | "
          f"{f([m[M.DISC_EVAL_ACCURACY]['warmup_end'] for m in ms])} → "
          f"{f([m[M.DISC_EVAL_ACCURACY]['last'] for m in ms])} | "
          f"{f([m[M.DISC_EVAL_RHO_LOGRATIO]['warmup_end'] for m in ms])}, "
          f"{f([m[M.DISC_EVAL_RHO_LOGRATIO]['adversarial_mean'] for m in ms])} | "
          f"{f([m[M.DISC_EVAL_RHO_TEACHER]['adversarial_mean'] for m in ms])} | "
          f"{f([m[M.DISC_EVAL_IDENTICAL]['last'] for m in ms])} | {f([m[M.DISC_EVAL_SPREAD]['last'] for m in ms])} | "
          f"{f([m[M.DISC_ACCURACY] for m in ms])} / {f([m[M.DISC_IDENTICAL] for m in ms])} |")
    w("")


def _identical_and_cost(w, results: dict, rows: dict, teacher: dict) -> None:
    w("## Samples identical to the teacher's, and what each method costs")
    w("")
    w("Identical share: evaluation samples (temperature 1) equal word for word to the teacher's first sample for the "
      "prompt (the teacher's own other samples give the reference). Wall and CPU seconds per run (one thread; "
      "SeqKD includes its per-epoch early-stopping checks, GAD the monitor, both the final evaluation).")
    w("")
    w("| method | ID identical | OOD identical | generator steps | wall s | CPU s |")
    w("|---|---|---|---|---|---|")
    w(f"| teacher (reference) | {teacher['id']['identical_to_teacher']:.3f} | "
      f"{teacher['ood']['identical_to_teacher']:.3f} | | | |")
    for name, per in rows.items():
        vals = list(per.values())
        sec = "" if vals[0]["seconds"] is None else "{:.0f} ± {:.0f}".format(*mean_sd([v["seconds"] for v in vals]))
        cpu = "" if vals[0]["cpu_seconds"] is None else "{:.0f} ± {:.0f}".format(
            *mean_sd([v["cpu_seconds"] for v in vals]))
        steps = ", ".join(str(v["generator_steps"]) for v in vals)
        w(f"| {name} | {'{:.3f} ± {:.3f}'.format(*mean_sd([v['id']['identical_to_teacher'] for v in vals]))} | "
          f"{'{:.3f} ± {:.3f}'.format(*mean_sd([v['ood']['identical_to_teacher'] for v in vals]))} | {steps} | "
          f"{sec} | {cpu} |")
    w("")


def _tables(w, results: dict, rows: dict, teacher: dict, seeds: list[int], best_sk: str) -> None:
    w("## SeqKD with early stopping")
    w("")
    w("| training set | seed | best step (epochs) | stopped at | held-out NLL: start, best, at stop |")
    w("|---|---|---|---|---|")
    for data in SEQKD:
        for s in seeds:
            r = results["seqkd"][data][str(s)]
            best = next(c for c in r["curve"] if c["step"] == r["best_step"])
            w(f"| {data} | {s} | {r['best_step']} ({r['best_step'] / r['epoch_steps']:.0f}) | {r['steps_run']} | "
              f"{r['curve'][0]['val_nll']:.3f}, {best['val_nll']:.3f}, {r['curve'][-1]['val_nll']:.3f} |")
    w("")
    for key, title in SETS:
        w(f"## All measures on {title}: mean ± sd over {len(seeds)} seeds")
        w("")
        w("| method | " + " | ".join(label for _, label, _, _, _ in METRICS) + " |")
        w("|---|" + "---|" * len(METRICS))
        w("| teacher (reference) | " + " | ".join(fmt.format(_get(teacher[key], k)) if _ok(_get(teacher[key], k))
                                                 else "" for k, _, _, fmt, _ in METRICS) + " |")
        for name, per in rows.items():
            vals = list(per.values())
            cells = []
            for k, _, _, fmt, _ in METRICS:
                m, sd = mean_sd([_get(v[key], k) for v in vals])
                cells.append(f"{fmt.format(m)} ± {fmt.format(sd)}")
            w(f"| {name} | " + " | ".join(cells) + " |")
        w("")
        w(f"Difference from {best_sk.split(' (')[0]}, paired by seed (mean ± sd; **bold** = beyond seed noise, "
          f"paired t-test at 5%, and at least the measure's smallest difference):")
        w("")
        w("| method | " + " | ".join(label.split(" (")[0] for _, label, _, _, _ in METRICS) + " |")
        w("|---|" + "---|" * len(METRICS))
        for name in rows:
            if name in (best_sk, "pretrained (start)"):
                continue
            cells = []
            for k, _, _better, fmt, least in METRICS:
                d = _diff(rows, name, best_sk, key, k)
                text = f"{fmt.format(d['mean'])} ± {fmt.format(d['sd'])}"
                cells.append(f"**{text}**" if d["exceeds_seed_noise"] and abs(d["mean"]) >= least else text)
            w(f"| {name} | " + " | ".join(cells) + " |")
        w("")
    w("## Per seed")
    w("")
    w("| seed | method | ID teacher NLL | ID valid | OOD teacher NLL | OOD valid | ID valid by task |")
    w("|---|---|---|---|---|---|---|")
    for name, per in rows.items():
        for s, v in sorted(per.items()):
            bt = ", ".join(f"{k} {x:.2f}" for k, x in v["id"]["valid_by_task"].items())
            w(f"| {s} | {name} | {v['id']['teacher_nll']:.3f} | {v['id']['valid']:.3f} | {v['ood']['teacher_nll']:.3f} "
              f"| {v['ood']['valid']:.3f} | {bt} |")
    w("")


def plot(results: dict, rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    S = results["settings"]
    seeds = sorted(results["seeds"])
    names = [n for n in rows if not n.startswith("pretrained")]
    short = [n.replace(" (best, early-stopped)", "") for n in names]
    fig, axes = plt.subplots(2, 4, figsize=(22, 10))
    ax = axes[0, 0]
    for data, ls in (("single", "-"), ("multi", "--")):
        for s in seeds:
            r = results["seqkd"][data][str(s)]
            ax.plot([c["step"] for c in r["curve"]], [c["val_nll"] for c in r["curve"]], ls, marker="o", ms=3,
                    label=f"{data} seed {s}")
    ax.set_yscale("log")
    ax.set_xlabel("SeqKD step")
    ax.set_title("SeqKD: held-out teacher-response NLL", fontsize=9)
    ax.legend(fontsize=6)
    teacher = results["teacher"]["eval"]
    for ax, key, metric, title in ((axes[0, 1], "id", "teacher_nll", "ID: teacher NLL of samples (lower = closer)"),
                                   (axes[0, 2], "ood", "teacher_nll", "OOD: teacher NLL of samples"),
                                   (axes[0, 3], "id", "valid", "ID: valid answers"),
                                   (axes[1, 0], "ood", "valid", "OOD: valid answers")):
        for j, n in enumerate(names):
            vals = [_get(v[key], metric) for v in rows[n].values()]
            ax.scatter([j] * len(vals), vals, s=14, alpha=0.7)
            m, sd = mean_sd(vals)
            ax.errorbar([j], [m], yerr=[sd], fmt="_", color="black", capsize=5)
        ax.axhline(teacher[key][metric], color="grey", ls="--", lw=1, label="teacher")
        ax.set_xticks(range(len(names)), short, rotation=60, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    panels = ((axes[1, 1], M.DISC_EVAL_ACCURACY, "held-out D accuracy (identical pairs apart; 0.5 = chance)", (0, 1)),
              (axes[1, 2], M.DISC_EVAL_RHO_LOGRATIO, "ρ(D, log p_T − log p_S), solid; ρ(D, log p_T), dotted", (-1, 1)),
              (axes[1, 3], M.DISC_EVAL_IDENTICAL, "held-out samples identical to the teacher's response", (0, 1)))
    for ax, key, title, ylim in panels:
        for i, name in enumerate(a["name"] for a in S["arms"]):
            runs = [a for a in results["arms"] if a["name"] == name]
            series = {}
            for a in runs:
                for st, v, _ in _checks(a, key):
                    series.setdefault(st, []).append(v)
            xs = sorted(series)
            line = ax.plot(xs, [statistics.fmean(series[x]) for x in xs], "-", marker="o", ms=2, label=name,
                           color=f"C{i}")
            if key == M.DISC_EVAL_RHO_LOGRATIO:
                series = {}
                for a in runs:
                    for st, v, _ in _checks(a, M.DISC_EVAL_RHO_TEACHER):
                        series.setdefault(st, []).append(v)
                xs = sorted(series)
                ax.plot(xs, [statistics.fmean(series[x]) for x in xs], ":", color=line[0].get_color(), lw=1)
        ax.axvline(S["n_train"] // S["gad_batch"], color="grey", ls=":", lw=1)
        if key == M.DISC_EVAL_ACCURACY:
            ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_ylim(*ylim)
        ax.set_xlabel("GAD step (dotted: end of the warmup stage, N x 1 data)")
        ax.set_title(title + f", mean over {len(seeds)} seeds", fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle(f"GAD vs SeqKD from the pretrained student, {S['n_train']} + {S['n_val']} teacher responses, "
                 f"{S['generator_steps']} GAD generator steps, {len(seeds)} seeds (bench/quality_study.py)",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
