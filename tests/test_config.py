"""Config defaults, YAML + flag overrides, and the messages bad settings get."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gad.cli import build_parser, main
from gad.config import ConfigError, RunConfig, load_config

REQUIRED = dict(student="s", data="d.jsonl", output="out")


def test_paper_defaults():
    c = RunConfig(**REQUIRED)
    assert (c.group_size, c.kl_coef, c.lr, c.disc_lr, c.seqkd_lr) == (8, 0.001, 1e-6, 1e-6, 5e-6)
    assert (c.temperature, c.max_prompt_length, c.max_new_tokens, c.batch_size) == (0.8, 2048, 1536, 256)
    assert (c.disc_only_steps, c.grad_clip, c.disc_grad_clip, c.save_steps) == (10, 0.2, 0.2, 50)
    assert (c.clip_range, c.weight_decay, c.trust_remote_code) == (0.2, 0.01, False)


def test_every_field_has_help():
    missing = [n for n, f in RunConfig.model_fields.items() if not f.description]
    assert not missing


def test_yaml_then_flag_overrides(tmp_path):
    y = tmp_path / "run.yaml"
    y.write_text("student: s\ndata: d.jsonl\noutput: o\ngroup-size: 4\nlr: 2.0e-6\n")
    c = load_config(y, {"group_size": 6, "lr": None})
    assert c.group_size == 6 and c.lr == 2e-6


@pytest.mark.parametrize("values, pattern", [
    (dict(REQUIRED, group_size=1), r"group_size: Input should be greater than or equal to 2 \(got 1\)"),
    (dict(REQUIRED, gropu_size=4), r"gropu_size: unknown field; did you mean 'group_size'\?"),
    (dict(REQUIRED, method="dpo"), r"method: Input should be 'gad', 'seqkd' or 'offpolicy'"),
    ({"data": "d", "output": "o"}, r"student: required field is missing"),
    (dict(REQUIRED, generator_warmup=False, discriminator_warmup=False, warmup_steps=5),
     r"set warmup_steps to 0"),
])
def test_validation_messages(values, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(None, values)


def test_bad_yaml_is_located(tmp_path):
    y = tmp_path / "run.yaml"
    y.write_text("student: s\ndata: [unclosed\n")
    with pytest.raises(ConfigError, match=r"run\.yaml:\d+: not valid YAML"):
        load_config(y)


def test_cli_flags_cover_the_issue_list():
    ns = build_parser().parse_args(
        "train --method seqkd --student S --data D --output O --warmup-steps 1 --steps 2 --batch-size 3 "
        "--group-size 4 --max-new-tokens 5 --save-steps 6 --seed 7 --no-lora".split())
    assert (ns.method, ns.steps, ns.batch_size, ns.group_size, ns.max_new_tokens, ns.save_steps, ns.seed,
            ns.lora) == ("seqkd", 2, 3, 4, 5, 6, 7, False)


def test_cli_bad_input_exits_2_without_traceback(tmp_path, capsys):
    assert main(["train", "--student", "s", "--data", str(tmp_path / "none.jsonl"), "--output",
                 str(tmp_path / "o"), "--group-size", "1"]) == 2
    err = capsys.readouterr().err
    assert "group_size" in err and "Traceback" not in err


def test_cli_missing_data_file_exits_2(tmp_path, tiny_model):
    proc = subprocess.run([sys.executable, "-m", "gad.cli", "train", "--student", str(tiny_model), "--data",
                           str(tmp_path / "none.jsonl"), "--output", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "none.jsonl: file not found" in proc.stderr and "Traceback" not in proc.stderr
