"""Command lines that run one training run over several GPUs (and machines): `accelerate launch`.

Pure builders, no side effects: the GPU worker (or a person at a shell) runs what they return.

    launch = launch_command("runs/7/config.yaml", strategy="zero3", num_processes=8)
    subprocess.run(launch.argv, env={**os.environ, **launch.env}, check=True)

runs `python -m accelerate.commands.launch --config_file configs/accelerate/zero3.yaml
--num_processes 8 -m gad.cli train --config runs/7/config.yaml`: accelerate starts one process per
GPU (torchrun underneath), each runs the same `gad-studio train`, TRL and the Trainer pick up the
process group, rank 0 writes the run folder (metrics.jsonl, samples.jsonl, checkpoints/), and
result.json records every rank's discriminator checksum.

Strategies are the shipped accelerate configs (configs/accelerate/<strategy>.yaml): ddp, zero2,
zero3 (DeepSpeed; `pip install deepspeed` on the GPU machines) and fsdp. Several machines: run the
same command on each with its own `machine_rank`, `num_machines`, and the first machine's address
as `main_process_ip`/`main_process_port` (accelerate's static rendezvous); `num_processes` counts
the processes of all machines together, as accelerate's flag does.

Rollouts through vLLM (TRL's integration; RunConfig's use_vllm / vllm_mode / vllm_server_url /
vllm_gpu_memory_utilization, which the pipeline hands to GRPOConfig):
- colocate: vLLM runs inside every training process and takes `vllm_gpu_memory_utilization`
  (TRL's default 0.3) of its GPU;
- server: a vLLM server on GPUs of its own (`rollout_server_command`), which TRL pushes the new
  policy weights into after every step; training runs on the other GPUs (`gpu_ids`).
These settings may sit in the run's YAML already; the ones given here are passed as `gad-studio
train` flags on top (flags override the file), checked against RunConfig's fields before launching.

CPU: `cpu=True` hides the GPUs (CUDA_VISIBLE_DEVICES="") and keeps the same launcher, so several
CPU processes talk over gloo (the pipeline tells the Trainer use_cpu when there is no CUDA).
accelerate's own `--cpu` flag is not used: it selects its single-process launcher (several CPU
processes need mpirun there), and the run would silently train on one process.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

STRATEGIES = ("ddp", "zero2", "zero3", "fsdp")
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "accelerate"  # <repo>/configs
Strategy = Literal["ddp", "zero2", "zero3", "fsdp"]
VllmMode = Literal["colocate", "server"]


@dataclass(frozen=True)
class Launch:
    """A command and the environment variables to set on top of the caller's."""
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def shell(self) -> str:
        """The command as one shell line (for logs and docs)."""
        import shlex

        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return (prefix + " " if prefix else "") + shlex.join(self.argv)


def config_file(strategy: str, config_dir: Path = CONFIG_DIR) -> Path:
    """The shipped accelerate config of `strategy`; ValueError for an unknown one or a missing file."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    path = Path(config_dir) / f"{strategy}.yaml"
    if not path.is_file():
        raise ValueError(f"{path} is missing: the accelerate configs ship in the repository's configs/accelerate/ "
                         f"(install from a checkout, e.g. pip install -e .)")
    return path


def _run_flags(overrides: dict[str, object]) -> list[str]:
    """`gad-studio train` flags for RunConfig fields. A field RunConfig lacks is refused by name here:
    the train command would reject the flag too, but only after accelerate had started every process."""
    from gad.training.config import ConfigError, RunConfig

    flags = []
    for name, value in overrides.items():
        if name not in RunConfig.model_fields:
            raise ConfigError(f"{name}: RunConfig has no such setting, so `gad-studio train` cannot take it",
                              field=name)
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + name.replace("_", "-"))
        else:
            flags += [flag, str(value)]
    return flags


def launch_command(run_config: str | Path, *, strategy: Strategy = "ddp", num_processes: int,
                   num_machines: int = 1, machine_rank: int = 0, main_process_ip: str | None = None,
                   main_process_port: int | None = None, gpu_ids: str | None = None,
                   vllm_mode: VllmMode | None = None, vllm_server_url: str | None = None,
                   vllm_gpu_memory_utilization: float | None = None, cpu: bool = False,
                   python: str = sys.executable, config_dir: Path = CONFIG_DIR) -> Launch:
    """The command that trains the run described by `run_config` across processes.

    run_config: a RunConfig YAML file (a run folder's config.yaml, or any `gad-studio train --config`).
    strategy: ddp | zero2 | zero3 | fsdp, i.e. configs/accelerate/<strategy>.yaml.
    num_processes: processes over all machines (one per GPU; accelerate's --num_processes).
    num_machines, machine_rank: this machine's place among several; more than one machine needs
        main_process_ip (machine 0's address, reachable from all) and main_process_port.
    main_process_port: the rendezvous port on machine 0. One machine: pick a free port when several
        runs may share the machine (accelerate's default 29500 would collide).
    gpu_ids: the GPUs this machine's processes use, e.g. "0,1,2,3" (default: all); with a vLLM server
        on the same machine, leave its GPUs out.
    vllm_mode: None (as the run's YAML says), 'colocate', or 'server' (needs vllm_server_url, e.g.
        http://10.0.0.5:8000, of a server started with `rollout_server_command`).
    vllm_gpu_memory_utilization: colocated vLLM's share of each GPU (TRL's default: 0.3).
    cpu: hide the GPUs; the processes talk over gloo (tests, CI).
    python: the interpreter of the environment that has the project installed.
    config_dir: where the accelerate configs are (default: the repository's configs/accelerate/).
    """
    if num_processes < 1 or num_machines < 1:
        raise ValueError("num_processes and num_machines must be at least 1")
    if num_processes % num_machines:
        raise ValueError(f"num_processes {num_processes} counts all machines' processes and must divide evenly "
                         f"over {num_machines} machines")
    if not 0 <= machine_rank < num_machines:
        raise ValueError(f"machine_rank must be in 0..{num_machines - 1}, got {machine_rank}")
    if num_machines > 1 and (main_process_ip is None or main_process_port is None):
        raise ValueError("several machines need main_process_ip and main_process_port (machine 0's address)")
    if strategy in ("zero2", "zero3", "fsdp") and cpu:
        raise ValueError(f"{strategy} needs GPUs: DeepSpeed and FSDP do not run on the CPU here; use ddp")
    if vllm_mode == "server" and not vllm_server_url:
        raise ValueError("vllm_mode 'server' needs vllm_server_url (the server started by rollout_server_command)")
    if vllm_mode is not None and cpu:
        raise ValueError("vLLM rollouts need a GPU")
    if vllm_mode not in (None, "colocate", "server"):
        raise ValueError(f"vllm_mode must be None, 'colocate' or 'server', got {vllm_mode!r}")

    argv = [python, "-m", "accelerate.commands.launch", "--config_file", str(config_file(strategy, config_dir)),
            "--num_processes", str(num_processes), "--num_machines", str(num_machines),
            "--machine_rank", str(machine_rank)]
    if main_process_ip is not None:
        argv += ["--main_process_ip", main_process_ip]
    if main_process_port is not None:
        argv += ["--main_process_port", str(main_process_port)]
    if gpu_ids is not None:
        argv += ["--gpu_ids", gpu_ids]
    argv += ["-m", "gad.cli", "train", "--config", str(run_config), "--no-progress"]

    overrides: dict[str, object] = {}
    if vllm_mode is not None:
        overrides["use_vllm"] = True
        overrides["vllm_mode"] = vllm_mode
        if vllm_mode == "server":
            overrides["vllm_server_url"] = vllm_server_url
        if vllm_gpu_memory_utilization is not None:
            overrides["vllm_gpu_memory_utilization"] = vllm_gpu_memory_utilization
    argv += _run_flags(overrides)
    env = {"CUDA_VISIBLE_DEVICES": ""} if cpu else {}
    return Launch(argv, env)


def rollout_server_command(model: str, *, host: str = "0.0.0.0", port: int = 8000, gpu_ids: str | None = None,
                           gpu_memory_utilization: float = 0.9, tensor_parallel_size: int = 1,
                           max_model_len: int | None = None, python: str = sys.executable) -> Launch:
    """The vLLM server TRL's vllm_mode='server' talks to, serving the run's student `model`.

    It is `vllm serve` with the flags TRL 1.16 requires (NCCL weight transfer so the trainer can push
    each step's policy weights, processed logprobs, no logprob cap): built by TRL's own
    `trl.scripts.vllm_serve.build_command` so the two cannot drift apart (its `trl vllm-serve`
    wrapper is deprecated and only runs this). Run it on GPUs the training processes do not use.
    Its machine needs the vllm extra (pip install -e ".[vllm]"); the flags depend on the vLLM
    version installed where this runs.
    """
    from trl.scripts.vllm_serve import ScriptArguments, build_command

    argv = build_command(ScriptArguments(model=model, host=host, port=port, tensor_parallel_size=tensor_parallel_size,
                                         gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len))
    env = {"VLLM_SERVER_DEV_MODE": "1"}  # the weight-transfer endpoints live behind vLLM's dev mode
    if gpu_ids is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu_ids
    return Launch([python] + argv[1:], env)
