"""Prompt / teacher-response sets in the formats people actually have.

Every row becomes an `Example`: a conversation that ends with a user turn (history kept as the
prompt) plus, when the file has one, the teacher's response. Recognised shapes:

  {prompt, response}                 plain pairs (teacher under response/output/completion/answer/
                                     teacher_response/reference)
  {instruction, input, output}       Alpaca (and AlpacaEval model outputs)
  {instruction, instances:[...]}     Self-Instruct
  {messages: [{role, content}]}      OpenAI / TRL conversational (a final assistant turn is the
                                     teacher response)
  {conversation: [...]}              LMSYS-Chat
  {conversations: [{from, value}]}   ShareGPT
  {turns: [...]} / {text}            FastChat questions (first user turn)
  {choices: [{turns: [...]}]}        FastChat / Arena-Hard answer files (responses only, joined on id)
  {content: [messages], teacher_response}  the GAD paper's released data

Errors are `DataError`s naming file, line (or row/item) and field.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

PROMPT_FIELDS = ("prompt", "question", "query", "text", "instruction")
TEACHER_FIELDS = ("teacher_response", "response", "output", "completion", "answer", "reference")
ID_FIELDS = ("id", "question_id", "idx", "uid")
ROLE_ALIASES = {
    "user": "user", "human": "user", "prompter": "user",
    "assistant": "assistant", "gpt": "assistant", "model": "assistant", "bot": "assistant",
    "chatgpt": "assistant", "bard": "assistant",
    "system": "system",
}
SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")

PLAIN_WRAPPER = ("Below is an instruction that describes a task. "
                 "Write a response that appropriately completes the request.\n\n"
                 "### Instruction:\n{instruction}\n\n### Response:\n")


class DataError(ValueError):
    """Bad input data; the message starts with `file:line` and names the field."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where = where


@dataclass
class Example:
    id: str
    messages: list[dict[str, str]]          # ends with a user turn
    response: str | None = None             # the teacher's response, if known
    where: str = ""                         # file:line, for error messages
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_text(self) -> str:
        """The last user turn (what a single-turn view shows)."""
        return self.messages[-1]["content"]


# --------------------------------------------------------------------------------------------
# Reading rows
# --------------------------------------------------------------------------------------------
def read_rows(path: str | Path) -> Iterator[tuple[str, Any]]:
    """Yield (where, row) for every record of a JSONL/JSON/CSV/Parquet file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "file not found")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield f"{path}:{lineno}", json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}:{lineno}", f"not valid JSON ({err.msg} at column {err.colno})") from None
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}", f"not valid JSON ({err.msg} at column {err.colno})") from None
        if isinstance(data, dict):  # {"data": [...]}, {"instances": [...]}, ... or a single record
            lists = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
            data = lists[0] if len(lists) == 1 else [data]
        if not isinstance(data, list):
            raise DataError(str(path), f"expected a JSON array of records, got {type(data).__name__}")
        for i, row in enumerate(data):
            yield f"{path}:item {i}", row
    elif suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                yield f"{path}:{reader.line_num}", _parse_json_cells(row)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        for i, row in enumerate(table.to_pylist()):
            yield f"{path}:row {i + 1}", row
    else:
        raise DataError(str(path), f"unsupported file type '{suffix}'; use one of {', '.join(SUPPORTED_SUFFIXES)}")


def _parse_json_cells(row: dict[str, str]) -> dict[str, Any]:
    """CSV cells holding JSON lists (messages, turns) are decoded; everything else stays text."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key is None:
            continue
        text = (value or "").strip()
        if text[:1] in "[{" and text[-1:] in "]}":
            try:
                out[key] = json.loads(text)
                continue
            except json.JSONDecodeError:
                pass
        out[key] = value
    return out


# --------------------------------------------------------------------------------------------
# One row -> Example
# --------------------------------------------------------------------------------------------
def _text(value: Any, where: str, name: str) -> str:
    """Accept a string, a {content}/{text}/{value} dict, or a list of text parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("content", "text", "value"):
            if key in value:
                return _text(value[key], where, f"{name}.{key}")
    if isinstance(value, list) and all(isinstance(p, (str, dict)) for p in value):
        parts = [p if isinstance(p, str) else p.get("text", "") for p in value]
        return "".join(parts)
    raise DataError(where, f"field '{name}' should be text, got {type(value).__name__}")


def _messages(raw: Any, where: str, name: str) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise DataError(where, f"field '{name}' should be a non-empty list of messages")
    out = []
    for i, msg in enumerate(raw):
        if not isinstance(msg, dict):
            raise DataError(where, f"field '{name}[{i}]' should be an object with role and content")
        role_raw = msg.get("role", msg.get("from"))
        if role_raw is None:
            raise DataError(where, f"field '{name}[{i}]' has no 'role' (or ShareGPT 'from')")
        role = ROLE_ALIASES.get(str(role_raw).lower())
        if role is None:
            raise DataError(where, f"field '{name}[{i}].role' is '{role_raw}'; expected one of "
                                   f"user, assistant, system (or ShareGPT human/gpt)")
        content_key = next((k for k in ("content", "value", "text") if k in msg), None)
        if content_key is None:
            raise DataError(where, f"field '{name}[{i}]' has no 'content' (or ShareGPT 'value')")
        out.append({"role": role, "content": _text(msg[content_key], where, f"{name}[{i}].{content_key}")})
    return out


def _answer_from_choices(choices: Any, where: str) -> str:
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise DataError(where, "field 'choices' should be a list like [{'turns': [...]}]")
    first = choices[0]
    if "turns" in first and first["turns"]:
        return _text(first["turns"][0], where, "choices[0].turns[0]")
    if "message" in first:  # an OpenAI completion object
        return _text(first["message"], where, "choices[0].message")
    raise DataError(where, "field 'choices[0]' has no 'turns' or 'message'")


def _teacher(row: dict, where: str) -> str | None:
    for name in TEACHER_FIELDS:
        value = row.get(name)
        if value is None or (isinstance(value, float) and value != value):  # None / NaN cells
            continue
        if isinstance(value, list) and value and isinstance(value[0], dict) and "role" in value[0]:
            return _messages(value, where, name)[-1]["content"]  # TRL completion as messages
        return _text(value, where, name)
    if "choices" in row:
        return _answer_from_choices(row["choices"], where)
    return None


def _row_id(row: dict, where: str) -> str:
    for name in ID_FIELDS:
        if row.get(name) not in (None, ""):
            return str(row[name])
    return where.rsplit("/", 1)[-1]  # file:line is unique and stable


def parse_row(row: Any, where: str) -> Example:
    if not isinstance(row, dict):
        raise DataError(where, f"expected a JSON object per record, got {type(row).__name__}")
    rid = _row_id(row, where)
    response = _teacher(row, where)
    extra = {k: row[k] for k in ("category", "source", "dataset") if k in row}

    conv_field = next((f for f in ("messages", "conversation", "conversations") if f in row), None)
    if conv_field is None and isinstance(row.get("content"), list):
        conv_field = "content"                       # the paper's released data
    if conv_field is None and isinstance(row.get("prompt"), list):
        conv_field = "prompt"                        # TRL conversational prompt
    if conv_field:
        msgs = _messages(row[conv_field], where, conv_field)
        if msgs[-1]["role"] == "assistant":
            if response is None or conv_field != "prompt":
                response = response if response is not None else msgs[-1]["content"]
            msgs = msgs[:-1]
        if not msgs or msgs[-1]["role"] != "user":
            raise DataError(where, f"field '{conv_field}' must end with a user turn "
                                   f"(optionally followed by the assistant's answer)")
        return _finish(Example(rid, msgs, response, where, extra), conv_field)

    if "turns" in row:
        turns = row["turns"]
        if not isinstance(turns, list) or not turns:
            raise DataError(where, "field 'turns' should be a non-empty list")
        # FastChat questions are successive user turns with no answers in between: keep the first.
        text = _text(turns[0], where, "turns[0]")
        if len(turns) > 1:
            extra["dropped_turns"] = len(turns) - 1
        return _finish(Example(rid, [{"role": "user", "content": text}], response, where, extra), "turns")

    if "instruction" in row:
        instruction = _text(row["instruction"], where, "instruction")
        inp = row.get("input") or row.get("context") or ""
        if "instances" in row:                       # Self-Instruct
            inst = row["instances"]
            if not isinstance(inst, list) or not inst or not isinstance(inst[0], dict):
                raise DataError(where, "field 'instances' should be a list of {input, output}")
            inp = inst[0].get("input") or ""
            if response is None and inst[0].get("output") is not None:
                response = _text(inst[0]["output"], where, "instances[0].output")
        inp = _text(inp, where, "input") if inp else ""
        prompt = instruction + ("\n\n" + inp if inp.strip() else "")
        extra.update(instruction=instruction, input=inp)
        return _finish(Example(rid, [{"role": "user", "content": prompt}], response, where, extra), "instruction")

    name = next((f for f in PROMPT_FIELDS if f in row), None)
    if name is None:
        if "choices" in row:
            raise DataError(where, "this looks like an answers file (choices, no prompt): load it "
                                   "with --teacher-responses next to the questions file")
        raise DataError(where, f"no prompt field: expected one of {', '.join(PROMPT_FIELDS)}, "
                               f"messages, conversations or turns; found {', '.join(map(str, row)) or 'nothing'}")
    prompt = _text(row[name], where, name)
    return _finish(Example(rid, [{"role": "user", "content": prompt}], response, where, extra), name)


def _finish(ex: Example, field_name: str) -> Example:
    if not ex.messages[-1]["content"].strip():
        raise DataError(ex.where, f"field '{field_name}': the prompt is empty")
    return ex


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def load_responses(path: str | Path) -> dict[str, str]:
    """An answers file (FastChat/Arena-Hard `choices`, or any id + teacher field) as {id: text}."""
    out: dict[str, str] = {}
    for where, row in read_rows(path):
        if not isinstance(row, dict):
            raise DataError(where, "expected a JSON object per record")
        response = _teacher(row, where)
        if response is None:
            raise DataError(where, f"no response field: expected choices or one of {', '.join(TEACHER_FIELDS)}")
        rid = _row_id(row, where)
        if rid in out:
            raise DataError(where, f"duplicate id '{rid}' in the responses file")
        out[rid] = response
    return out


def load_examples(path: str | Path, responses: str | Path | None = None, *,
                  require_response: bool = False, limit: int | None = None) -> list[Example]:
    """Read a prompt set, optionally joining teacher responses from a second file on id."""
    examples = [parse_row(row, where) for where, row in read_rows(path)]
    if not examples:
        raise DataError(str(path), "the file holds no records")
    if responses is not None:
        answers = load_responses(responses)
        for ex in examples:
            if ex.id in answers:
                ex.response = answers[ex.id]
    if require_response:
        missing = [ex for ex in examples if not (ex.response or "").strip()]
        if missing:
            ex = missing[0]
            raise DataError(ex.where, f"no teacher response for prompt id '{ex.id}' ({len(missing)} of "
                                      f"{len(examples)} records lack one): expected a field such as "
                                      f"{', '.join(TEACHER_FIELDS)}, or pass --teacher-responses")
    return examples[:limit] if limit else examples


def split_examples(examples: list[Example], test_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Deterministic split: an example's side depends only on (seed, id, prompt), not on order."""
    if test_fraction <= 0:
        return list(examples), []

    def key(ex: Example) -> str:
        return hashlib.sha256(f"{seed}\0{ex.id}\0{ex.prompt_text}".encode()).hexdigest()

    ranked = sorted(examples, key=key)
    n_test = max(1, round(len(examples) * test_fraction))
    test_ids = {id(ex) for ex in ranked[:n_test]}
    return [ex for ex in examples if id(ex) not in test_ids], [ex for ex in examples if id(ex) in test_ids]


def render_prompt(messages: list[dict[str, str]], tokenizer, prompt_format: str = "chat") -> str:
    """The text the student is conditioned on: its chat template, or the paper's plain wrapper."""
    if prompt_format == "plain":
        if len(messages) == 1:
            instruction = messages[0]["content"]
        else:  # keep the history readable inside the single instruction slot
            instruction = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)
        return PLAIN_WRAPPER.format(instruction=instruction)
    if not getattr(tokenizer, "chat_template", None):
        raise DataError("student tokenizer", "has no chat template; use --prompt-format plain")
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
