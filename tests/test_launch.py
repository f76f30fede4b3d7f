"""gad/training/launch.py and configs/accelerate/: the command the GPU worker runs, for each strategy, checked
with accelerate's and gad-studio's own parsers; and a two-process CPU run through exactly that path."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from gad.training.config import ConfigError, RunConfig
from gad.training.launch import CONFIG_DIR, STRATEGIES, _run_flags, launch_command, rollout_server_command
from tests.conftest import REPO, free_port, read_jsonl

EXPECTED_TYPE = {"ddp": "MULTI_GPU", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED", "fsdp": "FSDP"}


def split(argv: list[str]) -> tuple[list[str], list[str]]:
    """(accelerate launch's arguments, the training module's arguments)."""
    assert argv[1:3] == ["-m", "accelerate.commands.launch"]
    i = argv.index("-m", 3)
    assert argv[i + 1] == "gad.cli"
    return argv[3:i + 2], argv[i + 2:]


def accelerate_args(argv: list[str]):
    from accelerate.commands.launch import launch_command_parser

    launch, script = split(argv)
    return launch_command_parser().parse_args(launch + script)


def train_args(argv: list[str]):
    from gad.cli import build_parser

    return build_parser().parse_args(split(argv)[1])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_builds_a_command_accelerate_and_train_accept(strategy, tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file

    run_yaml = tmp_path / "config.yaml"
    launch = launch_command(run_yaml, strategy=strategy, num_processes=8, main_process_port=29555)
    ns = accelerate_args(launch.argv)
    assert Path(ns.config_file) == CONFIG_DIR / f"{strategy}.yaml" and Path(ns.config_file).is_file()
    assert ns.num_processes == 8 and ns.num_machines == 1 and ns.machine_rank == 0
    assert ns.main_process_port == 29555 and ns.module and ns.training_script == "gad.cli"
    assert not ns.cpu  # accelerate's --cpu would start a single process (see gad/training/launch.py)
    cfg = load_config_from_file(ns.config_file)  # accelerate's schema: unknown keys raise
    assert cfg.distributed_type.value == EXPECTED_TYPE[strategy]
    train = train_args(launch.argv)
    assert train.command == "train" and train.config == str(run_yaml) and train.no_progress
    assert train.use_vllm is None and launch.env == {}


def test_config_files_say_what_the_project_relies_on():
    raw = {s: yaml.safe_load((CONFIG_DIR / f"{s}.yaml").read_text()) for s in STRATEGIES}
    for s, c in raw.items():
        # the run's dtype decides precision; a value here would force autocast on CPU runs
        assert c["mixed_precision"] == "no", s
    for s, stage in (("zero2", 2), ("zero3", 3)):
        ds = raw[s]["deepspeed_config"]
        assert ds["zero_stage"] == stage and ds["offload_optimizer_device"] == "none"
        assert ds["offload_param_device"] == "none"
        assert ds["zero3_init_flag"] is False  # the discriminator must load whole (not partitioned)
        assert "gradient_clipping" not in ds  # "auto": the run's grad_clip
    fsdp = raw["fsdp"]["fsdp_config"]
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_reshard_after_forward"] is True and fsdp["fsdp_cpu_ram_efficient_loading"] is False
    assert "fsdp_transformer_layer_cls_to_wrap" not in fsdp  # taken from the model's _no_split_modules


def test_fsdp_wraps_the_models_decoder_layer(tiny_model):
    from accelerate.utils.dataclasses import get_module_class_from_name
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    for name in model._no_split_modules:
        assert get_module_class_from_name(model, name) is not None


def test_several_machines():
    launch = launch_command("run.yaml", strategy="zero3", num_processes=16, num_machines=2, machine_rank=1,
                            main_process_ip="10.0.0.1", main_process_port=29500, gpu_ids="0,1,2,3,4,5,6,7")
    ns = accelerate_args(launch.argv)
    assert (ns.num_processes, ns.num_machines, ns.machine_rank) == (16, 2, 1)
    assert ns.main_process_ip == "10.0.0.1" and ns.main_process_port == 29500 and ns.gpu_ids == "0,1,2,3,4,5,6,7"
    with pytest.raises(ValueError, match="main_process_ip"):
        launch_command("run.yaml", num_processes=16, num_machines=2)
    with pytest.raises(ValueError, match="divide evenly"):
        launch_command("run.yaml", num_processes=15, num_machines=2, main_process_ip="h", main_process_port=1)
    with pytest.raises(ValueError, match="machine_rank"):
        launch_command("run.yaml", num_processes=16, num_machines=2, machine_rank=2, main_process_ip="h",
                       main_process_port=1)
    with pytest.raises(ValueError, match="strategy"):
        launch_command("run.yaml", strategy="zero1", num_processes=2)


def test_vllm_rollouts():
    colocated = train_args(launch_command("run.yaml", num_processes=8, vllm_mode="colocate",
                                          vllm_gpu_memory_utilization=0.25).argv)
    assert (colocated.use_vllm, colocated.vllm_mode, colocated.vllm_gpu_memory_utilization) == (True, "colocate", 0.25)
    server = launch_command("run.yaml", num_processes=7, gpu_ids="0,1,2,3,4,5,6", vllm_mode="server",
                            vllm_server_url="http://127.0.0.1:8000")
    train = train_args(server.argv)
    assert (train.use_vllm, train.vllm_mode, train.vllm_server_url) == (True, "server", "http://127.0.0.1:8000")
    assert accelerate_args(server.argv).gpu_ids == "0,1,2,3,4,5,6"  # the server's GPU is left out
    # flags the train command would reject are refused before any process starts
    for name in ("vllm_mode", "vllm_server_url", "vllm_gpu_memory_utilization", "use_vllm"):
        assert name in RunConfig.model_fields
    with pytest.raises(ConfigError, match="no_such_setting"):
        _run_flags({"no_such_setting": 1})
    with pytest.raises(ValueError, match="vllm_server_url"):
        launch_command("run.yaml", num_processes=7, vllm_mode="server")
    with pytest.raises(ValueError, match="GPU"):
        launch_command("run.yaml", num_processes=2, vllm_mode="colocate", cpu=True)


def test_rollout_server_is_trls_vllm_serve():
    server = rollout_server_command("runs/7/checkpoints/step-50/student", port=8001, gpu_ids="7",
                                    gpu_memory_utilization=0.8, python="/venv/bin/python")
    argv = server.argv
    assert argv[0] == "/venv/bin/python" and argv[argv.index("serve") + 1] == "runs/7/checkpoints/step-50/student"
    assert argv[argv.index("--port") + 1] == "8001" and argv[argv.index("--gpu-memory-utilization") + 1] == "0.8"
    assert "--weight-transfer-config" in argv  # TRL pushes each step's weights over NCCL
    assert server.env == {"VLLM_SERVER_DEV_MODE": "1", "CUDA_VISIBLE_DEVICES": "7"}


def test_cpu_hides_gpus_and_refuses_gpu_only_strategies():
    launch = launch_command("run.yaml", num_processes=2, cpu=True)
    assert launch.env == {"CUDA_VISIBLE_DEVICES": ""} and "--cpu" not in launch.argv
    for strategy in ("zero2", "zero3", "fsdp"):
        with pytest.raises(ValueError, match="GPUs"):
            launch_command("run.yaml", strategy=strategy, num_processes=2, cpu=True)
    assert launch.shell().startswith("CUDA_VISIBLE_DEVICES='' ")


@pytest.mark.slow
def test_two_cpu_processes_through_the_launch_command(tiny_model, pairs_file, tmp_path):
    out = tmp_path / "run"
    run_yaml = tmp_path / "config.yaml"
    run_yaml.write_text(yaml.safe_dump({
        "method": "gad", "student": str(tiny_model), "data": str(pairs_file), "output": str(out),
        "batch_size": 2, "group_size": 4, "max_new_tokens": 8, "max_prompt_length": 48, "warmup_steps": 2,
        "steps": 2, "disc_only_steps": 1, "save_steps": 2, "lr": 1e-4, "disc_lr": 1e-3}))
    launch = launch_command(run_yaml, strategy="ddp", num_processes=2, main_process_port=free_port(), cpu=True)
    env = {**os.environ, **launch.env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(launch.argv, capture_output=True, text=True, timeout=240, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "succeeded" and result["global_step"] == 4
    sums = result["discriminator_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]  # two ranks, one discriminator
    assert [m["step"] for m in read_jsonl(out / "metrics.jsonl")] == [1, 2, 3, 4]
