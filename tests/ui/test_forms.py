"""The run form and its previews without a browser: every RunConfig setting has exactly one input,
the method menu maps to settings and back, presets validate, the command preview round-trips."""

from __future__ import annotations

import shlex

import pytest

from app.errors import InvalidInput
from app.services.presets import BUILTIN, CPU_SMOKE, _validate
from app.services.ui_queries import METHODS, command_preview, config_checks, method_label
from app.ui.widgets.config_form import NOT_IN_FORM, grouped_fields
from gad.config import RunConfig


def test_the_form_shows_every_setting_once_and_only_runconfig_settings():
    shown = [f for _, fields in grouped_fields() for f in fields]
    assert sorted(shown) == sorted(set(RunConfig.model_fields) - set(NOT_IN_FORM))
    assert len(shown) == len(set(shown))
    assert grouped_fields()[0][0] == "Essentials"


@pytest.mark.parametrize("label", list(METHODS))
def test_each_method_of_the_menu_is_valid_and_reads_back(label):
    values = {**BUILTIN[CPU_SMOKE], **METHODS[label]}
    assert config_checks(values)["errors"] == []
    assert method_label(values) == label


def test_presets_reject_unknown_and_invalid_settings():
    with pytest.raises(InvalidInput, match="unknown setting"):
        _validate({"batch_sise": 2})
    with pytest.raises(InvalidInput, match="group_size"):
        _validate({"group_size": 1})
    assert "student" not in _validate({"student": "x", "lr": 1e-5})


def test_the_command_preview_is_a_command_with_only_changed_settings():
    command, yaml_text = command_preview({**BUILTIN[CPU_SMOKE], "method": "gad", "student": "org/model",
                                          "data": "p.jsonl"}, output="runs/x")
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:2] == ["gad-studio", "train"]
    assert "--batch-size" in words and "--kl-coef" not in words  # the paper's default is left out
    assert "batch_size: 2" in yaml_text and "output: runs/x" in yaml_text
