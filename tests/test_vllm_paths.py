"""vLLM is an optional GPU extra: every path that can sample with it says clearly, and early, when it
is not installed, and the settings that configure it are checked. (The GPU paths themselves run in
scripts/gpu_smoke.sh on a machine that has one.)"""

from __future__ import annotations

import pytest

from gad.llm.generation import vllm_available
from gad.training.config import ConfigError, build_config

pytestmark = pytest.mark.skipif(vllm_available(), reason="these check the behaviour without vLLM installed")


def _cfg(tmp_path, pairs_file, tiny_model, **kw):
    return build_config({"student": str(tiny_model), "data": str(pairs_file), "output": str(tmp_path / "run"),
                         "batch_size": 2, "group_size": 2, "warmup_steps": 2, "steps": 1, "disc_only_steps": 1,
                         "max_new_tokens": 4, **kw})


def test_server_mode_needs_a_url(tmp_path, pairs_file, tiny_model):
    with pytest.raises(ConfigError, match="vllm_server_url"):
        _cfg(tmp_path, pairs_file, tiny_model, use_vllm=True, vllm_mode="server")
    cfg = _cfg(tmp_path, pairs_file, tiny_model, use_vllm=True, vllm_mode="server", vllm_server_url="http://x:8000")
    assert cfg.vllm_server_url == "http://x:8000"


def test_a_run_asking_for_vllm_fails_before_training_and_says_how_to_get_it(tmp_path, pairs_file, tiny_model):
    from gad.training.pipeline import run

    with pytest.raises(ConfigError, match=r"vLLM is not installed.*\.\[vllm\]"):
        run(_cfg(tmp_path, pairs_file, tiny_model, use_vllm=True))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_evaluation_generation_with_vllm_says_the_same(tiny_model):
    from gad.data.examples import Example
    from gad.llm.evaluate import ModelSpec, generate_responses

    with pytest.raises(ConfigError, match="vLLM is not installed"):
        generate_responses(ModelSpec("m", path=str(tiny_model)), [Example("1", [{"role": "user", "content": "hi"}])],
                           max_new_tokens=4, temperature=0.8, greedy=False, seed=0, use_vllm=True)


def test_the_vllm_switches_do_not_block_a_resume():
    from gad.training.config import OPERATIONAL

    assert {"use_vllm", "vllm_mode", "vllm_server_url", "vllm_gpu_memory_utilization"} <= OPERATIONAL
