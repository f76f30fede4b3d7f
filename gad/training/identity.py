"""What a run was started with, so that a resume can refuse to mix different inputs or settings.

A run folder records two files at its first start and rewrites them at every start:
    config.yaml   the settings (RunConfig)
    inputs.json   the identity of its inputs: resolved path, size and sha256 of the data file and
                  of the teacher-responses file; the student's files (config, tokenizer, weights)
                  with their hashes, or its hub id.
A resume (a folder that already holds checkpoints) is refused when an input's *content* changed
or a setting the method trains with changed (`gad.training.config.method_fields`); the message lists every
change. Paths are compared after resolving them, and a path alone changing (the same bytes read
from elsewhere) is not a change.

Hashing is full for data files: they are small next to training, and "same path, new contents"
is the failure this guards against. A student's weight files can be tens of GB, so a file whose
resolved path, size and mtime match the record keeps its recorded hash; `cp -p` of different
weights over the same path would slip through that, and is the accepted gap.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from gad.training.config import ConfigError, RunConfig, method_fields

INPUTS = "inputs.json"
CONFIG = "config.yaml"
# Compared through their contents, not as strings.
PATH_FIELDS = ("student", "data", "teacher_responses")
_NOT_MODEL_FILES = {".md", ".gitattributes"}


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def file_identity(path: str | Path, known: dict | None = None) -> dict[str, Any]:
    """Resolved path, size and sha256 of one file. `known` (an earlier record) is reused only when
    path, size and mtime all match, and only if the caller passes it (weights, not data)."""
    p = Path(path).resolve()
    st = p.stat()
    if known and known.get("path") == str(p) and known.get("bytes") == st.st_size \
            and known.get("mtime_ns") == st.st_mtime_ns:
        return dict(known)
    return {"path": str(p), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256(p)}


def student_identity(student: str, known: dict | None = None) -> dict[str, Any]:
    """A local folder: every top-level file but docs, hashed. A hub id: the id itself."""
    folder = Path(student)
    if not folder.is_dir():
        return {"id": student}
    files = {}
    old = (known or {}).get("files", {})
    for f in sorted(folder.resolve().iterdir()):
        if f.is_file() and f.suffix not in _NOT_MODEL_FILES and not f.name.startswith("LICENSE"):
            files[f.name] = file_identity(f, old.get(f.name))
    return {"path": str(folder.resolve()), "files": files}


def input_identity(cfg: RunConfig, known: dict | None = None) -> dict[str, Any]:
    """The identity of a run's inputs (see module doc); `known` is the folder's earlier record."""
    known = known or {}
    return {
        "data": file_identity(cfg.data),
        "teacher_responses": file_identity(cfg.teacher_responses) if cfg.teacher_responses else None,
        "student": student_identity(cfg.student, known.get("student")),
    }


def identity_changes(old: dict, new: dict) -> list[str]:
    """Human-readable differences between two `input_identity` records (contents, not paths)."""
    out = []
    for name in ("data", "teacher_responses"):
        a, b = old.get(name), new.get(name)
        if (a is None) != (b is None):
            out.append(f"{name}: {'none' if a is None else a['path']} -> {'none' if b is None else b['path']}")
        elif a is not None and a["sha256"] != b["sha256"]:
            same = "its contents changed" if a["path"] == b["path"] else "a file with other contents"
            out.append(f"{name}: {same} ({a['path']} sha256 {a['sha256'][:12]}, {a['bytes']} bytes -> "
                       f"{b['path']} sha256 {b['sha256'][:12]}, {b['bytes']} bytes)")
    a, b = old.get("student", {}), new.get("student", {})
    if "id" in a or "id" in b:
        if a.get("id") != b.get("id"):
            out.append(f"student: {a.get('id', a.get('path'))} -> {b.get('id', b.get('path'))}")
        return out
    fa, fb = a.get("files", {}), b.get("files", {})
    changed = sorted(n for n in fa.keys() & fb.keys() if fa[n]["sha256"] != fb[n]["sha256"])
    added, removed = sorted(fb.keys() - fa.keys()), sorted(fa.keys() - fb.keys())
    if changed or added or removed:
        parts = ([f"changed {', '.join(changed)}"] if changed else []) + \
                ([f"new {', '.join(added)}"] if added else []) + ([f"missing {', '.join(removed)}"] if removed else [])
        out.append(f"student ({b.get('path')}): {'; '.join(parts)}")
    return out


def settings_changes(old: dict, cfg: RunConfig) -> list[str]:
    """Settings the method trains with that differ from the recorded ones (paths excluded: see
    identity_changes). A setting the method ignores may change freely."""
    new = cfg.model_dump()
    fields = method_fields(cfg)
    return [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in RunConfig.model_fields
            if k in fields and k not in PATH_FIELDS and k in old and old[k] != new[k]]


def read_records(run_dir: Path) -> tuple[dict | None, dict | None]:
    """(settings, inputs) recorded in a run folder; None for a file that is not there."""
    cfg_path, inputs_path = run_dir / CONFIG, run_dir / INPUTS
    settings = (yaml.safe_load(cfg_path.read_text()) or {}) if cfg_path.is_file() else None
    inputs = json.loads(inputs_path.read_text()) if inputs_path.is_file() else None
    return settings, inputs


def check_resume(run_dir: str | Path, cfg: RunConfig) -> dict[str, Any]:
    """Refuse (ConfigError) to continue `run_dir` with other inputs or settings; return the
    current input identity for the caller to record.

    Call it before resuming a folder that holds checkpoints. A folder without records (a fork's
    first start, or a folder from before inputs were recorded) passes for what it lacks.
    """
    run_dir = Path(run_dir)
    settings, inputs = read_records(run_dir)
    identity = input_identity(cfg, inputs)
    changes = (settings_changes(settings, cfg) if settings is not None else []) + \
              (identity_changes(inputs, identity) if inputs is not None else [])
    if changes:
        raise ConfigError(f"{run_dir} already holds a run with other settings or inputs "
                          f"({'; '.join(changes)}); resume with the same ones or choose a new --output")
    return identity


def write_records(run_dir: Path, cfg: RunConfig, identity: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG).write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
    (run_dir / INPUTS).write_text(json.dumps(identity, indent=2))
