"""Shared fixtures: one tiny offline model per test session, small data files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from gad.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture(scope="session")
def pairs_file(tmp_path_factory) -> Path:
    """16 real prompt/teacher pairs (Alpaca-GPT4 demo set) in the normalised JSONL format."""
    src = REPO / "gad" / "datasets" / "teacher_alpaca_gpt4_demo_999.jsonl"
    out = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    out.write_text("".join(src.read_text(encoding="utf-8").splitlines(keepends=True)[:16]), encoding="utf-8")
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
