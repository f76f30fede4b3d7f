"""Collect teacher responses for a prompt set: from an API (black box) or a local model.

The output JSONL has one line per prompt, in input order: `id`, `messages` (the prompt
conversation), `response`, `status` (ok | refused | failed), `finish_reason`, `usage`, `cost`,
`error`. Lines with status ok are ready as training data (`gad-studio train --data OUTPUT`).
The output is written to a temporary file and renamed at the end, so it is never half-written.
What makes a killed run resumable, and a second collection of the same prompts free whatever its
output is called, is the shared response cache (gad/llm/cache.py; `--cache PATH` to choose another).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gad.data.examples import Example
from gad.llm.api_client import ChatRunner, Endpoint, Ledger
from gad.llm.cache import ResponseStore, import_legacy_cache, open_cache
from gad.training.config import ConfigError


@dataclass
class CollectResult:
    output: Path
    records: list[dict]
    ledger: dict


def write_jsonl_atomic(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def _record(ex: Example, result: dict) -> dict:
    return {"id": ex.id, "messages": ex.messages, "response": result.get("response"),
            "status": result["status"], "finish_reason": result.get("finish_reason"),
            "usage": result.get("usage"), "cost": result.get("cost", 0.0), "error": result.get("error"),
            "cached": result.get("cached", False)}


def check_output_file(output: str | Path) -> Path:
    """The output must be creatable as a file: checked before anything is paid for."""
    output = Path(output)
    if output.is_dir():
        raise ConfigError(f"--output {output} is a folder; give a file name, e.g. {output / 'teacher.jsonl'}")
    if output.parent.exists() and not output.parent.is_dir():
        raise ConfigError(f"--output {output}: {output.parent} is a file, not a folder")
    return output


def collect_api(examples: list[Example], endpoint: Endpoint, output: str | Path, *,
                cache: str | Path | ResponseStore | None = None, retry_final: bool = False,
                on_result: Callable[[dict, Ledger], None] | None = None) -> CollectResult:
    """Ask `endpoint` for every prompt, never paying twice for an answer in `cache` (None: the shared one)."""
    output = check_output_file(output)
    with open_cache(cache) as store:
        import_legacy_cache(store, output.with_name(output.name + ".cache.jsonl"))  # older versions' per-output cache
        runner = ChatRunner(endpoint, store, on_result=on_result, retry_final=retry_final)
        results = runner.run([ex.messages for ex in examples])
    records = [_record(ex, r) for ex, r in zip(examples, results)]
    write_jsonl_atomic(output, records)
    return CollectResult(output, records, runner.ledger.as_dict())


def collect_local(examples: list[Example], model_path: str, output: str | Path, *, max_new_tokens: int = 512,
                  temperature: float = 0.8, top_p: float = 1.0, greedy: bool = False, batch_size: int = 16,
                  trust_remote_code: bool = False,
                  on_result: Callable[[dict, Ledger], None] | None = None) -> CollectResult:
    """An open model as the teacher (the paper's Table 5): batched generation, same output format."""
    from gad.llm.generation import generate_for_messages

    output = check_output_file(output)
    ledger = Ledger()
    records = []
    answers = generate_for_messages(model_path, [ex.messages for ex in examples], max_new_tokens=max_new_tokens,
                                    temperature=temperature, top_p=top_p, greedy=greedy, batch_size=batch_size,
                                    trust_remote_code=trust_remote_code)
    for ex, (text, n_prompt, n_response, finished) in zip(examples, answers):
        result = {"status": "ok", "response": text, "finish_reason": "stop" if finished else "length",
                  "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_response}, "cost": 0.0}
        ledger.ok += 1
        ledger.prompt_tokens += n_prompt
        ledger.completion_tokens += n_response
        records.append(_record(ex, result))
        if on_result:
            on_result(result, ledger)
    write_jsonl_atomic(output, records)
    return CollectResult(output, records, ledger.as_dict())
