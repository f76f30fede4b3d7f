"""gad/training/memory.py, model_sizes.py and memory_report.py: parameter counts against real models,
the byte arithmetic by hand, the activation fit against a measurement, and the deployment guide's table
against what the script prints now."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys

import pytest

from gad.training.memory import DISC_MICRO_BATCH, GB, disc_chunk, estimate
from gad.training.memory_report import estimate_run
from gad.training.model_sizes import PRESETS, Arch, activation_bytes_per_token_layer, arch_from_config, arch_from_folder
from tests.conftest import REPO

QWEN7 = PRESETS["Qwen2.5-7B"]
SMALL = Arch("small", hidden_size=64, num_layers=2, vocab_size=1000, intermediate_size=128, num_heads=4,
             num_kv_heads=2, tie_embeddings=False)


def item(est, name: str) -> float:
    found = [i.gb for i in est.resident + tuple(x for p in est.phases.values() for x in p) if i.name == name]
    assert found, f"no item {name!r} in {[i.name for i in est.items()]}"
    return found[0]


def names(est) -> set[str]:
    return {i.name for i in est.resident} | {i.name for p in est.phases.values() for i in p}


def hf_config(arch: Arch):
    from transformers import LlamaConfig, Qwen2Config

    kw = dict(vocab_size=arch.vocab_size, hidden_size=arch.hidden_size, intermediate_size=arch.intermediate_size,
              num_hidden_layers=arch.num_layers, num_attention_heads=arch.num_heads,
              num_key_value_heads=arch.num_kv_heads, tie_word_embeddings=arch.tie_embeddings, pad_token_id=0,
              num_labels=1)
    return Qwen2Config(**kw) if arch.attention_bias else LlamaConfig(**kw)


# --- architectures ------------------------------------------------------------------------------
# Model cards: Qwen2.5 "Number of Parameters", Llama 3.x "Params".
PUBLISHED_B = {"Qwen2.5-0.5B": 0.49, "Qwen2.5-1.5B": 1.54, "Qwen2.5-3B": 3.09, "Qwen2.5-7B": 7.61,
               "Qwen2.5-14B": 14.7, "Llama-3.2-3B": 3.21, "Llama-3.1-8B": 8.03}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_counts_equal_a_real_model_and_the_model_card(name):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    arch = PRESETS[name]
    cfg = hf_config(arch)
    with torch.device("meta"):  # shapes only, no memory
        lm = AutoModelForCausalLM.from_config(cfg)
        disc = AutoModelForSequenceClassification.from_config(cfg)
    assert arch.params == sum(p.numel() for p in lm.parameters())
    assert arch.disc_params == sum(p.numel() for p in disc.parameters())
    assert arch.params / 1e9 == pytest.approx(PUBLISHED_B[name], rel=0.01)
    assert arch_from_config(cfg, name=name) == arch


def test_lora_count_equals_peft_all_linear(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(hf_config(SMALL))
    peft = get_peft_model(model, LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    assert SMALL.lora_params(8) == trainable


def test_arch_from_folder_reads_the_tiny_model(tiny_model):
    from transformers import AutoModelForCausalLM

    arch = arch_from_folder(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert arch.params == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="config.json"):
        arch_from_folder(tiny_model.parent)


# --- bytes per parameter, by hand ---------------------------------------------------------------
def test_bf16_weights_are_two_bytes_per_parameter():
    e = estimate(QWEN7, dtype="bfloat16", vllm="server")
    assert item(e, "policy weights") == pytest.approx(2 * QWEN7.params / GB)
    assert item(e, "policy weights") == pytest.approx(15.23, abs=0.01)  # 7.62B x 2 B


@pytest.mark.parametrize("strategy", ["ddp", "zero2"])
def test_full_fine_tune_holds_16_bytes_per_parameter(strategy):
    """fp32 master weights + gradients + AdamW's two moments (DDP: 4+4+8; DeepSpeed: 2+2+12)."""
    e = estimate(QWEN7, strategy=strategy, n_gpus=1, vllm="server")
    state = sum(item(e, n) for n in ("policy weights", "policy gradients", "policy AdamW states"))
    assert state == pytest.approx(16 * QWEN7.params / GB)
    assert item(e, "policy AdamW states") == pytest.approx((8 if strategy == "ddp" else 12) * QWEN7.params / GB)


def test_sharding_divides_by_the_number_of_gpus():
    one = {s: estimate(QWEN7, strategy=s, n_gpus=1, vllm="server") for s in ("zero2", "zero3", "fsdp")}
    eight = {s: estimate(QWEN7, strategy=s, n_gpus=8, vllm="server") for s in ("zero2", "zero3", "fsdp")}
    for s in ("zero3", "fsdp"):
        for n in ("policy weights", "policy gradients", "policy AdamW states", "reference policy (KL)"):
            assert item(eight[s], n) == pytest.approx(item(one[s], n) / 8), (s, n)
    # ZeRO-2 keeps whole weights, shards gradients and optimizer states
    assert item(eight["zero2"], "policy weights") == pytest.approx(item(one["zero2"], "policy weights"))
    assert item(eight["zero2"], "policy AdamW states") == pytest.approx(item(one["zero2"], "policy AdamW states") / 8)
    # the discriminator is whole on every GPU, as gad/training/discriminator.py keeps it
    assert item(eight["zero3"], "discriminator weights") == pytest.approx(item(one["zero3"], "discriminator weights"))
    sharded = estimate(QWEN7, strategy="zero3", n_gpus=8, vllm="server", discriminator_sharded=True)
    assert item(sharded, "discriminator weights") == pytest.approx(item(one["zero3"], "discriminator weights") / 8)


def test_ddp_buckets_only_with_several_processes():
    assert "DDP gradient buckets" not in names(estimate(QWEN7, n_gpus=1))
    e = estimate(QWEN7, n_gpus=8)
    assert item(e, "DDP gradient buckets") == pytest.approx(item(e, "policy gradients"))


def test_lora_cuts_gradients_and_optimizer_to_the_adapters_and_drops_the_reference():
    full = estimate(QWEN7, vllm="server")
    lora = estimate(QWEN7, lora=True, lora_r=16, vllm="server")
    adapters = QWEN7.lora_params(16)
    assert item(lora, "policy AdamW states") == pytest.approx(8 * adapters / GB)
    assert item(lora, "policy gradients") == pytest.approx(4 * adapters / GB)
    assert item(lora, "policy weights") == pytest.approx(item(full, "policy weights"))  # the frozen base stays
    assert "reference policy (KL)" in names(full) and "reference policy (KL)" not in names(lora)
    assert "reference policy (KL)" not in names(estimate(QWEN7, kl=False, vllm="server"))
    assert item(lora, "discriminator AdamW states") == pytest.approx(8 * (adapters + QWEN7.hidden_size) / GB)


def test_rollouts_vllm_share_or_kv_cache():
    colocated = estimate(QWEN7, vllm="colocate", vllm_share=0.25, gpu_gb=80)
    assert item(colocated, "vLLM (colocated)") == pytest.approx(20.0)
    assert "vLLM (colocated)" not in names(estimate(QWEN7, vllm="server"))
    plain = estimate(QWEN7, vllm=None, gen_sequences=10, prompt_tokens=100, response_tokens=100)
    kv = 2 * QWEN7.num_layers * QWEN7.kv_dim * 2 * 10 * 200
    assert item(plain, "generation KV cache") == pytest.approx(kv / GB)
    small_share = estimate(PRESETS["Qwen2.5-14B"], vllm="colocate", vllm_share=0.3, gpu_gb=80)
    assert any("vLLM's share" in p for p in small_share.problems) and not small_share.fits


def test_total_is_resident_plus_the_largest_phase_and_fits_compares_with_the_gpu():
    e = estimate(PRESETS["Qwen2.5-1.5B"], lora=True, gradient_checkpointing=True, vllm=None)
    phase_sums = {k: sum(i.gb for i in v) for k, v in e.phases.items()}
    assert len(phase_sums) == 3
    assert e.total_gb == pytest.approx(sum(i.gb for i in e.resident) + max(phase_sums.values()))
    assert e.peak_phase == max(phase_sums, key=phase_sums.get)
    kw = dict(lora=True, gradient_checkpointing=True, vllm=None)
    assert estimate(PRESETS["Qwen2.5-1.5B"], gpu_gb=e.total_gb + 0.1, **kw).fits
    too_small = estimate(PRESETS["Qwen2.5-1.5B"], gpu_gb=e.total_gb - 0.1, **kw)
    assert not too_small.fits and too_small.advice


def test_advice_names_changes_that_do_fit():
    e = estimate(QWEN7, n_gpus=8, strategy="zero3", gradient_checkpointing=True)
    assert not e.fits and e.advice
    assert any("LoRA" in a for a in e.advice)
    fitting = estimate(QWEN7, n_gpus=8, strategy="zero3", gradient_checkpointing=True, lora=True, dtype="bfloat16")
    assert fitting.fits and fitting.advice == ()


def test_checkpointing_and_smaller_batches_shrink_activations():
    base = estimate(QWEN7, micro_batch=8)
    assert item(estimate(QWEN7, micro_batch=8, gradient_checkpointing=True), "policy activations") < \
        item(base, "policy activations") / 3
    assert item(estimate(QWEN7, micro_batch=4), "policy activations") == \
        pytest.approx(item(base, "policy activations") / 2)
    assert disc_chunk(8) == 18 and disc_chunk(3) == 16 and disc_chunk(20) == 21


def test_disc_micro_batch_is_the_discriminators_default():
    from gad.training import pipeline
    from gad.training.discriminator import Discriminator

    assert inspect.signature(Discriminator).parameters["micro_batch"].default == DISC_MICRO_BATCH
    assert "micro_batch=" not in inspect.getsource(pipeline.build_stage), \
        "the pipeline now sets it: update gad.training.memory"


def test_activation_fit_matches_saved_tensors_of_a_real_layer():
    """Bytes autograd saves per token per layer under bf16 autocast over fp32 weights, measured on
    Qwen2 layers: the difference between 3 and 2 layers at two lengths isolates per-token cost."""
    import torch
    from transformers import AutoModelForCausalLM

    arch = Arch("probe", hidden_size=256, num_layers=2, vocab_size=256, intermediate_size=768, num_heads=4,
                num_kv_heads=2, tie_embeddings=True)

    def saved(layers: int, seq: int) -> int:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(hf_config(Arch(**{**arch.__dict__, "num_layers": layers})),
                                                 attn_implementation="sdpa")
        storages: dict[int, int] = {}

        def pack(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model(input_ids=torch.randint(0, 256, (1, seq)))
        weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
        return sum(n for ptr, n in storages.items() if ptr not in weights)

    per_layer = {s: saved(3, s) - saved(2, s) for s in (64, 128)}
    measured = (per_layer[128] - per_layer[64]) / 64
    assert measured == pytest.approx(activation_bytes_per_token_layer(arch), rel=0.05)
    # what is left per layer is the bf16 copy of its weights autocast keeps for the backward pass
    assert per_layer[64] - 64 * measured == pytest.approx(2 * arch.layer_params, rel=0.05)


# --- from a RunConfig (the dashboard's path) ----------------------------------------------------
def test_estimate_run_derives_the_workload_from_the_settings():
    from gad.training.config import RunConfig

    cfg = RunConfig(student="s", data="d", output="o", batch_size=64, group_size=8, gradient_accumulation_steps=4,
                    max_new_tokens=1024, max_prompt_length=512, lora=True, use_vllm=True,
                    vllm_gpu_memory_utilization=0.2)
    got = estimate_run(cfg, QWEN7, n_gpus=8, strategy="zero3")
    want = estimate(QWEN7, n_gpus=8, strategy="zero3", lora=True, micro_batch=math.ceil(64 * 8 / 32),
                    prompt_tokens=512, response_tokens=1024, vllm="colocate", vllm_share=0.2, gen_sequences=64)
    assert got.total_gb == pytest.approx(want.total_gb)
    assert item(got, "vLLM (colocated)") == pytest.approx(0.2 * 80)
    server = estimate_run(cfg.model_copy(update={"vllm_mode": "server", "vllm_server_url": "http://h:8000"}), QWEN7,
                          n_gpus=8, strategy="zero3")
    assert "vLLM (colocated)" not in names(server)
    seqkd = estimate_run(cfg.model_copy(update={"method": "seqkd"}), QWEN7, n_gpus=8)
    assert "discriminator weights" not in names(seqkd) and "reference policy (KL)" not in names(seqkd)


# --- the committed table ------------------------------------------------------------------------
def test_docs_table_is_what_the_script_prints_now():
    printed = subprocess.run([sys.executable, str(REPO / "scripts" / "memory_table.py")], capture_output=True,
                             text=True, check=True, timeout=60).stdout
    start, end = "<!-- memory-table:start -->\n", "<!-- memory-table:end -->"
    docs = [REPO / "docs" / "deployment.md"] + [p for p in [REPO / "README.md"]
                                                if start in p.read_text(encoding="utf-8")]
    for doc in docs:
        text = doc.read_text(encoding="utf-8")
        assert start in text and end in text, doc
        committed = text.split(start, 1)[1].split(end, 1)[0]
        assert committed == printed, f"{doc.name} is stale: run `python scripts/memory_table.py --write`"
    for name in ("Qwen2.5-0.5B", "Qwen2.5-1.5B", "Qwen2.5-3B", "Qwen2.5-7B", "Qwen2.5-14B"):
        assert name in printed


def test_replace_block_keeps_the_rest_of_the_file():
    import importlib.util

    spec = importlib.util.spec_from_file_location("memory_table", REPO / "scripts" / "memory_table.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    START, END, replace_block = script.START, script.END, script.replace_block

    text = f"intro\n{START}\nold table\n{END}\noutro\n"
    assert replace_block(text, "new\n") == f"intro\n{START}\nnew\n{END}\noutro\n"
    with pytest.raises(ValueError, match="markers"):
        replace_block("no markers here", "new\n")
