"""A run as a group of processes (several GPUs, or several CPU processes in tests), supervised by the
worker that claimed it.

The group is `accelerate launch ... -m gad.cli train --config launch.yaml` in its own process group.
It knows nothing of the database: it writes metrics.jsonl, samples.jsonl and events.jsonl (stage
starts, checkpoints, messages) into the run folder, and stops after its current step, keeping a
checkpoint, when the folder holds a file named STOP. This supervisor follows those files into the
database (the same DbProgress the in-process path uses), keeps the heartbeat, and turns a cancel
or a lost claim into the STOP file. Resume is the in-process story: the group resumes from the
newest checkpoint, and records at or before the supervisor's last step are not sent twice.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import yaml

POLL_SECONDS = 0.5
STOP_GRACE_SECONDS = 600  # a cancelled group finishes its step and saves; then it is killed


class Tail:
    """New complete JSON lines of a file that only grows, or is rewritten shorter on a resume."""

    def __init__(self, path: Path, floor: int = -1):
        self.path, self.offset = path, 0
        self.floor = floor      # records at or before this step were forwarded already (or precede the resume)
        self.newest = floor

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        if self.path.stat().st_size < self.offset:  # rewritten shorter by the group's resume: read it again
            self.offset, self.floor = 0, self.newest
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next poll
        self.offset += end
        records = [json.loads(line) for line in chunk[:end].splitlines() if line.strip()]
        fresh = [r for r in records if r.get("step", self.floor + 1) > self.floor]
        self.newest = max([self.newest] + [r["step"] for r in fresh if "step" in r])
        return fresh


GROUP_PID = "group.pid"  # the process group of a running launch, so a later attempt can end a leftover


def kill_stale_group(out: Path) -> None:
    """A worker killed outright (SIGKILL) cannot stop its group, which runs in a session of its own:
    the next attempt on the run ends it first, so two groups never train one folder."""
    pid_file = out / GROUP_PID
    if not pid_file.is_file():
        return
    try:
        os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)
    except (ProcessLookupError, ValueError):  # long gone, or a torn file: nothing to stop
        pass
    pid_file.unlink(missing_ok=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_group(cfg, progress, log, *, processes: int, strategy: str, cpu: bool, after_step: int) -> str:
    """Train `cfg` as `processes` processes; returns the run's final status (succeeded | cancelled | failed)."""
    from gad.training.launch import launch_command
    from gad.training.progress import STOP_FILE
    from gad.training.rundir import clear_rank_errors

    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / STOP_FILE).unlink(missing_ok=True)
    (out / "result.json").unlink(missing_ok=True)
    clear_rank_errors(out)  # a failure of an earlier attempt must not be quoted for this one
    config_path = out / "launch.yaml"
    config_path.write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
    launch = launch_command(config_path, strategy=strategy, num_processes=processes, main_process_port=free_port(),
                            cpu=cpu)
    kill_stale_group(out)
    (out / "events.jsonl").unlink(missing_ok=True)  # events of earlier attempts are history
    log.write(f"launching {processes} processes ({strategy}{', cpu' if cpu else ''}): {launch.shell()}")
    with open(out / "group.log", "ab") as group_log:
        proc = subprocess.Popen(launch.argv, env={**os.environ, **launch.env}, start_new_session=True,
                                stdout=group_log, stderr=subprocess.STDOUT)
    (out / GROUP_PID).write_text(str(proc.pid))
    # Records up to the checkpoint the group resumes from are in the database already.
    files = {"events": Tail(out / "events.jsonl"), "metrics": Tail(out / "metrics.jsonl", after_step),
             "samples": Tail(out / "samples.jsonl", after_step)}
    stop_sent = None
    try:
        while True:
            running = proc.poll() is None
            _forward(files, progress)
            if not running:
                break
            if stop_sent is None and progress.should_stop():
                (out / STOP_FILE).touch()
                stop_sent = time.monotonic()
                log.write("stop requested: the group stops after its current step and keeps a checkpoint")
            elif stop_sent is not None and time.monotonic() - stop_sent > STOP_GRACE_SECONDS:
                os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(POLL_SECONDS)
    finally:
        if proc.poll() is None:  # the worker itself is going down: take the group with it
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        (out / GROUP_PID).unlink(missing_ok=True)
    result = out / "result.json"
    if result.is_file():  # written by this attempt (removed before the launch): succeeded or cancelled
        return json.loads(result.read_text())["status"]
    raise GroupFailed(failure_message(out, proc.returncode))


def failure_message(out: Path, returncode: int | None) -> str:
    """Why a group failed, in its own words: the traceback of the rank that failed first (each rank leaves
    its own, gad.training.rundir), not the launcher log's last lines, which interleave every rank's output
    and often end in another rank's warnings or its reaction to the first failure."""
    from gad.training.rundir import rank_errors

    errors = rank_errors(out)
    if errors:
        rank, text = next(iter(errors.items()))
        others = f" (ranks {', '.join(map(str, list(errors)[1:]))} failed after it)" if len(errors) > 1 else ""
        return (f"the training processes exited with code {returncode}; rank {rank} failed first{others}:\n"
                + "\n".join(text.strip().splitlines()[-25:]))
    tail = (out / "group.log").read_text(errors="replace").splitlines()[-20:] if (out / "group.log").is_file() else []
    return (f"the training processes exited with code {returncode} and no rank recorded an error; last lines of "
            f"group.log:\n" + "\n".join(tail))


def _forward(files: dict[str, Tail], progress) -> None:
    for event in files["events"].read():
        if event["event"] == "stage":
            progress.stage_started(event["stage"], event["first_step"], event["last_step"], event["total_steps"])
        elif event["event"] == "checkpoint":
            progress.checkpoint(event["step"], event["path"])
        elif event["event"] == "message":
            progress.message(event["text"])
    for record in files["metrics"].read():
        progress.metrics(record)
    for record in files["samples"].read():
        progress.sample(record)


class GroupFailed(RuntimeError):
    """The training processes died (the message carries the end of their log)."""
