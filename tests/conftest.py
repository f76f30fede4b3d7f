"""Shared fixtures: one tiny offline model per test session, small data files."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from gad.data.resources import DATASET_DIR

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from gad.toy.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture(scope="session")
def pairs_file(tmp_path_factory) -> Path:
    """16 real prompt/teacher pairs (Alpaca-GPT4 demo set) in the normalised JSONL format."""
    src = DATASET_DIR / "teacher_alpaca_gpt4_demo_999.jsonl"
    out = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    out.write_text("".join(src.read_text(encoding="utf-8").splitlines(keepends=True)[:16]), encoding="utf-8")
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def free_port() -> int:
    """A loopback port nobody listens on now (servers under test bind it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 180, what: str = "condition", interval: float = 0.3):
    """Poll `predicate` until it returns something true (returned), or fail naming what never came."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def stop_group(proc: subprocess.Popen | None, grace: float = 20) -> None:
    """Stop a process started with start_new_session=True and its children: SIGTERM, then SIGKILL after `grace`."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
