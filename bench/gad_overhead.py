"""GAD's overhead over plain GRPO: the ratio of step times, measured in one run.

Baseline: TRL's GRPOTrainer with a *frozen* reward model of the student's size (a sequence
classifier, scored in inference mode). GAD: our AdversarialTrainer, whose reward is the online
discriminator of the same size, which also takes one Bradley-Terry step per policy step.
Same model, batch, group size and response length; rounds alternate between the two to cancel
machine noise, and the ratio of median step times is printed (1.0 = no overhead).

A third arm prices the discriminator-quality monitor (gad/training/monitor.py): the GAD step with a held-out
check after *every* step. The check's cost over a plain GAD step, spread over `--eval-every` steps
(the RunConfig default, 25), is the monitor's overhead as a user runs it.

    python bench/gad_overhead.py [--hidden 128 --layers 4 --steps 6 --rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--steps", type=int, default=6, help="measured steps per round (after 1 warm-up step)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=4, help="prompts per step")
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--eval-every", type=int, default=25, help="disc_eval_every the overhead is reported for")
    ap.add_argument("--eval-prompts", type=int, default=32, help="held-out prompts per check (disc_eval_prompts)")
    ap.add_argument("--eval-samples", type=int, default=4, help="samples per held-out prompt (disc_eval_samples)")
    args = ap.parse_args()

    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from gad.data.examples import load_examples
    from gad.data.resources import DATASET_DIR, DEMO_TRAIN_SET
    from gad.toy.tiny import build_tiny_model
    from gad.training.config import RunConfig
    from gad.training.modeling import load_tokenizer, token_info
    from gad.training.pipeline import Stage, StageInputs, build_stage, tokenize_examples
    from gad.training.progress import Progress, quiet_libraries

    quiet_libraries()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    work = Path(tempfile.mkdtemp(prefix="gad-bench-"))
    model_dir = build_tiny_model(work / "model", hidden_size=args.hidden, layers=args.layers)
    total = args.steps + 1
    cfg = RunConfig(student=str(model_dir), data=str(DATASET_DIR / DEMO_TRAIN_SET), output=str(work / "gad"),
                    batch_size=args.batch_size, group_size=args.group_size, max_new_tokens=args.max_new_tokens,
                    max_prompt_length=128, warmup_steps=0, steps=total, save_steps=10_000, max_examples=256)
    tok = load_tokenizer(str(model_dir))
    info = token_info(tok, str(model_dir))
    data = tokenize_examples(load_examples(cfg.data, limit=256), tok, cfg, info)

    class Timer(TrainerCallback):
        def __init__(self):
            self.times, self.t0 = [], 0.0

        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter() - self.t0)

    from gad.training.monitor import DiscriminatorMonitor, HeldOutPrompt

    held = [HeldOutPrompt(d.prompt_ids, d.teacher_ids) for d in data[-args.eval_prompts:]]

    def gad_round(i: int, check: bool = False) -> list[float]:
        c = cfg.model_copy(update={"output": str(work / f"gad{i}{'m' if check else ''}")})
        stage = Stage("adversarial", total, cfg.lr, True, True)
        monitor = DiscriminatorMonitor(held, info, every=1, samples=args.eval_samples,
                                       max_new_tokens=args.max_new_tokens, temperature=cfg.temperature,
                                       top_p=cfg.top_p, seed=cfg.seed) if check else None
        trainer = build_stage(StageInputs(c, stage, data, tok, info, Path(c.output), 0, Progress(), monitor=monitor))
        timer = Timer()
        trainer.add_callback(timer)
        trainer.train()
        return timer.times[1:]

    def grpo_round(i: int) -> list[float]:
        from gad.training.modeling import load_student

        reward_model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
        reward_model.config.pad_token_id = tok.pad_token_id
        gargs = GRPOConfig(output_dir=str(work / f"grpo{i}"), max_steps=total, learning_rate=cfg.lr,
                           per_device_train_batch_size=args.batch_size * args.group_size,
                           num_generations=args.group_size, max_completion_length=args.max_new_tokens,
                           temperature=cfg.temperature, beta=cfg.kl_coef, logging_steps=1, save_strategy="no",
                           lr_scheduler_type="constant",
                           report_to=[], bf16=False, use_cpu=True, disable_tqdm=True, seed=cfg.seed)
        rows = [{"prompt": d.prompt_text} for d in data]
        trainer = GRPOTrainer(model=load_student(str(model_dir), cfg), reward_funcs=[reward_model], args=gargs,
                              train_dataset=Dataset.from_list(rows), processing_class=tok,
                              reward_processing_classes=[tok])
        trainer.remove_callback(PrinterCallback)
        timer = Timer()
        trainer.add_callback(timer)
        trainer.train()
        return timer.times[1:]

    gad_times, grpo_times, check_times = [], [], []
    for i in range(args.rounds):
        grpo_times += grpo_round(i)
        gad_times += gad_round(i)
        check_times += gad_round(i, check=True)
        print(f"round {i + 1}/{args.rounds}: GRPO median {statistics.median(grpo_times):.3f} s, "
              f"GAD median {statistics.median(gad_times):.3f} s, GAD + a check every step "
              f"{statistics.median(check_times):.3f} s", flush=True)
    ratio = statistics.median(gad_times) / statistics.median(grpo_times)
    sized = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    params = sum(p.numel() for p in sized.parameters())
    print(f"\nmodel: {params / 1e6:.2f}M parameters (student = discriminator = reward model size); "
          f"{args.batch_size} prompts x {args.group_size} responses x <= {args.max_new_tokens} tokens per step")
    print(f"plain GRPO + frozen reward model: median {statistics.median(grpo_times):.3f} s/step "
          f"({len(grpo_times)} steps)")
    print(f"GAD adversarial step:             median {statistics.median(gad_times):.3f} s/step "
          f"({len(gad_times)} steps)")
    print(f"ratio GAD / GRPO: {ratio:.2f}")
    gad_s = statistics.median(gad_times)
    check_s = max(0.0, statistics.median(check_times) - gad_s)
    print(f"discriminator-quality check ({args.eval_prompts} held-out prompts x {args.eval_samples} samples): "
          f"{check_s:.3f} s = {check_s / gad_s:.2f} GAD steps; at disc_eval_every={args.eval_every} the monitor adds "
          f"{100 * check_s / (args.eval_every * gad_s):.1f}% to a run's time (ratio "
          f"{1 + check_s / (args.eval_every * gad_s):.3f})")


if __name__ == "__main__":
    main()
