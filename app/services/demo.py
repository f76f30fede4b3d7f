"""The ready-made demo `gad-studio up` opens on: a tiny offline student model and the bundled
Alpaca-GPT4 prompt set with its teacher responses, so a first GAD run can start from the browser on
a CPU, before anything is spent on an API. Idempotent: a second start finds both and adds nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Dataset
from app.settings import Settings

DEMO_DATASET = "Alpaca-GPT4 demo (128 prompts)"
DEMO_ROWS = 128
# Settings that finish a GAD run on a laptop CPU in about a minute (the paper's defaults need a GPU).
QUICK_CPU = {"method": "gad", "batch_size": 4, "group_size": 4, "max_prompt_length": 128, "max_new_tokens": 32,
             "warmup_steps": 20, "steps": 30, "disc_only_steps": 5, "save_steps": 10, "sample_every": 5,
             "lr": 1e-4, "warmup_lr": 1e-4, "disc_lr": 1e-4}


@dataclass(frozen=True)
class Demo:
    dataset_id: int
    model_path: Path
    created: bool


def demo_model_path(settings: Settings) -> Path:
    return (settings.data_dir / "models" / "tiny-demo").resolve()


def ensure_demo(session: Session, settings: Settings) -> Demo:
    from app.services.datasets import import_dataset
    from gad.data.resources import DEMO_TRAIN_SET, dataset_path
    from gad.toy.tiny import build_tiny_model

    model = demo_model_path(settings)
    created = False
    if not (model / "config.json").is_file():
        build_tiny_model(model, seed=0)
        created = True
    ds_id = session.scalar(select(Dataset.id).where(Dataset.name == DEMO_DATASET))
    if ds_id is None:
        lines = dataset_path(DEMO_TRAIN_SET).read_text(encoding="utf-8").splitlines(keepends=True)[:DEMO_ROWS]
        subset = settings.data_dir / "datasets" / "alpaca_gpt4_demo_128.jsonl"
        subset.parent.mkdir(parents=True, exist_ok=True)
        subset.write_text("".join(lines), encoding="utf-8")
        ds_id = import_dataset(session, subset, name=DEMO_DATASET, test_fraction=0.1, seed=42,
                               source=f"{DEMO_TRAIN_SET} (first {DEMO_ROWS})").id
        created = True
    return Demo(ds_id, model, created)
