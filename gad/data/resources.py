"""Data files shipped inside the package (see gad/data/datasets/README.md for origins and licences)."""

from __future__ import annotations

from pathlib import Path

DATASET_DIR = Path(__file__).parent / "datasets"

# Built-in evaluation sets by short name (the paper's names in the comments).
EVAL_SETS = {
    "vicuna": "vicuna_80.jsonl",          # Vicuna 80
    "selfinst": "self_instruct_252.jsonl",  # Self-Instruct 252
    "dolly": "dolly_151.jsonl",            # Dolly subset (151 of the paper's 500)
    "lmsys": "arena_hard_500.jsonl",       # LMSYS stand-in: Arena-Hard v0.1 prompts
}
DEMO_TRAIN_SET = "teacher_alpaca_gpt4_demo_999.jsonl"  # prompts with GPT-4-style responses


def bundled_dataset_paths() -> list[Path]:
    return sorted(DATASET_DIR.glob("*.jsonl"))


def dataset_path(name: str) -> Path:
    """A built-in set by short name or file name."""
    file = EVAL_SETS.get(name, name)
    path = DATASET_DIR / file
    if not path.is_file():
        raise FileNotFoundError(f"no built-in dataset '{name}'; known: {', '.join(EVAL_SETS)}, {DEMO_TRAIN_SET}")
    return path
