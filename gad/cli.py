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
    from gad.pipeline import list_checkpoints, plan_stages, run  # heavy imports only when training
    from gad.progress import BarProgress

    _quiet_libraries()
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


def _quiet_libraries() -> None:
    """Our own bar and messages replace the libraries' per-file bars and info logs."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        import datasets

        datasets.utils.logging.disable_progress_bar()
        datasets.utils.logging.set_verbosity_error()
    except ImportError:
        pass


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

    p = sub.add_parser("toy", help="The paper's toy experiment: SeqKD vs GAD on a Gaussian mixture.")
    p.add_argument("--seed", type=int, action="append", help="Seed(s); repeat the flag for several.")
    p.add_argument("--teacher-modes", type=str, default=None,
                   help="Teacher mixture as 'mean:std:weight,...' over 0..9 (default: the paper-like 3-mode mix).")
    p.add_argument("--steps", type=int, default=None, help="Optimisation steps for each student.")
    p.add_argument("--output", required=True, help="Folder for toy.json and toy.png.")
    p.set_defaults(func=_cmd_toy)
    return parser


def _cmd_toy(ns):
    from gad.toy import cmd_toy

    return cmd_toy(ns)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        return ns.func(ns)
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
