"""`gad-studio` command line. Flags are generated from the pydantic models that define them.

`train`'s flags come from RunConfig's fields, `collect`'s and `evaluate`'s endpoint flags from
gad.llm.api_client.Endpoint's: help texts, defaults and choices are the models', never retyped here.
The project's own errors (ConfigError, DataError, EndpointError: things a user can fix) exit with
code 2 and a one-paragraph message; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import typing
from pathlib import Path

from pydantic import BaseModel

from gad.data.examples import DataError
from gad.llm.api_client import Endpoint, EndpointError
from gad.llm.eval_config import BUILTIN_SETS, EvalConfig
from gad.training.config import ConfigError, RunConfig
from gad.training.progress import quiet_libraries

EXIT_USAGE = 2
EXIT_UNUSABLE = 1        # the command ran, but its result cannot be trusted (e.g. a judge's garbage)
USER_ERRORS = (ConfigError, DataError, EndpointError)


class HelpFormatter(argparse.HelpFormatter):
    """Shows a flag's default only when there is one to show (never 'default: None')."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or "(default:" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        if action.option_strings and action.nargs != 0:
            return text + " (default: %(default)s)"
        return text


def _flag_kind(annotation) -> tuple[type | None, tuple | None]:
    """(argparse type, choices) for a field annotation; type None means a boolean switch."""
    if annotation is bool:
        return None, None
    if typing.get_origin(annotation) is typing.Literal:
        return str, typing.get_args(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(args) == 1:  # X | None
        return _flag_kind(args[0])
    return {int: int, float: float}.get(annotation, str), None


def add_model_flags(parser: argparse.ArgumentParser, model: type[BaseModel], fields: typing.Iterable[str],
                    prefix: str = "") -> None:
    """One flag per field (--group-size for group_size, --no-lora for booleans), default None so that
    an unset flag leaves the model's own default (or a YAML file's value) in place."""
    dash = f"--{prefix}-" if prefix else "--"
    for name in fields:
        field = model.model_fields[name]
        help_text = (field.description or "").replace("%", "%%")
        if not field.is_required() and field.default is not None:
            help_text += f" (default: {field.default})"
        kind, choices = _flag_kind(field.annotation)
        flag = dash + name.replace("_", "-")
        dest = f"{prefix}_{name}" if prefix else name
        if kind is None:
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=dest, type=kind, choices=choices, default=None, help=help_text)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field (the studio's `runs` commands use it too)."""
    add_model_flags(parser, RunConfig, RunConfig.model_fields)


ENDPOINT_FLAG_FIELDS = [f for f in Endpoint.model_fields if f != "api_key_value"]  # the key itself: never a flag


def _endpoint_flags(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    add_model_flags(parser, Endpoint, ENDPOINT_FLAG_FIELDS, prefix)


def _endpoint(ns: argparse.Namespace, prefix: str = "") -> Endpoint:
    from pydantic import ValidationError

    dest = (prefix + "_") if prefix else ""
    flag = f"--{prefix}-" if prefix else "--"
    values = {f: getattr(ns, dest + f) for f in ENDPOINT_FLAG_FIELDS if getattr(ns, dest + f) is not None}
    missing = [flag + f.replace("_", "-") for f in ("base_url", "model") if f not in values]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required")
    try:
        return Endpoint(**values)
    except ValidationError as err:  # Endpoint hides inputs in its errors: a pasted key is not echoed
        e = err.errors()[0]
        raise ConfigError(f"{flag}{str(e['loc'][0]).replace('_', '-')}: {e['msg']}") from None


def _config_from_args(ns: argparse.Namespace) -> RunConfig:
    from gad.training.config import load_config

    overrides = {name: getattr(ns, name) for name in RunConfig.model_fields if getattr(ns, name, None) is not None}
    return load_config(ns.config, overrides)


def cmd_train(ns: argparse.Namespace) -> int:
    cfg = _config_from_args(ns)
    if cfg.output_dir.exists() and not cfg.output_dir.is_dir():
        raise ConfigError(f"--output {cfg.output} is a file; a run's output is a folder (it is created if missing)")
    from gad.training.distributed import shutdown
    from gad.training.pipeline import run  # heavy imports only when training
    from gad.training.progress import MultiProgress, StopFile
    from gad.training.rundir import list_checkpoints, write_rank_error

    quiet_libraries()
    progress = StopFile(cfg.output_dir)
    if not ns.no_progress:
        done = list_checkpoints(Path(cfg.output))
        progress = MultiProgress(_LazyBar(done[-1][0] if done else 0), progress)
    try:
        result = run(cfg, progress)
    except BaseException as err:
        # In a group of processes the launcher's log interleaves every rank's output (warnings included), so
        # the rank that failed first leaves its own traceback where the supervisor can quote it.
        if "RANK" in os.environ and not isinstance(err, KeyboardInterrupt):
            write_rank_error(cfg.output_dir, int(os.environ["RANK"]), traceback.format_exc())
        shutdown(barrier=False)  # a failing rank must not wait for peers that may never arrive
        raise
    shutdown()
    print(f"{result.status}: {result.global_step}/{result.total_steps} steps; run folder {result.run_dir}")
    print(f"  metrics:    {result.run_dir / 'metrics.jsonl'}")
    print(f"  samples:    {result.run_dir / 'samples.jsonl'}")
    print(f"  curves:     {result.run_dir / 'curves.png'}")
    for w in result.warnings:
        print(f"  warning:    {w}")
    if result.final_checkpoint:
        print(f"  checkpoint: {result.final_checkpoint}  (student/ and discriminator/ load with from_pretrained)")
    return 0 if result.status == "succeeded" else 1


class _LazyBar:
    """A BarProgress created at the first stage, when the total is known."""

    def __init__(self, initial: int):
        self.initial, self.bar = initial, None

    def __getattr__(self, name):
        from gad.training.progress import BarProgress, Progress

        if name == "stage_started":
            def start(stage, first, last, total):
                if self.bar is None:
                    self.bar = BarProgress(total, self.initial)
                self.bar.stage_started(stage, first, last, total)
            return start
        target = self.bar if self.bar is not None else Progress()
        return getattr(target, name)


def cmd_tiny_model(ns: argparse.Namespace) -> int:
    from gad.toy.tiny import build_tiny_model

    if Path(ns.out_dir).exists() and not Path(ns.out_dir).is_dir():
        raise ConfigError(f"{ns.out_dir} is a file; the tiny model is written to a folder")
    out = build_tiny_model(ns.out_dir, seed=ns.seed, hidden_size=ns.hidden_size, layers=ns.layers)
    print(f"tiny model written to {out}")
    return 0


def cmd_collect(ns: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from gad.data.examples import load_examples
    from gad.llm.cache import default_cache_path
    from gad.llm.teacher import check_output_file, collect_api, collect_local

    if not ns.local and not (ns.base_url and ns.model):
        raise ConfigError("collect needs --base-url and --model (or --local MODEL for a local teacher)")
    examples = load_examples(ns.data, limit=ns.limit)
    check_output_file(ns.output)
    endpoint = None if ns.local else _endpoint(ns)  # checked before the progress bar and any request
    bar = tqdm(total=len(examples), unit="prompt", dynamic_ncols=True, disable=ns.no_progress)

    def on_result(result, ledger):
        bar.update(1)
        bar.set_postfix(ok=ledger.ok + ledger.cached, failed=ledger.failed, refused=ledger.refused,
                        cached=ledger.cached, cost=f"${ledger.cost:.4f}", refresh=False)

    try:
        if endpoint is None:
            quiet_libraries()
            res = collect_local(examples, ns.local, ns.output, max_new_tokens=ns.max_tokens or 512,
                                temperature=ns.temperature if ns.temperature is not None else 0.8,
                                top_p=ns.top_p or 1.0, on_result=on_result)
        else:
            res = collect_api(examples, endpoint, ns.output, cache=ns.cache, retry_final=ns.retry_failed,
                              on_result=on_result)
    finally:
        bar.close()
    led = res.ledger
    ok = sum(r["status"] == "ok" for r in res.records)
    print(f"collected {ok}/{len(res.records)} responses into {res.output}")
    if endpoint is not None:
        print(f"  requests sent {led.get('requests', 0)} (retries {led.get('retries', 0)}), from cache "
              f"{led.get('cached', 0)}, refused {led.get('refused', 0)}, failed {led.get('failed', 0)}; "
              f"cache {ns.cache or default_cache_path()}")
        if led.get("lost_earlier"):
            print(f"  {led['lost_earlier']} requests of an earlier run were in flight when it stopped (sent, maybe "
                  f"billed, no answer kept); they were asked again")
    print(f"  tokens: prompt {led['prompt_tokens']}, completion {led['completion_tokens']}; "
          f"cost this run ${led.get('cost', 0.0):.4f}; {led['elapsed_s']:.1f}s")
    failed = [r for r in res.records if r["status"] != "ok"]
    for r in failed[:5]:
        print(f"  {r['status']}: id {r['id']}: {r['error']}")
    if failed:
        print(f"  {len(failed)} prompts have no response: `--retry-failed` asks the refused and rejected ones "
              f"again; training can skip them (--skip-missing-responses)")
    return 0 if ok else 1


def _eval_config_from_args(ns: argparse.Namespace) -> EvalConfig:
    """The EvalConfig of `evaluate`'s flags (unset flags keep EvalConfig's defaults)."""
    from pydantic import ValidationError

    values = {f: getattr(ns, f) for f in EvalConfig.model_fields if f != "sets" and getattr(ns, f) is not None}
    values["sets"] = [s.strip() for s in ns.sets.split(",") if s.strip()]
    try:
        return EvalConfig(**values)
    except ValidationError as err:
        e = err.errors()[0]
        raise ConfigError(f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}") from None


def cmd_evaluate(ns: argparse.Namespace) -> int:
    from gad.llm.evaluate import ModelSpec, evaluate

    quiet_libraries()
    config = _eval_config_from_args(ns)
    models = [ModelSpec.parse(m) for m in ns.model]
    table = evaluate(models, config.sets, _endpoint(ns, "judge"), ns.output, cache=ns.cache, **config.run_kwargs())
    print((Path(ns.output) / "table.md").read_text())
    print(f"per-sample verdicts: {Path(ns.output) / 'samples.jsonl'}; chart: {Path(ns.output) / 'table.png'}")
    health = table["health"]
    if health["mostly_unusable"]:
        print(f"error: {health['failed'] + health['unparsed']} of {health['total']} judge verdicts are unusable "
              f"({health['failed']} failed, {health['unparsed']} unparsed): the scores above mean nothing. "
              f"See the 'error' and 'judge_text' fields in {Path(ns.output) / 'samples.jsonl'}; check the judge "
              f"model (it must answer with two scores on its first line) and the endpoint.", file=sys.stderr)
        return EXIT_UNUSABLE
    return 0


CACHE_HELP = ("Response cache file, shared by every collection and judgement so nothing answered is paid for "
              "twice (default: $GAD_DATA_DIR/cache/responses.jsonl, GAD_DATA_DIR defaulting to ./data).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gad-studio", description="Black-box distillation of LLMs with GAD.",
                                     formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", formatter_class=HelpFormatter,
                       help="Train a student with gad, seqkd or offpolicy (resumes if OUTPUT has checkpoints).")
    p.add_argument("--config", help="YAML file of RunConfig fields; flags override it.")
    p.add_argument("--no-progress", action="store_true", help="No progress bar.")
    _add_config_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("tiny-model", help="Build a tiny random Qwen2-architecture model offline (tests, demos).",
                       formatter_class=HelpFormatter)
    p.add_argument("out_dir", help="Folder to write the model and its tokenizer to.")
    p.add_argument("--seed", type=int, default=0, help="Seed of the random weights.")
    p.add_argument("--hidden-size", type=int, default=64, help="Hidden size (4 attention heads, so a multiple of 4).")
    p.add_argument("--layers", type=int, default=2, help="Number of transformer layers.")
    p.set_defaults(func=cmd_tiny_model)

    p = sub.add_parser("collect", formatter_class=HelpFormatter,
                       help="Collect teacher responses from an OpenAI-compatible endpoint (or a local model).")
    p.add_argument("--data", required=True, help="Prompt file (.jsonl, .json, .csv, .tsv, .parquet; .gz allowed).")
    p.add_argument("--output", required=True, help="Output JSONL, one line per prompt, ready as training data.")
    p.add_argument("--cache", default=None, help=CACHE_HELP)
    p.add_argument("--limit", type=int, default=None, help="Only the first N prompts.")
    p.add_argument("--local", default=None,
                   help="Use this local model folder / hub id as the teacher instead of an API.")
    p.add_argument("--retry-failed", action="store_true", help="Ask again for prompts refused or rejected before.")
    p.add_argument("--no-progress", action="store_true", help="No progress bar.")
    _endpoint_flags(p)
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("evaluate", formatter_class=HelpFormatter,
                       help="Judge models on prompt sets (the paper's protocol); writes a Table-4-style table.")
    p.add_argument("--model", action="append", required=True,
                   help="Model folder / hub id, or NAME=PATH; a data file is read as ready responses. Repeatable.")
    p.add_argument("--sets", default=",".join(BUILTIN_SETS),
                   help="Built-in set names or prompt files, comma-separated (default: %(default)s).")
    p.add_argument("--output", required=True, help="Output folder.")
    p.add_argument("--cache", default=None, help=CACHE_HELP)
    add_model_flags(p, EvalConfig, [f for f in EvalConfig.model_fields if f != "sets"])
    _endpoint_flags(p, "judge")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("toy", help="The paper's toy experiment: SeqKD vs GAD on a Gaussian mixture.",
                       formatter_class=HelpFormatter)
    p.add_argument("--seed", type=int, action="append", help="Seed(s); repeat the flag for several (default: 0-7).")
    p.add_argument("--teacher-modes", type=str, default=None,
                   help="Teacher mixture as 'mean:std:weight,...' over 0..9 (default: the paper-like 3-mode mix).")
    p.add_argument("--steps", type=int, default=None, help="Optimisation steps for each student.")
    p.add_argument("--output", required=True, help="Folder for toy.json and toy.png.")
    p.set_defaults(func=_cmd_toy)
    return parser


def _cmd_toy(ns):
    from gad.toy.experiment import cmd_toy

    return cmd_toy(ns)


def dispatch(ns: argparse.Namespace, user_errors: tuple[type[BaseException], ...] = ()) -> int:
    """Run a parsed command. The project's own errors (a user can fix them) print one message and
    exit 2; any other exception is a bug and propagates with its traceback."""
    try:
        return ns.func(ns)
    except (*USER_ERRORS, *user_errors) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume (finished work is kept)", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    return dispatch(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
