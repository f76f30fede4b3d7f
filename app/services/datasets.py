"""Prompt sets in the database: import a file (validated by gad.data), split it, read it back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Dataset, Prompt
from gad.data import Example, load_examples, split_examples


def _hash(ex: Example) -> str:
    return hashlib.sha256(json.dumps([ex.messages, ex.response], ensure_ascii=False).encode()).hexdigest()


def import_dataset(session: Session, path: str | Path, *, name: str | None = None, test_fraction: float = 0.0,
                   seed: int = 42, user_id: int | None = None) -> Dataset:
    """All-or-nothing: a DataError (file:line: field) is raised before anything is written."""
    examples = load_examples(path)
    train, test = split_examples(examples, test_fraction, seed)
    test_ids = {id(e) for e in test}
    digest = hashlib.sha256("".join(_hash(e) for e in examples).encode()).hexdigest()
    ds = Dataset(name=name or Path(path).stem, source=Path(path).name, content_hash=digest,
                 n_prompts=len(examples), created_by=user_id)
    session.add(ds)
    session.flush()
    session.add_all(Prompt(dataset_id=ds.id, idx=i, external_id=e.id, messages=e.messages,
                           teacher_response=e.response, content_hash=_hash(e),
                           split="test" if id(e) in test_ids else "train") for i, e in enumerate(examples))
    session.flush()
    return ds


def dataset_examples(session: Session, dataset_id: int, split: str | None = None) -> list[Example]:
    q = select(Prompt).where(Prompt.dataset_id == dataset_id).order_by(Prompt.idx)
    if split:
        q = q.where(Prompt.split == split)
    return [Example(p.external_id, p.messages, p.teacher_response, where=f"dataset {dataset_id} prompt {p.idx}")
            for p in session.scalars(q)]


def export_jsonl(session: Session, dataset_id: int, path: Path, split: str | None = None) -> Path:
    """A training file for gad (messages + teacher response) from the database rows."""
    rows = [{"id": e.id, "messages": e.messages, "response": e.response}
            for e in dataset_examples(session, dataset_id, split) if e.response]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
