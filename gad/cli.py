"""`gad-studio` command line. Flags of `train` are generated from RunConfig's fields and help texts.

Bad configuration or data exits with code 2 and a one-paragraph message, no traceback.
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

from gad.config import ConfigError, RunConfig
from gad.data import DataError
from gad.progress import quiet_libraries

EXIT_USAGE = 2


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field: --group-size for group_size, --no-lora for booleans, ..."""
    for name, field in RunConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        help_text = field.description or ""
        if field.default is not None and field.default is not ... and not field.is_required():
            help_text += f" [default: {field.default}]"
        ann = field.annotation
        args = typing.get_args(ann)
        if ann is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            continue
        base = next((a for a in args if a is not type(None)), ann) if args else ann
        choices = typing.get_args(base) if typing.get_origin(base) is typing.Literal else None
        kind = {int: int, float: float}.get(base, str)
        parser.add_argument(flag, dest=name, type=kind, choices=choices, default=None, help=help_text)


def _config_from_args(ns: argparse.Namespace) -> RunConfig:
    from gad.config import load_config

    overrides = {name: getattr(ns, name) for name in RunConfig.model_fields if getattr(ns, name, None) is not None}
    return load_config(ns.config, overrides)


def cmd_train(ns: argparse.Namespace) -> int:
    cfg = _config_from_args(ns)
    from gad.pipeline import list_checkpoints, run  # heavy imports only when training

    quiet_libraries()
    bar = None
    if not ns.no_progress:
        done = list_checkpoints(Path(cfg.output))
        bar = _LazyBar(done[-1][0] if done else 0)
    result = run(cfg, bar)
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
        from gad.progress import BarProgress, Progress

        if name == "stage_started":
            def start(stage, first, last, total):
                if self.bar is None:
                    self.bar = BarProgress(total, self.initial)
                self.bar.stage_started(stage, first, last, total)
            return start
        target = self.bar if self.bar is not None else Progress()
        return getattr(target, name)


def cmd_tiny_model(ns: argparse.Namespace) -> int:
    from gad.tiny import build_tiny_model

    out = build_tiny_model(ns.out_dir, seed=ns.seed, hidden_size=ns.hidden_size, layers=ns.layers)
    print(f"tiny model written to {out}")
    return 0


def _endpoint_flags(p: argparse.ArgumentParser, prefix: str = "") -> None:
    dash = f"--{prefix}-" if prefix else "--"
    p.add_argument(f"{dash}base-url", required=True, help="OpenAI-compatible base URL (e.g. https://api.openai.com/v1).")
    p.add_argument(f"{dash}model", required=True, help="Model name at that endpoint.")
    p.add_argument(f"{dash}api-key-env", default="OPENAI_API_KEY",
                   help="Name of the environment variable that holds the API key ('' for none).")
    p.add_argument(f"{dash}temperature", type=float, default=None, help="Sampling temperature (default: the endpoint's).")
    p.add_argument(f"{dash}top-p", type=float, default=None, help="Nucleus sampling (default: the endpoint's).")
    p.add_argument(f"{dash}max-tokens", type=int, default=None, help="Maximum completion tokens.")
    p.add_argument(f"{dash}system-prompt", default=None, help="System message put before every prompt.")
    p.add_argument(f"{dash}concurrency", type=int, default=16, help="Requests in flight at once.")
    p.add_argument(f"{dash}rpm", type=float, default=None, help="Requests-per-minute limit.")
    p.add_argument(f"{dash}tpm", type=float, default=None, help="Tokens-per-minute limit.")
    p.add_argument(f"{dash}max-retries", type=int, default=6, help="Retries of a retryable failure.")
    p.add_argument(f"{dash}timeout", type=float, default=120.0, help="Seconds before one request times out.")
    p.add_argument(f"{dash}price-prompt", type=float, default=None, help="USD per million prompt tokens.")
    p.add_argument(f"{dash}price-completion", type=float, default=None, help="USD per million completion tokens.")


def _endpoint(ns, prefix: str = ""):
    from pydantic import ValidationError

    from gad.api_client import Endpoint

    key = (prefix + "_") if prefix else ""
    fields = ["base_url", "model", "api_key_env", "temperature", "top_p", "max_tokens", "system_prompt",
              "concurrency", "rpm", "tpm", "max_retries", "timeout", "price_prompt", "price_completion"]
    values = {f: getattr(ns, key + f) for f in fields}
    values["api_key_env"] = values["api_key_env"] or None
    try:
        return Endpoint(**values)
    except ValidationError as err:
        e = err.errors()[0]
        raise ConfigError(f"--{prefix + '-' if prefix else ''}{str(e['loc'][0]).replace('_', '-')}: {e['msg']}") from None


def cmd_collect(ns: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from gad.data import load_examples
    from gad.teacher import collect_api, collect_local

    examples = load_examples(ns.data, limit=ns.limit)
    bar = tqdm(total=len(examples), unit="prompt", dynamic_ncols=True, disable=ns.no_progress)

    def on_result(result, ledger):
        bar.update(1)
        bar.set_postfix(ok=ledger.ok + ledger.cached, failed=ledger.failed, refused=ledger.refused,
                        cached=ledger.cached, cost=f"${ledger.cost:.4f}", refresh=False)

    if ns.local:
        quiet_libraries()
        res = collect_local(examples, ns.local, ns.output, max_new_tokens=ns.max_tokens or 512,
                            temperature=ns.temperature if ns.temperature is not None else 0.8,
                            top_p=ns.top_p or 1.0, on_result=on_result)
    else:
        from gad.api_client import EndpointError

        try:
            res = collect_api(examples, _endpoint(ns), ns.output, retry_final=ns.retry_failed, on_result=on_result)
        except EndpointError as err:
            bar.close()
            print(f"error: {err}", file=sys.stderr)
            return EXIT_USAGE
    bar.close()
    led = res.ledger
    ok = sum(r["status"] == "ok" for r in res.records)
    print(f"collected {ok}/{len(res.records)} responses into {res.output}")
    print(f"  requests sent {led.get('requests', 0)} (retries {led.get('retries', 0)}), from cache {led.get('cached', 0)}, "
          f"refused {led.get('refused', 0)}, failed {led.get('failed', 0)}")
    print(f"  tokens: prompt {led['prompt_tokens']}, completion {led['completion_tokens']}; "
          f"cost this run ${led.get('cost', 0.0):.4f}; {led['elapsed_s']:.1f}s")
    failed = [r for r in res.records if r["status"] != "ok"]
    for r in failed[:5]:
        print(f"  {r['status']}: id {r['id']}: {r['error']}")
    return 0 if ok else 1


def cmd_evaluate(ns: argparse.Namespace) -> int:
    from gad.api_client import EndpointError
    from gad.evaluate import ModelSpec, evaluate

    quiet_libraries()
    sets = [s.strip() for s in ns.sets.split(",") if s.strip()]
    models = [ModelSpec.parse(m) for m in ns.model]
    try:
        evaluate(models, sets, _endpoint(ns, "judge"), ns.output, limit=ns.limit,
                 max_new_tokens=ns.max_new_tokens, greedy=ns.greedy, both_orders=ns.both_orders,
                 teacher=ns.teacher, seed=ns.seed)
    except EndpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    print((Path(ns.output) / "table.md").read_text())
    print(f"per-sample verdicts: {Path(ns.output) / 'samples.jsonl'}; chart: {Path(ns.output) / 'table.png'}")
    return 0


def cmd_devserver(ns: argparse.Namespace) -> int:
    from gad.devserver import serve

    serve(ns.host, ns.port, ns.latency, ns.faults)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gad-studio", description="Black-box distillation of LLMs with GAD.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="Train a student with gad, seqkd or offpolicy (resumes if OUTPUT has checkpoints).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", help="YAML file of RunConfig fields; flags override it.")
    p.add_argument("--no-progress", action="store_true", help="No progress bar.")
    _add_config_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("tiny-model", help="Build a tiny random Qwen2-architecture model offline (tests, demos).")
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.set_defaults(func=cmd_tiny_model)

    p = sub.add_parser("collect", help="Collect teacher responses from an OpenAI-compatible endpoint (or a local model).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="Prompt file (any supported format).")
    p.add_argument("--output", required=True, help="Output JSONL; its cache is OUTPUT.cache.jsonl (resumes).")
    p.add_argument("--limit", type=int, default=None, help="Only the first N prompts.")
    p.add_argument("--local", default=None, help="Use this local model folder / hub id as the teacher instead of an API.")
    p.add_argument("--retry-failed", action="store_true", help="Ask again for prompts refused or rejected before.")
    p.add_argument("--no-progress", action="store_true")
    _endpoint_flags(p)
    for action in p._actions:  # with --local no endpoint is needed
        if action.dest in ("base_url", "model"):
            action.required = False
    p.set_defaults(func=_checked_collect)

    p = sub.add_parser("evaluate", help="Judge models on prompt sets (the paper's protocol); writes a Table-4-style table.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", action="append", required=True,
                   help="Model folder / hub id, or NAME=PATH; a data file is read as ready responses. Repeatable.")
    p.add_argument("--sets", default="vicuna,selfinst,dolly,lmsys", help="Built-in set names or files, comma-separated.")
    p.add_argument("--output", required=True, help="Output folder.")
    p.add_argument("--limit", type=int, default=None, help="First N prompts of each set.")
    p.add_argument("--max-new-tokens", type=int, default=1536)
    p.add_argument("--greedy", action="store_true", help="Greedy decoding instead of temperature 0.8.")
    p.add_argument("--both-orders", action="store_true", help="Judge in both presentation orders; report the flip rate.")
    p.add_argument("--teacher", default=None, help="Name of the --model row that is the teacher (for overlap and selection).")
    p.add_argument("--seed", type=int, default=0)
    _endpoint_flags(p, "judge")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("devserver", help="A local OpenAI-compatible server with latency and faults (tests, dry runs).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--latency", type=float, default=0.0, help="Seconds added to every request.")
    p.add_argument("--faults", default=None, help="JSON file of fault rules (see gad/devserver.py).")
    p.set_defaults(func=cmd_devserver)

    p = sub.add_parser("toy", help="The paper's toy experiment: SeqKD vs GAD on a Gaussian mixture.")
    p.add_argument("--seed", type=int, action="append", help="Seed(s); repeat the flag for several.")
    p.add_argument("--teacher-modes", type=str, default=None,
                   help="Teacher mixture as 'mean:std:weight,...' over 0..9 (default: the paper-like 3-mode mix).")
    p.add_argument("--steps", type=int, default=None, help="Optimisation steps for each student.")
    p.add_argument("--output", required=True, help="Folder for toy.json and toy.png.")
    p.set_defaults(func=_cmd_toy)
    return parser


def _checked_collect(ns):
    if not ns.local and not (ns.base_url and ns.model):
        raise ConfigError("collect needs --base-url and --model (or --local MODEL for a local teacher)")
    return cmd_collect(ns)


def _cmd_toy(ns):
    from gad.toy import cmd_toy

    return cmd_toy(ns)


def dispatch(ns: argparse.Namespace, user_errors: tuple[type[BaseException], ...] = ()) -> int:
    """Run a parsed command; errors a user can fix print one message and exit 2, no traceback."""
    try:
        return ns.func(ns)
    except (ConfigError, DataError, FileNotFoundError, *user_errors) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume from the last checkpoint", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    return dispatch(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
