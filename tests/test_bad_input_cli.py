"""Every bad input on the command line gets exit 2 and one clear message; real bugs keep their traceback.

Hostile files are made by each test; a local OpenAI-compatible server counts what would have been paid.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from app.devserver import DevServer
from gad.cli import EXIT_UNUSABLE, EXIT_USAGE, build_parser, dispatch, main
from gad.llm.api_client import Endpoint
from gad.training.config import ConfigError, RunConfig
from tests.conftest import REPO, read_jsonl


@pytest.fixture(autouse=True)
def data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("GAD_DATA_DIR", str(tmp_path / "data"))


def run(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return rc, out.out, out.err


def prompts(path, texts) -> str:
    path.write_text("".join(json.dumps({"id": f"q{i}", "prompt": t}) + "\n" for i, t in enumerate(texts)))
    return str(path)


# --- the project's errors are one line; anything else is a bug -------------------------------------------
def test_only_the_projects_errors_are_user_errors():
    def raising(err):
        return argparse.Namespace(func=lambda ns: (_ for _ in ()).throw(err))

    assert dispatch(raising(ConfigError("bad setting"))) == EXIT_USAGE
    with pytest.raises(ValueError, match="a real bug"):
        dispatch(raising(ValueError("a real bug")))            # propagates: its traceback is shown
    with pytest.raises(FileNotFoundError):
        dispatch(raising(FileNotFoundError("not ours")))


def test_lone_surrogate_prompt_is_exit_2(tmp_path, capsys):
    data = tmp_path / "s.jsonl"
    data.write_text('{"prompt": "fine"}\n{"prompt": "half an emoji \\ud83d"}\n')
    with DevServer() as srv:
        rc, _, err = run(capsys, "collect", "--base-url", srv.base_url, "--model", "m", "--api-key-env", "",
                         "--data", data, "--output", tmp_path / "o.jsonl", "--no-progress")
        assert srv.requests() == []
    assert rc == EXIT_USAGE and f"{data}:2: field 'prompt' holds an invalid character" in err


# --- models that cannot be loaded ----------------------------------------------------------------------------
def test_student_folder_that_does_not_exist(tmp_path, capsys, pairs_file):
    rc, _, err = run(capsys, "train", "--student", tmp_path / "no" / "such" / "model", "--data", pairs_file,
                     "--output", tmp_path / "run", "--no-progress")
    assert rc == EXIT_USAGE and err.strip() == f"error: model folder not found: {tmp_path / 'no' / 'such' / 'model'}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hub_model_not_cached_and_hub_unreachable_is_said_quickly(tmp_path, pairs_file):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}",
           "PYTHONPATH": str(REPO)}
    env.pop("HF_HUB_OFFLINE", None)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gad.cli", "train", "--student", "Qwen/Qwen2.5-0.5B-Instruct",
                           "--data", str(pairs_file), "--output", str(tmp_path / "run"), "--no-progress"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    elapsed = time.monotonic() - t0
    assert proc.returncode == EXIT_USAGE and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "not in the local Hugging Face cache" in proc.stderr and "cannot be reached" in proc.stderr
    assert "hf download Qwen/Qwen2.5-0.5B-Instruct" in proc.stderr
    assert elapsed < 30, elapsed                                    # imports included; not a minute of retries


def test_hub_model_in_offline_mode(monkeypatch, tmp_path):
    from huggingface_hub import constants

    from gad.training.modeling import check_model_source

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ConfigError, match=r"not in the local Hugging Face cache .* offline mode is on"):
        check_model_source("Qwen/Qwen2.5-0.5B-Instruct")
    with pytest.raises(ConfigError, match="neither an existing folder nor a hub id"):
        check_model_source("not a valid id!")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no config.json"):
        check_model_source(str(tmp_path / "empty"))


# --- outputs that are in the way ---------------------------------------------------------------------------------
def test_train_output_naming_an_existing_file(tmp_path, capsys, pairs_file, tiny_model):
    taken = tmp_path / "taken.txt"
    taken.write_text("mine")
    rc, _, err = run(capsys, "train", "--student", tiny_model, "--data", pairs_file, "--output", taken)
    assert rc == EXIT_USAGE and "is a file; a run's output is a folder" in err and taken.read_text() == "mine"


def test_other_outputs_in_the_way(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("x")
    assert run(capsys, "tiny-model", taken)[0] == EXIT_USAGE
    data = prompts(tmp_path / "p.jsonl", ["a"])
    with DevServer() as srv:
        rc, _, err = run(capsys, "collect", "--base-url", srv.base_url, "--model", "m", "--api-key-env", "",
                         "--data", data, "--output", tmp_path, "--no-progress")
        assert rc == EXIT_USAGE and "is a folder; give a file name" in err
        answers = tmp_path / "a.jsonl"
        answers.write_text(json.dumps({"id": "q0", "prompt": "a", "response": "b"}) + "\n")
        rc, _, err = run(capsys, "evaluate", "--model", f"m={answers}", "--sets", data, "--output", taken,
                         "--judge-base-url", srv.base_url, "--judge-model", "j", "--judge-api-key-env", "")
        assert rc == EXIT_USAGE and "evaluate writes a folder" in err
        assert srv.requests() == []


# --- evaluate checks everything it can before paying the judge ----------------------------------------------
def test_teacher_file_not_matching_the_prompt_set_costs_nothing(tmp_path, capsys, tiny_model):
    data = prompts(tmp_path / "set.jsonl", ["alpha?", "beta?", "gamma?"])
    teacher = tmp_path / "teacher.jsonl"
    teacher.write_text(json.dumps({"id": "q0", "prompt": "alpha?", "response": "A."}) + "\n")
    with DevServer() as srv:
        rc, _, err = run(capsys, "evaluate", "--model", f"student={tiny_model}", "--model", f"teacher={teacher}",
                         "--sets", data, "--output", tmp_path / "ev", "--judge-base-url", srv.base_url,
                         "--judge-model", "j", "--judge-api-key-env", "", "--teacher", "teacher")
        assert srv.requests() == []                                # no reference bought, nothing generated
    assert rc == EXIT_USAGE and f"{teacher}: no response for 2 of 3 prompts (first: id 'q1')" in err
    assert not (tmp_path / "ev" / "responses").exists()


@pytest.mark.parametrize("bad, message", [
    (["--sets", "no-such-set"], "no such prompt set: not a built-in one"),
    (["--teacher", "nobody"], "--teacher nobody: no --model row has that name"),
    (["--model", "ghost=missing_answers.jsonl"], "missing_answers.jsonl: responses file not found"),
    (["--model", "ghost=/no/such/model/folder"], "model folder not found: /no/such/model/folder"),
])
def test_evaluate_refuses_before_paying(tmp_path, capsys, bad, message):
    data = prompts(tmp_path / "set.jsonl", ["alpha?"])
    answers = tmp_path / "a.jsonl"
    answers.write_text(json.dumps({"id": "q0", "prompt": "alpha?", "response": "A."}) + "\n")
    with DevServer() as srv:
        args = ["evaluate", "--model", f"m={answers}", "--sets", data, "--output", tmp_path / "ev",
                "--judge-base-url", srv.base_url, "--judge-model", "j", "--judge-api-key-env", ""]
        args = [a for a in args if not (bad[0] == "--sets" and a in ("--sets", data))] + bad
        rc, _, err = run(capsys, *args)
        assert srv.requests() == []
    assert rc == EXIT_USAGE and message in err


# --- a judge that returns garbage ---------------------------------------------------------------------------------
def test_garbage_judge_is_loud_and_non_zero(tmp_path, capsys):
    data = prompts(tmp_path / "set.jsonl", ["one?", "two?", "three?", "four?"])
    answers = tmp_path / "a.jsonl"
    answers.write_text("".join(json.dumps({"id": f"q{i}", "prompt": "?", "response": "an answer"}) + "\n"
                               for i in range(4)))
    # references are written; verdicts are prose without scores, and one verdict request is rejected
    faults = [{"match": "three?", "fault": "400"}, {"match": "Assistant 1", "fault": "reply",
                                                   "text": "Both answers are fine, I think."}]
    with DevServer(faults=faults) as srv:
        rc, out, err = run(capsys, "evaluate", "--model", f"m={answers}", "--sets", data, "--output", tmp_path / "ev",
                           "--judge-base-url", srv.base_url, "--judge-model", "j", "--judge-api-key-env", "")
    assert rc == EXIT_UNUSABLE
    assert err.startswith("error: 4 of 4 judge verdicts are unusable (1 failed, 3 unparsed)")
    table = json.loads((tmp_path / "ev" / "table.json").read_text())
    row = table["rows"][0]
    assert (row["judged"], row["failed"], row["unparsed"]) == (0, 1, 3) and table["health"]["mostly_unusable"]
    md = (tmp_path / "ev" / "table.md").read_text()
    assert "nan" not in md and "n/a [n/a, n/a]" in md and "WARNING: 4 of 4 verdicts are unusable" in md
    samples = {s["id"]: s["orders"]["model_first"]["status"] for s in read_jsonl(tmp_path / "ev" / "samples.jsonl")}
    assert samples == {"q0": "unparsed", "q1": "unparsed", "q2": "failed", "q3": "unparsed"}  # table and samples agree


def test_a_few_bad_verdicts_do_not_fail_the_run(tmp_path, capsys):
    data = prompts(tmp_path / "set.jsonl", ["one?", "two?", "three?", "four?"])
    answers = tmp_path / "a.jsonl"
    answers.write_text("".join(json.dumps({"id": f"q{i}", "prompt": "?", "response": "an answer"}) + "\n"
                               for i in range(4)))
    faults = [{"match": "Assistant 1", "fault": "reply", "text": "no scores here", "times": 1}]
    with DevServer(faults=faults) as srv:
        rc, out, _ = run(capsys, "evaluate", "--model", f"m={answers}", "--sets", data, "--output", tmp_path / "ev",
                         "--judge-base-url", srv.base_url, "--judge-model", "j", "--judge-api-key-env", "")
    assert rc == 0 and "| 3 | 0 | 1 |" in out                       # judged 3, failed 0, unparsed 1


# --- help texts -------------------------------------------------------------------------------------------------------
def subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_help_never_says_default_none_and_lists_choices():
    subs = subparsers()
    for name, parser in subs.items():
        text = parser.format_help()
        assert "(default: None)" not in text and "[default:" not in text, name
        for action in parser._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    train = subs["train"].format_help()
    for choices in ("{gad,seqkd,offpolicy}", "{chat,plain}", "{auto,float32,bfloat16,float16}"):
        assert choices in train.split("options:")[0], choices   # in the usage lines
    assert "(default: 42)" in " ".join(train.split())             # the model's default, shown once


def test_endpoint_flags_are_generated_from_the_endpoint_model():
    subs = subparsers()
    for command, prefix in (("collect", "--"), ("evaluate", "--judge-")):
        actions = {a.option_strings[0]: a for a in subs[command]._actions if a.option_strings}
        for name, field in Endpoint.model_fields.items():
            if name == "api_key_value":
                assert prefix + "api-key-value" not in actions       # the key itself is never a flag
                continue
            action = actions[prefix + name.replace("_", "-")]
            assert action.help.startswith(field.description.replace("%", "%%")), name
            if field.default not in (None, ...) and not field.is_required():
                assert f"(default: {field.default})" in action.help, name
    fields = {a.dest for a in subs["train"]._actions} - {"help", "config", "no_progress"}
    assert fields == set(RunConfig.model_fields)


def test_devserver_faults_file_errors(tmp_path, capsys):
    from app.cli import main as studio_main  # the devserver is the studio's tool, not the library's

    def studio(*args):
        rc = studio_main([str(a) for a in args])
        out = capsys.readouterr()
        return rc, out.out, out.err

    assert "file not found" in studio("devserver", "--faults", tmp_path / "none.json")[2]
    bad = tmp_path / "bad.json"
    bad.write_text('[{"match": "*", "fault": "explode"}]')
    rc, _, err = studio("devserver", "--faults", bad)
    assert rc == EXIT_USAGE and "unknown fault 'explode'" in err
