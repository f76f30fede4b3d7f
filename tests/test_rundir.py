"""The run folder's layout (gad.training.rundir), and the error a failing rank leaves for its supervisor."""

from __future__ import annotations

import json
import os
import time

from gad.cli import main
from gad.training.rundir import (
    checkpoint_dir,
    checkpoint_step,
    clear_rank_errors,
    list_checkpoints,
    rank_errors,
    student_dir,
    write_rank_error,
)


def test_checkpoints_are_listed_complete_and_in_step_order(tmp_path):
    for step in (10, 2):
        ck = checkpoint_dir(tmp_path, step)
        student_dir(ck).mkdir(parents=True)
        (ck / "meta.json").write_text(json.dumps({"stage": "warmup", "global_step": step}))
    student_dir(checkpoint_dir(tmp_path, 12)).mkdir(parents=True)           # no meta.json: an interrupted save
    (tmp_path / "checkpoints" / "step-14.partial").mkdir()
    found = list_checkpoints(tmp_path)
    assert [s for s, _, _ in found] == [2, 10]
    assert found[1][1] == tmp_path / "checkpoints" / "step-10" and checkpoint_step(found[1][1]) == 10
    assert found[0][2]["stage"] == "warmup"


def test_rank_errors_come_oldest_first_and_are_cleared(tmp_path):
    write_rank_error(tmp_path, 1, "first failure")
    earlier = time.time() - 10
    os.utime(tmp_path / "errors" / "rank-1.txt", (earlier, earlier))
    write_rank_error(tmp_path, 0, "a peer gave up")
    assert list(rank_errors(tmp_path).items()) == [(1, "first failure"), (0, "a peer gave up")]
    clear_rank_errors(tmp_path)
    assert rank_errors(tmp_path) == {}


def test_a_failing_rank_leaves_its_traceback(tmp_path, monkeypatch, pairs_file):
    monkeypatch.setenv("RANK", "3")
    out = tmp_path / "run"
    rc = None
    try:
        rc = main(["train", "--student", str(tmp_path / "no-such-model"), "--data", str(pairs_file), "--output",
                   str(out), "--steps", "2", "--no-progress"])
    except Exception:  # noqa: BLE001 - what is asserted is the file the failure leaves, whatever is raised
        pass
    assert rc != 0
    errors = rank_errors(out)
    assert list(errors) == [3] and "Traceback" in errors[3] and "no-such-model" in errors[3]


def test_a_failed_group_is_explained_by_the_rank_that_failed_first(tmp_path):
    from app.services.group_run import failure_message

    (tmp_path / "group.log").write_text("[rank1] UserWarning: a DDP warning\n" * 30)
    assert "no rank recorded an error" in failure_message(tmp_path, 1)
    assert "a DDP warning" in failure_message(tmp_path, 1)
    write_rank_error(tmp_path, 1, "Traceback (most recent call last):\nRuntimeError: the real cause")
    earlier = time.time() - 10
    os.utime(tmp_path / "errors" / "rank-1.txt", (earlier, earlier))
    write_rank_error(tmp_path, 0, "Traceback (most recent call last):\nRuntimeError: peer gone")
    message = failure_message(tmp_path, 1)
    assert "rank 1 failed first (ranks 0 failed after it)" in message and "the real cause" in message
    assert "DDP warning" not in message
