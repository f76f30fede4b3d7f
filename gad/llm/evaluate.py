"""Evaluate models on prompt sets with the LLM judge: a table like the paper's Table 4.

For each set and model: responses (generated from a model folder/hub id with EvalConfig's temperature
and max_new_tokens, or read from a responses file, e.g. the teacher's), the judge's
reference answers, the judge's two scores per prompt (optionally in both orders), then per (model,
set): the aggregate score with a bootstrap 95% interval, mean raw scores, verdicts judged / failed
(never obtained) / unparsed (obtained, no scores in them), flip rate, mean response length (words)
and, when a teacher row is given, n-gram F1 / ROUGE-L against the teacher.

Everything that can be checked is checked before the judge is paid: the sets load, model names are
unique, the teacher row exists, every responses file answers every prompt, every model folder or
hub id can be found, the output is a folder. Judge requests go through the shared response cache
(gad/llm/cache.py), so a verdict or reference is never bought twice.

Outputs in DIR: samples.jsonl (one line per judged response), table.md, table.csv, table.json,
table.png, and responses/<model>/<set>.jsonl. `table["health"]["mostly_unusable"]` is true when
more than half the verdicts failed or could not be parsed: the scores then mean nothing.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gad.data.examples import SUPPORTED_SUFFIXES, DataError, Example, load_examples
from gad.data.resources import EVAL_SETS, dataset_path
from gad.llm.api_client import ChatRunner, Endpoint, Ledger, mask_url
from gad.llm.cache import ResponseStore, import_legacy_cache, open_cache
from gad.llm.eval_config import default
from gad.llm.judge import (
    FORMULA_NOTE,
    judge_messages,
    length_controlled_win_rates,
    parse_scores,
    self_preference_warning,
    summarise,
    verdict,
    verdict_health,
    win_rate,
)
from gad.llm.metrics import length_stats, model_means, overlap_report, select_checkpoint
from gad.training.config import ConfigError

RESPONSE_SUFFIXES = SUPPORTED_SUFFIXES


def _is_data_file_name(path: str) -> bool:
    return path.lower().endswith(RESPONSE_SUFFIXES)


@dataclass
class ModelSpec:
    name: str
    path: str | None = None            # a model folder or hub id to generate with
    responses: str | None = None       # or a file of responses to judge as they are

    @staticmethod
    def parse(text: str) -> ModelSpec:
        """'NAME=PATH' or 'PATH'; a path to a data file is a responses file."""
        name, _, target = text.partition("=") if "=" in text else ("", "", text)
        target = target or text
        name = name or Path(target.rstrip("/")).name or target
        if _is_data_file_name(target) and Path(target).is_file():
            return ModelSpec(name, responses=target)
        return ModelSpec(name, path=target)


def load_set(name: str, limit: int | None) -> tuple[str, list[Example]]:
    if name in EVAL_SETS:
        return name, load_examples(dataset_path(name), limit=limit)
    if not Path(name).exists():
        raise DataError(name, f"no such prompt set: not a built-in one ({', '.join(EVAL_SETS)}) and no such file")
    label = Path(name).stem if not name.lower().endswith(".gz") else Path(Path(name).stem).stem
    return label, load_examples(name, limit=limit)


def responses_from_file(spec: ModelSpec, examples: list[Example]) -> list[str]:
    rows = load_examples(spec.responses)
    by_id = {r.id: r.response for r in rows}
    by_prompt = {r.prompt_text: r.response for r in rows}
    out, missing = [], []
    for ex in examples:
        text = by_id.get(ex.id) if ex.id in by_id else by_prompt.get(ex.prompt_text)
        if text is None:
            missing.append(ex.id)
        out.append(text or "")
    if missing:
        raise DataError(spec.responses, f"no response for {len(missing)} of {len(examples)} prompts "
                                        f"(first: id '{missing[0]}'); responses are matched by id, then by prompt text")
    return out


def generate_responses(spec: ModelSpec, examples: list[Example], *, max_new_tokens: int, temperature: float,
                       greedy: bool, seed: int, batch_size: int = 16, trust_remote_code: bool = False,
                       use_vllm: bool = False) -> list[str]:
    """The model's answers to the examples: transformers, or vLLM's offline engine with use_vllm."""
    from gad.llm.generation import generate_for_messages, vllm_generate

    generate = vllm_generate if use_vllm else generate_for_messages
    extra = {} if use_vllm else {"batch_size": batch_size}
    return [text for text, *_ in generate(
        spec.path, [ex.messages for ex in examples], max_new_tokens=max_new_tokens, temperature=temperature,
        greedy=greedy, seed=seed, trust_remote_code=trust_remote_code, **extra)]


def _sample(model: str, label: str, ex: Example, response: str, reference: str | None) -> dict:
    """One line of samples.jsonl; `orders` fills with one verdict per presentation order."""
    return {"model": model, "set": label, "id": ex.id, "prompt": ex.prompt_text, "response": response,
            "reference": reference, "orders": {}}


def preflight(models: list[ModelSpec], loaded: list[tuple[str, list[Example]]], teacher: str | None,
              out: Path) -> dict[tuple[str, str], list[str]]:
    """Every check that needs no judge, before the judge is paid; returns the responses read from files."""
    from gad.training.modeling import check_model_source

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output {out} is a file; evaluate writes a folder of tables")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise DataError("--model", f"model names must be unique, got {names}; name them with NAME=PATH")
    if teacher is not None and teacher not in names:
        raise ConfigError(f"--teacher {teacher}: no --model row has that name (rows: {', '.join(names)})")
    labels = [label for label, _ in loaded]
    if len(set(labels)) != len(labels):
        raise DataError("--sets", f"two sets have the same name {labels}; rename a file")
    from_files: dict[tuple[str, str], list[str]] = {}
    for spec in models:
        if spec.responses:
            for label, exs in loaded:
                from_files[(spec.name, label)] = responses_from_file(spec, exs)
        elif _is_data_file_name(spec.path):
            raise DataError(spec.path, "responses file not found")
        else:
            check_model_source(spec.path)
    return from_files


def evaluate(models: list[ModelSpec], sets: list[str], judge: Endpoint, output: str | Path, *,
             limit: int | None = None, max_new_tokens: int = default("max_new_tokens"),
             temperature: float = default("temperature"), greedy: bool = False, both_orders: bool = False,
             teacher: str | None = None, seed: int = 0, cache: str | Path | ResponseStore | None = None,
             say: Callable[[str], None] = print, use_vllm: bool = False,
             on_result: Callable[[dict, Ledger], None] | None = None) -> dict:
    """Judge every model on every set; `cache`: a store, a file, or None for the shared cache. The
    settings are gad.llm.eval_config.EvalConfig's (`evaluate(..., **config.run_kwargs())`).
    `on_result(result, ledger)`: called after each judge answer (references, then verdicts), for progress."""
    out = Path(output)
    loaded = [load_set(s, limit) for s in sets]
    from_files = preflight(models, loaded, teacher, out)
    out.mkdir(parents=True, exist_ok=True)
    with open_cache(cache) as store:
        import_legacy_cache(store, out / "judge_cache.jsonl")  # older versions kept one per output folder
        # 1. the judge's own reference answers
        say(f"judge references: {sum(len(e) for _, e in loaded)} prompts")
        refs = {label: ChatRunner(judge, store, on_result).run([ex.messages for ex in exs]) for label, exs in loaded}

        # 2. each model's responses
        responses: dict[tuple[str, str], list[str]] = {}
        for spec in models:
            generated = iter(())
            if not spec.responses:  # one pass over every set: the model (or vLLM engine) loads once
                every = [ex for _, exs in loaded for ex in exs]
                say(f"generating: {spec.name} on {len(every)} prompts ({', '.join(label for label, _ in loaded)})")
                generated = iter(generate_responses(spec, every, max_new_tokens=max_new_tokens,
                                                    temperature=temperature, greedy=greedy, seed=seed,
                                                    use_vllm=use_vllm))
            for label, exs in loaded:
                texts = from_files[(spec.name, label)] if spec.responses else [next(generated) for _ in exs]
                responses[(spec.name, label)] = texts
                _write_responses(out / "responses" / spec.name / f"{label}.jsonl", exs, texts)

        # 3. judge every (model, set, prompt), in one or both orders
        jobs, requests = [], []
        for spec in models:
            for label, exs in loaded:
                for i, ex in enumerate(exs):
                    if refs[label][i]["status"] != "ok":
                        continue  # no reference answer: a verdict against nothing would be noise (and paid)
                    ref = refs[label][i]["response"]
                    resp = responses[(spec.name, label)][i]
                    jobs.append((spec.name, label, i, "model_first"))
                    requests.append(judge_messages(ex.prompt_text, resp, ref))
                    if both_orders:
                        jobs.append((spec.name, label, i, "reference_first"))
                        requests.append(judge_messages(ex.prompt_text, ref, resp))
        say(f"judging: {len(requests)} verdicts")
        verdicts = ChatRunner(judge, store, on_result).run(requests)

    per = _per_sample(models, loaded, responses, refs, jobs, verdicts, both_orders)
    rows = _rows(models, loaded, responses, per, both_orders, teacher, seed)
    _add_win_rates(rows, models, loaded, refs, responses, per)
    with (out / "samples.jsonl").open("w", encoding="utf-8") as fh:
        for rec in per.values():
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    table = {"rows": rows, "sets": [name for name, _ in loaded], "models": [m.name for m in models],
             "note": FORMULA_NOTE, "judge": {"base_url": mask_url(judge.base_url), "model": judge.model},
             "both_orders": both_orders, "health": verdict_health(rows), "warnings": []}
    teacher_spec = next((m for m in models if m.name == teacher), None)
    same_family = self_preference_warning(judge.model, teacher_spec and " ".join(
        filter(None, (teacher_spec.name, teacher_spec.path, teacher_spec.responses))))
    if same_family:
        table["warnings"].append(same_family)
        say(f"warning: {same_family}")
    if teacher:
        table["selected"] = _select(rows, teacher)
    (out / "table.json").write_text(json.dumps(table, indent=2))
    write_tables(table, out)
    return table


def _write_responses(path: Path, exs: list[Example], texts: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for ex, text in zip(exs, texts):
            fh.write(json.dumps({"id": ex.id, "messages": ex.messages, "response": text}, ensure_ascii=False) + "\n")


def _verdict(v: dict, order: str) -> dict:
    """One order's verdict: status ok with scores, 'unparsed' (an answer without scores), or 'failed'."""
    parsed = parse_scores(v.get("response")) if v["status"] == "ok" else None
    if parsed and order == "reference_first":
        parsed = (parsed[1], parsed[0])
    status = v["status"] if v["status"] != "ok" else ("ok" if parsed else "unparsed")
    return {"model_score": parsed[0] if parsed else None, "reference_score": parsed[1] if parsed else None,
            "judge_text": v.get("response"), "status": status, "error": v.get("error")}


def _per_sample(models, loaded, responses, refs, jobs, verdicts, both_orders) -> dict[tuple[str, str, int], dict]:
    by_label = dict(loaded)
    per: dict[tuple[str, str, int], dict] = {}
    for (name, label, i, order), v in zip(jobs, verdicts):
        ex = by_label[label][i]
        rec = per.setdefault((name, label, i), _sample(name, label, ex, responses[(name, label)][i],
                                                        refs[label][i].get("response")))
        rec["orders"][order] = _verdict(v, order)
    orders = ("model_first", "reference_first") if both_orders else ("model_first",)
    for spec in models:  # prompts the judge could not write a reference for are recorded as failed, not judged
        for label, exs in loaded:
            for i, ex in enumerate(exs):
                if (spec.name, label, i) not in per:
                    rec = _sample(spec.name, label, ex, responses[(spec.name, label)][i], None)
                    for order in orders:
                        rec["orders"][order] = {"model_score": None, "reference_score": None, "judge_text": None,
                                                "status": "failed",
                                                "error": f"no judge reference: {refs[label][i].get('error')}"}
                    per[(spec.name, label, i)] = rec
    return per


def _rows(models, loaded, responses, per, both_orders, teacher, seed) -> list[dict]:
    rows = []
    teacher_texts = {label: responses.get((teacher, label)) for label, _ in loaded} if teacher else {}
    for spec in models:
        for label, exs in loaded:
            pairs, flips, counts = [], [], {"ok": 0, "unparsed": 0, "failed": 0}
            for i in range(len(exs)):
                rec = per[(spec.name, label, i)]
                for o in rec["orders"].values():
                    counts["ok" if o["status"] == "ok" else "unparsed" if o["status"] == "unparsed" else "failed"] += 1
                got = [o for o in rec["orders"].values() if o["model_score"] is not None]
                if got:
                    m = sum(o["model_score"] for o in got) / len(got)
                    r = sum(o["reference_score"] for o in got) / len(got)
                    rec["model_score"], rec["reference_score"] = m, r
                    pairs.append((m, r))
                if len(got) == 2:
                    flips.append(len({verdict(o["model_score"], o["reference_score"]) for o in got}) > 1)
            summary = summarise(pairs, counts["unparsed"], flips if both_orders else None, seed=seed,
                                failed=counts["failed"])
            row = {"model": spec.name, "set": label, **summary.as_dict(), "verdicts": sum(counts.values()),
                   "length": length_stats(responses[(spec.name, label)])["mean"]}
            if teacher_texts.get(label) and spec.name != teacher:
                row.update(overlap_report(responses[(spec.name, label)], teacher_texts[label]))
            rows.append(row)
    return rows


def _add_win_rates(rows, models, loaded, refs, responses, per) -> None:
    """Each row's raw win rate against the judge's reference, and the length-controlled one (the win rate at
    equal lengths, gad.llm.judge.length_controlled_win_rates, fitted per set over every model)."""
    for label, exs in loaded:
        fits = {}
        for spec in models:
            pairs, model_words, reference_words = [], [], []
            for i in range(len(exs)):
                rec = per[(spec.name, label, i)]
                if rec.get("model_score") is None:
                    continue
                pairs.append((rec["model_score"], rec["reference_score"]))
                model_words.append(len(responses[(spec.name, label)][i].split()))
                reference_words.append(len((refs[label][i].get("response") or "").split()))
            fits[spec.name] = (pairs, model_words, reference_words)
        lc = length_controlled_win_rates(fits)
        for row in rows:
            if row["set"] == label:
                row["win_rate"] = win_rate(fits[row["model"]][0])
                row["lc_win_rate"] = lc[row["model"]]


def _select(rows: list[dict], teacher: str) -> dict | None:
    means = model_means(rows, exclude=teacher)
    t_rows = [r for r in rows if r["model"] == teacher]
    if not t_rows or not means:
        return None
    t_len = sum(r["length"] for r in t_rows) / len(t_rows)
    return select_checkpoint(means, t_len)


def _pct(x: float | None) -> str:
    return "" if x is None else _num(100 * x, ".0f") + "%"


def _num(x: float, fmt: str = ".1f") -> str:
    """NaN (nothing usable to average) shows as n/a, never as 'nan'."""
    return "n/a" if x != x else format(x, fmt)


def write_tables(table: dict, out: Path) -> None:
    sets, models = table["sets"], table["models"]
    cell = {(r["model"], r["set"]): r for r in table["rows"]}
    header = ["model"] + [f"{s} score" for s in sets] + [f"{s} length" for s in sets] + ["avg score"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    with (out / "table.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header + [f"{s} ci95" for s in sets])
        for m in models:
            scores = [cell[(m, s)]["score"] for s in sets]
            avg = sum(scores) / len(scores)
            md = [m] + [f"{_num(cell[(m, s)]['score'])} [{_num(cell[(m, s)]['ci_low'])}, "
                        f"{_num(cell[(m, s)]['ci_high'])}]" for s in sets] \
                + [f"{cell[(m, s)]['length']:.0f}" for s in sets] + [_num(avg)]
            lines.append("| " + " | ".join(md) + " |")
            w.writerow([m] + [round(x, 2) for x in scores] + [round(cell[(m, s)]["length"], 1) for s in sets]
                       + [round(avg, 2)]
                       + [f"{cell[(m, s)]['ci_low']:.2f}-{cell[(m, s)]['ci_high']:.2f}" for s in sets])
    lines += ["", f"Scores with bootstrap 95% intervals; length = mean words per response. {table['note']}", "",
              "| model | set | mean model score | mean reference score | win rate | length-controlled win rate "
              "| judged | failed | unparsed | flip rate | ROUGE-L vs teacher |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table["rows"]:
        flip = "" if r.get("flip_rate") is None else f"{r['flip_rate']:.0%}"
        rouge = "" if r.get("rouge_l") is None else f"{r['rouge_l']:.3f}"
        lines.append(f"| {r['model']} | {r['set']} | {_num(r['mean_model'], '.2f')} | "
                     f"{_num(r['mean_reference'], '.2f')} | {_pct(r.get('win_rate'))} | {_pct(r.get('lc_win_rate'))} | "
                     f"{r['judged']} | {r.get('failed', 0)} | {r['unparsed']} | "
                     f"{flip} | {rouge} |")
    lines.append("win rate: prompts where the model's score beats the judge's reference, ties half; "
                 "length-controlled: the win rate predicted at equal answer lengths (judges favour longer answers). "
                 "judged: prompts with a usable verdict; failed: verdicts never obtained (request failed, or no "
                 "judge reference); unparsed: the judge answered without two scores.")
    for warning in table.get("warnings", []):
        lines += ["", f"**Warning: {warning}**"]
    health = table.get("health")
    if health and health["mostly_unusable"]:
        lines += ["", f"**WARNING: {health['failed'] + health['unparsed']} of {health['total']} verdicts are unusable "
                      f"({health['failed']} failed, {health['unparsed']} unparsed): these scores mean nothing.**"]
    if table.get("selected"):
        lines.append(f"Selected (best score with length within 1.5x of the teacher's): {table['selected']['model']}")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    _plot(table, out / "table.png")


def _plot(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets, models = table["sets"], table["models"]
    cell = {(r["model"], r["set"]): r for r in table["rows"]}
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(sets) * max(1, len(models)) / 2), 4))
    width = 0.8 / len(models)
    for j, m in enumerate(models):
        xs = [i + j * width for i in range(len(sets))]
        ys = [cell[(m, s)]["score"] for s in sets]
        err = [[y - cell[(m, s)]["ci_low"] for y, s in zip(ys, sets)],
               [cell[(m, s)]["ci_high"] - y for y, s in zip(ys, sets)]]
        ax.bar(xs, ys, width, yerr=err, capsize=3, label=m)
    ax.axhline(50, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks([i + width * (len(models) - 1) / 2 for i in range(len(sets))], sets)
    ax.set_ylabel("judge score (50 = judge's reference)")
    ax.set_title("LLM-judge scores (95% bootstrap intervals)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
