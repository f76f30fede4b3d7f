"""GPU smoke test: a few GAD steps at a real model's size, with vLLM rollouts, then with transformers'
generate; prints step time, generated tokens per second and peak memory for each.

    scripts/gpu_smoke.sh                      # checks for a GPU, then runs this with .venv/bin/python
    scripts/gpu_smoke.sh --install            # first creates .venv-gpu with the vllm extra (needs network)
    python scripts/gpu_smoke.py --arch Qwen2.5-1.5B --steps 6 --modes vllm

Nothing is downloaded: the student is a randomly initialised model with the architecture's sizes
(gad.training.model_sizes.PRESETS: Qwen2.5-0.5B by default), and the tokenizer is gad.toy.tiny's offline byte-level BPE
with its vocabulary padded to the model's size (the padding tokens decode to plain text and are never
produced by encoding, so prompts tokenize as usual and every sampled id decodes). Data: the bundled
Alpaca-GPT4 teacher responses. A random model rarely stops early, so most responses run to
--max-new-tokens, which makes the throughput figures a clean upper-load measurement.

Each mode runs `gad-studio train`'s pipeline in a child process (so vLLM's memory is returned
between modes) while this process polls nvidia-smi for the device's peak; the child reports torch's
own peak. Figures: the median step time over the adversarial steps after the first (the first
includes vLLM's start and CUDA graph capture), tokens = prompts x group size x mean response length.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from gad.data.resources import DATASET_DIR

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

DATA = DATASET_DIR / "teacher_alpaca_gpt4_demo_999.jsonl"
TINY = dict(hidden_size=64, num_layers=2, vocab_size=4096, intermediate_size=128, num_heads=4, num_kv_heads=2,
            tie_embeddings=True)


def fail(message: str, code: int = 2) -> None:
    print(f"gpu_smoke: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


# ----------------------------------------------------------------------------------------------
# Offline model and tokenizer
# ----------------------------------------------------------------------------------------------
def padded_tokenizer(vocab_size: int):
    """gad.toy.tiny's tokenizer with filler tokens appended to its BPE vocabulary up to `vocab_size`.

    Fillers ('fill0', 'fill1', ...) have no merges, so encoding never yields them (digits are split
    one by one by the Qwen2 pre-tokenizer, so 'fill0' cannot arise from text either); decoding
    them gives their name."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from gad.toy.tiny import CHATML_TEMPLATE, build_tokenizer

    base = build_tokenizer(min(vocab_size, 4096))
    spec = json.loads(base.backend_tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    taken = max(max(vocab.values()), max(t["id"] for t in spec["added_tokens"])) + 1
    for i in range(vocab_size - taken):
        vocab[f"fill{i}"] = taken + i
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)), eos_token="<|im_end|>",
                                  pad_token="<|endoftext|>", additional_special_tokens=["<|im_start|>"])
    tok.chat_template = CHATML_TEMPLATE
    if len(tok) != vocab_size:
        raise RuntimeError(f"padded tokenizer has {len(tok)} tokens, wanted {vocab_size}")
    return tok


def build_model(out_dir: Path, arch_name: str, device: str) -> Path:
    """A random model with `arch_name`'s sizes and the padded tokenizer, saved in bf16 (what vLLM loads)."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, Qwen2Config

    from gad.training.model_sizes import PRESETS, Arch

    arch = Arch("tiny", **TINY) if arch_name == "tiny" else PRESETS[arch_name]
    tok = padded_tokenizer(arch.vocab_size)
    kw = dict(vocab_size=arch.vocab_size, hidden_size=arch.hidden_size, intermediate_size=arch.intermediate_size,
              num_hidden_layers=arch.num_layers, num_attention_heads=arch.num_heads,
              num_key_value_heads=arch.num_kv_heads, head_dim=arch.head_dim, tie_word_embeddings=arch.tie_embeddings,
              max_position_embeddings=4096, bos_token_id=None, eos_token_id=tok.eos_token_id,
              pad_token_id=tok.pad_token_id)
    config = Qwen2Config(**kw) if arch.attention_bias else LlamaConfig(**kw)
    torch.manual_seed(0)
    with torch.device(device):  # initialising 0.5B+ parameters is much faster on the GPU
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(eos_token_id=[tok.eos_token_id, tok.pad_token_id],
                                               pad_token_id=tok.pad_token_id, do_sample=True, temperature=0.8)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    n = sum(p.numel() for p in model.parameters())
    if n != arch.params:
        raise RuntimeError(f"built {n} parameters, gad.training.model_sizes says {arch.params} for {arch.name}")
    return out_dir


# ----------------------------------------------------------------------------------------------
# One mode: a child process running the pipeline, watched from here
# ----------------------------------------------------------------------------------------------
def child(config: Path, report: Path) -> int:
    """Run the pipeline in this process and write torch's peak memory to `report`."""
    import torch

    from gad.training.config import load_config
    from gad.training.distributed import shutdown
    from gad.training.pipeline import run
    from gad.training.progress import quiet_libraries

    quiet_libraries()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.time()
    try:
        result = run(load_config(config))
    finally:
        shutdown(barrier=False)
    report.write_text(json.dumps({
        "status": result.status, "wall_s": time.time() - start,
        "torch_max_allocated_gb": torch.cuda.max_memory_allocated() / 1e9 if cuda else None,
        "torch_max_reserved_gb": torch.cuda.max_memory_reserved() / 1e9 if cuda else None}))
    return 0 if result.status == "succeeded" else 1


class DevicePeak:
    """Polls nvidia-smi for the most memory in use on GPU 0 (vLLM's allocations included)."""

    def __init__(self, interval: float = 0.5):
        self.interval, self.peak_mib = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self.available = shutil.which("nvidia-smi") is not None

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                                 capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip():
                self.peak_mib = max(self.peak_mib, int(out.stdout.split()[0]))

    def __enter__(self) -> DevicePeak:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.available:
            self._thread.join()


def run_mode(mode: str, model_dir: Path, out: Path, ns) -> dict:
    import yaml

    run_dir = out / f"run-{mode}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run, not a resume
    config = out / f"{mode}.yaml"
    # 'monitor': transformers rollouts plus the discriminator-quality check (gad/training/monitor.py) after every step,
    # so its cost can be read against the step's from the same run.
    monitor = {"test_fraction": 0.05, "disc_eval_every": 1, "disc_eval_prompts": ns.eval_prompts,
               "disc_eval_samples": ns.eval_samples} if mode == "monitor" else {"disc_eval_every": 0}
    config.write_text(yaml.safe_dump({
        "method": "gad", "student": str(model_dir), "data": str(DATA), "output": str(run_dir),
        "batch_size": ns.batch_size, "group_size": ns.group_size, "max_new_tokens": ns.max_new_tokens,
        "max_prompt_length": ns.prompt_tokens, "warmup_steps": 0, "steps": ns.steps, "save_steps": 10_000,
        "sample_every": 10_000, "use_vllm": mode == "vllm", **monitor}))
    report = out / f"{mode}.report.json"
    report.unlink(missing_ok=True)
    log = out / f"{mode}.log"
    print(f"[{mode}] training {ns.steps} adversarial steps (log: {log})", flush=True)
    with DevicePeak() as peak, log.open("w") as fh:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(config), str(report)],
                              cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0 or not report.is_file():
        tail = log.read_text()[-3000:]
        return {"mode": mode, "error": f"exit {proc.returncode}; log tail:\n{tail}"}
    rep = json.loads(report.read_text())
    steps = [m for m in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
             if m.get("stage") == "adversarial" and "step_time" in m]
    timed = steps[1:] or steps  # the first step carries vLLM's start-up and CUDA graph capture
    tokens = [ns.batch_size * ns.group_size * m["student_length"] for m in timed]
    step_s = statistics.median(m["step_time"] for m in timed)
    if not ns.keep:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # GBs of weights and optimizer states
    checks = [m["disc_eval_time"] for m in timed if m.get("disc_eval_time") is not None]
    extra = {"check_s": statistics.median(checks), "check_per_step": statistics.median(checks) / step_s,
             "held_out_accuracy": [m.get("disc_eval_accuracy") for m in steps if "disc_eval_time" in m]
             } if checks else {}
    return {**extra, "mode": mode, "steps": len(steps), "first_step_s": steps[0]["step_time"], "step_s": step_s,
            "tokens_per_step": statistics.median(tokens),
            "tokens_per_s": statistics.median(t / m["step_time"] for t, m in zip(tokens, timed)),
            "torch_peak_reserved_gb": rep["torch_max_reserved_gb"],
            "device_peak_gb": peak.peak_mib * 2**20 / 1e9 if peak.available else None, "wall_s": rep["wall_s"]}


def print_summary(arch: str, rows: list[dict], ns) -> None:
    print(f"\n=== GAD smoke: {arch}, {ns.batch_size} prompts x {ns.group_size} responses, prompts <= "
          f"{ns.prompt_tokens} + responses <= {ns.max_new_tokens} tokens ===")
    print(f"{'mode':<13}{'steps':>6}{'first s':>9}{'step s':>9}{'tok/step':>10}{'tok/s':>9}"
          f"{'torch GB':>10}{'device GB':>11}")
    for r in rows:
        if "error" in r:
            print(f"{r['mode']:<13}FAILED: {r['error'].splitlines()[0]}")
            continue
        gb = [f"{v:.1f}" if v is not None else "-" for v in (r["torch_peak_reserved_gb"], r["device_peak_gb"])]
        print(f"{r['mode']:<13}{r['steps']:>6}{r['first_step_s']:>9.1f}{r['step_s']:>9.2f}{r['tokens_per_step']:>10.0f}"
              f"{r['tokens_per_s']:>9.0f}{gb[0]:>10}{gb[1]:>11}")
    for r in rows:
        if "check_s" in r:
            print(f"[{r['mode']}] one held-out discriminator check ({ns.eval_prompts} prompts x {ns.eval_samples} "
                  f"samples): {r['check_s']:.2f} s = {r['check_per_step']:.2f} steps; at disc_eval_every=25 that adds "
                  f"{100 * r['check_per_step'] / 25:.1f}% to a run's time")
    for r in rows:
        if "error" in r:
            print(f"\n[{r['mode']}] {r['error']}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(Path(argv[1]), Path(argv[2]))
    from gad.training.model_sizes import PRESETS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="Qwen2.5-0.5B", choices=sorted(PRESETS) + ["tiny"],
                   help="Architecture sizes of the random student (gad.training.model_sizes.PRESETS).")
    p.add_argument("--modes", default="vllm,transformers,monitor",
                   help="Comma-separated: vllm, transformers, monitor (transformers + the held-out D check each step).")
    p.add_argument("--eval-prompts", type=int, default=32, help="monitor mode: held-out prompts per check.")
    p.add_argument("--eval-samples", type=int, default=4, help="monitor mode: samples per held-out prompt.")
    p.add_argument("--steps", type=int, default=4, help="Adversarial steps per mode (the first is not timed).")
    p.add_argument("--batch-size", type=int, default=8, help="Prompts per step.")
    p.add_argument("--group-size", type=int, default=8, help="Responses per prompt.")
    p.add_argument("--max-new-tokens", type=int, default=256, help="Longest response.")
    p.add_argument("--prompt-tokens", type=int, default=256, help="Longest prompt (max_prompt_length).")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "gpu-smoke", help="Working folder.")
    p.add_argument("--keep", action="store_true", help="Keep the runs' checkpoints.")
    p.add_argument("--allow-cpu", action="store_true",
                   help="Run without a GPU (transformers mode only; checks the script's plumbing, nothing more).")
    ns = p.parse_args(argv)
    modes = [m.strip() for m in ns.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"vllm", "transformers", "monitor"}:
        fail(f"--modes takes vllm, transformers and/or monitor, got {ns.modes!r}")

    import torch

    if not torch.cuda.is_available():
        if not ns.allow_cpu:
            fail(f"no CUDA device: torch {torch.__version__} (CUDA build: {torch.version.cuda or 'none'}) sees no GPU. "
                 f"Run this on a GPU machine with a CUDA build of torch (scripts/gpu_smoke.sh --install makes one).")
        if "vllm" in modes:
            fail("--allow-cpu runs the transformers and monitor modes only: pass --modes transformers,monitor")
    if "vllm" in modes:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            fail("vllm is not installed in this environment: scripts/gpu_smoke.sh --install creates one with it, "
                 "or pass --modes transformers")

    ns.out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.time()
    model_dir = build_model(ns.out / f"model-{ns.arch}", ns.arch, device)
    print(f"built a random {ns.arch} in {time.time() - t0:.0f}s: {model_dir}", flush=True)
    rows = [run_mode(mode, model_dir, ns.out, ns) for mode in modes]
    print_summary(ns.arch, rows, ns)
    (ns.out / "summary.json").write_text(json.dumps({"arch": ns.arch, "args": {k: str(v) for k, v in vars(ns).items()},
                                                     "modes": rows}, indent=2))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
