"""Config defaults, YAML + flag overrides, and the messages bad settings get."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gad.cli import build_parser, main
from gad.training.config import ConfigError, RunConfig, load_config

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


# --- issue 11, item 4: settings checked against the method --------------------------------------
@pytest.mark.parametrize("values, pattern", [
    (dict(REQUIRED, method="seqkd", steps=0), r"\n  - steps: steps 0 leaves method 'seqkd' nothing to train"),
    (dict(REQUIRED, warmup_steps=0, steps=0), r"\n  - steps: warmup_steps 0 and steps 0 leave method 'gad'"),
    (dict(REQUIRED, method="offpolicy", warmup_steps=0, steps=0), r"\n  - steps: .* leave method 'offpolicy'"),
    (dict(REQUIRED, warmup_steps=2), r"\n  - disc_only_steps: 10 discriminator-only steps leave no step of "
                                     r"warmup_steps 2 to the generator"),
    (dict(REQUIRED, warmup_steps=4, disc_only_steps=4), r"\n  - disc_only_steps: 4 discriminator-only"),
])
def test_settings_that_cannot_work_for_the_method_are_errors_naming_the_field(values, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(None, values)


@pytest.mark.parametrize("values", [
    dict(REQUIRED, warmup_steps=3, steps=0, disc_only_steps=1),        # a warmup-only GAD run
    dict(REQUIRED, warmup_steps=3, disc_only_steps=2),
    dict(REQUIRED, warmup_steps=2, generator_warmup=False),            # the ablation: D-only warmup
    dict(REQUIRED, warmup_steps=0, steps=5),
])
def test_settings_that_work_are_accepted(values):
    load_config(None, values)


def test_the_plan_has_no_empty_stage():
    from gad.training.pipeline import plan_stages

    cfg = load_config(None, dict(REQUIRED, warmup_steps=3, steps=0, disc_only_steps=1))
    assert [(s.name, s.steps) for s in plan_stages(cfg, 16)] == [("warmup", 3)]


def test_a_default_one_epoch_warmup_shorter_than_disc_only_steps_is_refused_once_the_data_is_known():
    from gad.training.config import check_plan

    cfg = load_config(None, dict(REQUIRED, batch_size=2))   # warmup: one epoch; disc_only_steps 10
    check_plan(cfg, 40)                                       # 20 warmup steps: fine
    with pytest.raises(ConfigError, match=r"disc_only_steps: .*one epoch \(8 steps of 2 prompts\)"):
        check_plan(cfg, 16)


def test_method_warnings_name_settings_the_method_ignores():
    from gad.training.config import method_warnings

    seqkd = load_config(None, dict(REQUIRED, method="seqkd", group_size=4, warmup_steps=3, lr=1e-5, save_steps=5))
    named = {w.split("=")[0] for w in method_warnings(seqkd)}
    assert named == {"group_size", "warmup_steps", "lr"}     # save_steps is not a training setting
    assert method_warnings(load_config(None, dict(REQUIRED, method="seqkd", seqkd_lr=1e-5))) == []
    gad = load_config(None, dict(REQUIRED, generator_warmup=False, warmup_lr=1e-5, seqkd_lr=1e-5, lora_r=4))
    assert {w.split("=")[0] for w in method_warnings(gad)} == {"warmup_lr", "seqkd_lr", "lora_r"}
    assert all("ignored" in w for w in method_warnings(gad))


def test_cli_steps_0_exits_2_naming_steps(tmp_path, capsys):
    assert main(["train", "--method", "seqkd", "--student", "s", "--data", str(tmp_path / "d.jsonl"), "--output",
                 str(tmp_path / "o"), "--steps", "0"]) == 2
    err = capsys.readouterr().err
    assert "steps: steps 0 leaves method 'seqkd' nothing to train" in err and "Traceback" not in err


def test_every_setting_has_exactly_one_kind_and_training_settings_name_their_methods():
    """A setting nobody classified would be silently ignored on resume: refuse that here."""
    from gad.training.config import ALL_METHODS, KINDS, RunConfig, field_tag

    for name in RunConfig.model_fields:
        tag = field_tag(name)
        assert tag.get("kind") in KINDS, f"{name}: tag it with one of {KINDS} (json_schema_extra)"
        if tag["kind"] == "training":
            assert tag["methods"] and set(tag["methods"]) <= set(ALL_METHODS), name
        else:
            assert "methods" not in tag, name


def test_kinds_decide_what_resume_compares_presets_keep_and_forks_fix():
    from gad.training.config import FIXED_BY_CHECKPOINT, OPERATIONAL, PER_RUN, load_config, method_fields

    assert {"student", "data", "output", "teacher_responses", "held_out"} == PER_RUN
    assert FIXED_BY_CHECKPOINT == {"student", "lora", "lora_r", "lora_alpha", "lora_dropout"}
    assert {"save_steps", "disc_eval_every", "use_vllm", "output"} <= OPERATIONAL
    seqkd = method_fields(load_config(None, dict(REQUIRED, method="seqkd")))
    gad = method_fields(load_config(None, dict(REQUIRED, method="gad")))
    offpolicy = method_fields(load_config(None, dict(REQUIRED, method="offpolicy")))
    assert "seqkd_lr" in seqkd and "disc_lr" not in seqkd and "group_size" not in seqkd
    assert {"disc_lr", "disc_steps_per_step", "warmup_lr", "disc_warmup_steps"} <= gad and "seqkd_lr" not in gad
    assert "disc_warmup_target" not in gad          # only with disc_warmup_steps
    assert "disc_warmup_target" in method_fields(load_config(None, dict(REQUIRED, disc_warmup_steps=5)))
    assert {"seqkd_lr", "offpolicy_disc_steps", "disc_lr"} <= offpolicy and "warmup_lr" not in offpolicy
    assert not (OPERATIONAL & (seqkd | gad | offpolicy))
