"""Prompt sets in the database: import a file (validated by gad.data.examples, all or nothing; uploads come
through app/services/uploads.py's job), split it, preview it, describe it, and read it back as gad
Examples or a training file."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Dataset, Prompt
from app.errors import Conflict, InvalidInput, TooLarge, as_studio_error
from app.services.lookup import one
from gad.data.examples import DataTooLarge, Example, load_examples, split_examples
from gad.data.readers import GZIP_EXPANSION_LIMIT


def _hash(ex: Example) -> str:
    return hashlib.sha256(json.dumps([ex.messages, ex.response], ensure_ascii=False).encode()).hexdigest()


# The most records one import takes: parsing and inserting grow with it, and the insert holds the
# database's write lock (SQLite: every other writer waits). Setting GAD_MAX_UPLOAD_ROWS.
DEFAULT_MAX_ROWS = 200_000
INSERT_BATCH = 5_000


def import_dataset(session: Session, path: str | Path, *, name: str | None = None, test_fraction: float = 0.0,
                   seed: int = 42, user_id: int | None = None, source: str | None = None,
                   max_bytes: int | None = None, max_rows: int | None = None,
                   max_document_bytes: int | None = None,
                   progress: Callable[[str, int, int], None] | None = None) -> Dataset:
    """All-or-nothing: a DataError (file:line: field) is raised before anything is written.
    max_bytes caps the bytes read after decompression, max_rows the records, max_document_bytes a
    JSON or Parquet file (parsed whole): TooLarge past them. progress(phase, done, total): "parse"
    with the file's bytes read and its size, then ("insert", 0, prompts) as writing starts."""
    if not 0.0 <= test_fraction < 1.0:
        raise InvalidInput("test_fraction must be in [0, 1)", field="test_fraction")
    try:
        examples = load_examples(path, max_bytes=max_bytes, max_rows=max_rows, max_document_bytes=max_document_bytes,
                                 progress=(lambda done, total: progress("parse", done, total)) if progress else None)
    except DataTooLarge as err:
        setting = "GAD_MAX_UPLOAD_ROWS" if err.limit == "rows" else (
            f"{GZIP_EXPANSION_LIMIT} x GAD_MAX_UPLOAD_MB uncompressed; JSON and Parquet: GAD_MAX_UPLOAD_MB")
        raise TooLarge(f"{err} ({setting})", field="file", where=err.where) from None
    except Exception as err:
        mapped = as_studio_error(err)
        if mapped is None:
            raise
        raise mapped from None
    if not examples:
        raise InvalidInput(f"{source or Path(path).name}: no prompts in the file", field="file")
    train, test = split_examples(examples, test_fraction, seed)
    test_ids = {id(e) for e in test}
    hashes = [_hash(e) for e in examples]
    digest = hashlib.sha256("".join(hashes).encode()).hexdigest()
    rows = [{"idx": i, "external_id": e.id[:200], "messages": e.messages, "teacher_response": e.response,
             "content_hash": h, "split": "test" if id(e) in test_ids else "train"}
            for i, (e, h) in enumerate(zip(examples, hashes))]
    # Everything is computed before the first write: SQLite's write lock (taken by the first INSERT,
    # held to the commit) covers only the inserts. Core inserts in batches: no ORM object per prompt.
    if progress is not None:  # once, before the first write: from there to the commit this transaction holds
        progress("insert", 0, len(rows))  # the write lock (SQLite), which a progress write would wait on
    ds = Dataset(name=_no_nul(name or Path(source or path).stem)[:200], source=_no_nul(source or Path(path).name)[:500],
                 content_hash=digest, n_prompts=len(examples), created_by=user_id)
    session.add(ds)
    session.flush()
    for start in range(0, len(rows), INSERT_BATCH):
        batch = [{**row, "dataset_id": ds.id} for row in rows[start:start + INSERT_BATCH]]
        session.execute(Prompt.__table__.insert(), batch)  # the table, not the class: a plain executemany
    session.flush()
    return ds


def _no_nul(text: str) -> str:
    return text.replace("\x00", "")


def get_dataset(session: Session, dataset_id: int) -> Dataset:
    return one(session, Dataset, dataset_id, "dataset")


def list_datasets(session: Session) -> list[Dataset]:
    return list(session.scalars(select(Dataset).order_by(Dataset.id.desc())))


def delete_dataset(session: Session, dataset_id: int) -> None:
    from app.db.models import Study

    ds = get_dataset(session, dataset_id)
    used = session.scalar(select(func.count()).select_from(Study).where(Study.dataset_id == dataset_id))
    if used:
        raise Conflict(f"dataset {dataset_id} is the test set of {used} human-evaluation stud"
                       f"{'y' if used == 1 else 'ies'}; delete those first")
    session.delete(ds)
    session.flush()


def dataset_view(session: Session, ds: Dataset) -> dict:
    with_response = session.scalar(select(func.count()).select_from(Prompt).where(
        Prompt.dataset_id == ds.id, Prompt.teacher_response.is_not(None))) or 0
    test = session.scalar(select(func.count()).select_from(Prompt).where(
        Prompt.dataset_id == ds.id, Prompt.split == "test")) or 0
    return {"id": ds.id, "name": ds.name, "source": ds.source, "n_prompts": ds.n_prompts,
            "with_response": with_response, "n_test": test, "n_train": ds.n_prompts - test,
            "content_hash": ds.content_hash, "created_at": ds.created_at}


def preview(session: Session, dataset_id: int, *, offset: int = 0, limit: int = 20,
            split: str | None = None) -> tuple[list[dict], int]:
    get_dataset(session, dataset_id)
    where = [Prompt.dataset_id == dataset_id] + ([Prompt.split == split] if split else [])
    total = session.scalar(select(func.count()).select_from(Prompt).where(*where)) or 0
    rows = session.scalars(select(Prompt).where(*where).order_by(Prompt.idx).offset(offset).limit(limit))
    return [{"idx": p.idx, "id": p.external_id, "split": p.split, "messages": p.messages,
             "prompt": _last_user(p.messages), "response": p.teacher_response} for p in rows], total


def _last_user(messages: list[dict]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return m.get("content") or ""
    return (messages[-1].get("content") or "") if messages else ""


def _histogram(values: list[int], bins: int = 20) -> dict:
    if not values:
        return {"edges": [], "counts": [], "mean": None, "max": None}
    hi = max(values)
    width = max(1, -(-(hi + 1) // bins))
    counts = [0] * (-(-(hi + 1) // width))
    for v in values:
        counts[v // width] += 1
    return {"edges": [i * width for i in range(len(counts) + 1)], "counts": counts,
            "mean": sum(values) / len(values), "max": hi}


def statistics(session: Session, dataset_id: int) -> dict:
    """Counts and length histograms in words (tokenizers differ per student; words do not)."""
    ds = get_dataset(session, dataset_id)
    rows = session.execute(select(Prompt.messages, Prompt.teacher_response, Prompt.split)
                           .where(Prompt.dataset_id == dataset_id)).all()
    prompt_words = [sum(len((m.get("content") or "").split()) for m in msgs) for msgs, _, _ in rows]
    response_words = [len(r.split()) for _, r, _ in rows if r]
    return {**dataset_view(session, ds), "turns": {"multi_turn": sum(1 for m, _, _ in rows if len(m) > 1)},
            "prompt_words": _histogram(prompt_words), "response_words": _histogram(response_words)}


def dataset_examples(session: Session, dataset_id: int, split: str | None = None) -> list[Example]:
    q = select(Prompt).where(Prompt.dataset_id == dataset_id).order_by(Prompt.idx)
    if split:
        q = q.where(Prompt.split == split)
    return [Example(p.external_id, p.messages, p.teacher_response, where=f"dataset {dataset_id} prompt {p.idx}")
            for p in session.scalars(q)]


def export_jsonl(session: Session, dataset_id: int, path: Path, split: str | None = None,
                 require_response: bool = True) -> Path:
    """A file for gad (messages + teacher response) from the database rows, written atomically.
    Training needs responses; evaluation sets do not (require_response=False)."""
    examples = dataset_examples(session, dataset_id, split) or (dataset_examples(session, dataset_id)
                                                                 if split == "test" else [])
    rows = [{"id": e.id, "messages": e.messages, **({"response": e.response} if e.response else {})}
            for e in examples if e.response or not require_response]
    if not rows:
        raise InvalidInput(f"dataset {dataset_id} has no prompts with teacher responses yet; collect them first",
                           field="dataset_id")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)
    return path


def dataset_options(session: Session) -> list[dict]:
    """Datasets for pickers, newest first, with how many prompts have a teacher response."""
    counts = dict(session.execute(select(Prompt.dataset_id, func.count()).where(Prompt.teacher_response.is_not(None))
                                  .group_by(Prompt.dataset_id)).all())
    return [{"id": d.id, "name": d.name, "n_prompts": d.n_prompts, "with_response": counts.get(d.id, 0),
             "label": f"#{d.id} {d.name} ({counts.get(d.id, 0)}/{d.n_prompts} with teacher responses)"}
            for d in session.scalars(select(Dataset).order_by(Dataset.id.desc()))]
