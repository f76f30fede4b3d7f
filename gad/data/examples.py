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

Field names match whatever their case (`Prompt`, `Response` from a spreadsheet). Reading bytes
(formats, encodings, compression, CSV dialects) is gad/data/readers.py's part.

Conversations may hold OpenAI tool use: `developer` is the newer name of `system`; an assistant
turn that calls tools (`tool_calls`, `content: null`) and the `tool`/`function` results are kept
as plain text turns ("[tool call] name(args)" by the assistant, "[tool result: name] ..." as a
user turn, consecutive results merged), because the final answer depends on what the tools
returned, and a student's chat template may know no tool role.

Errors are `DataError`s naming file, line (or row/item) and field.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# re-exported: gad.data.examples is the API
from gad.data.readers import SUPPORTED_SUFFIXES, DataError, DataTooLarge, read_rows  # noqa: F401

PROMPT_FIELDS = ("prompt", "question", "query", "text", "instruction")
TEACHER_FIELDS = ("teacher_response", "response", "output", "completion", "answer", "reference")
ID_FIELDS = ("id", "question_id", "idx", "uid")
ROLE_ALIASES = {
    "user": "user", "human": "user", "prompter": "user",
    "assistant": "assistant", "gpt": "assistant", "model": "assistant", "bot": "assistant",
    "chatgpt": "assistant", "bard": "assistant",
    "system": "system", "developer": "system",
}
TOOL_ROLES = ("tool", "function", "ipython")  # results of a tool call (ipython: Llama's name)

PLAIN_WRAPPER = ("Below is an instruction that describes a task. "
                 "Write a response that appropriately completes the request.\n\n"
                 "### Instruction:\n{instruction}\n\n### Response:\n")


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
# One row -> Example
# --------------------------------------------------------------------------------------------
def _text(value: Any, where: str, name: str) -> str:
    """Accept a string, a {content}/{text}/{value} dict, or a list of text parts."""
    if isinstance(value, str):
        return _valid_unicode(value, where, name)
    if isinstance(value, dict):
        for key in ("content", "text", "value"):
            if key in value:
                return _text(value[key], where, f"{name}.{key}")
    if isinstance(value, list) and all(isinstance(p, (str, dict)) for p in value):
        parts = [p if isinstance(p, str) else p.get("text", "") for p in value]
        return _text("".join(p for p in parts if isinstance(p, str)), where, name)
    raise DataError(where, f"field '{name}' should be text, got {type(value).__name__}")


def _valid_unicode(text: str, where: str, name: str) -> str:
    """JSON's \\ud800 escapes decode to lone surrogates, which no tokenizer or API accepts; its
    \\u0000 to NUL, which PostgreSQL refuses in text and no prompt means."""
    if "\x00" in text:
        raise DataError(where, f"field '{name}' holds a NUL character (\\u0000) at position {text.index(chr(0)) + 1}; "
                               f"remove it from that record")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise DataError(where, f"field '{name}' holds an invalid character at position {err.start + 1} (a lone "
                               f"surrogate, \\u{ord(text[err.start]):04x}: half of an emoji or other character "
                               f"that a tool cut in two); fix or drop that record") from None
    return text


def _lower_keys(row: dict, where: str, name: str = "") -> dict:
    """Field names match whatever their case or spacing: 'Prompt', 'Teacher Response'."""
    out, original = {}, {}
    for key, value in row.items():
        norm = str(key).strip().lower().replace(" ", "_")
        if norm in out:
            inside = f" of '{name}'" if name else ""
            raise DataError(where, f"fields '{original[norm]}' and '{key}'{inside} differ only in case or spacing; "
                                   f"keep one")
        out[norm], original[norm] = value, key
    return out


def _messages(raw: Any, where: str, name: str) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise DataError(where, f"field '{name}' should be a non-empty list of messages")
    out: list[dict[str, str]] = []
    previous_was_tool = False
    for i, msg in enumerate(raw):
        here = f"{name}[{i}]"
        if not isinstance(msg, dict):
            raise DataError(where, f"field '{here}' should be an object with role and content")
        msg = _lower_keys(msg, where, here)
        role_raw = msg.get("role", msg.get("from"))
        if role_raw is None:
            raise DataError(where, f"field '{here}' has no 'role' (or ShareGPT 'from')")
        role_key = str(role_raw).strip().lower()
        if role_key in TOOL_ROLES:
            text = _tool_result(msg, where, here)
            if previous_was_tool:  # parallel calls answered one after another: one turn
                out[-1]["content"] += "\n\n" + text
            else:
                out.append({"role": "user", "content": text})
            previous_was_tool = True
            continue
        previous_was_tool = False
        role = ROLE_ALIASES.get(role_key)
        if role is None:
            raise DataError(where, f"field '{here}.role' is '{role_raw}'; expected one of user, assistant, "
                                   f"system, developer, tool (or ShareGPT human/gpt)")
        content_key = next((k for k in ("content", "value", "text") if k in msg), None)
        calls = _tool_calls(msg, where, here) if role == "assistant" else []
        if content_key is None and not calls:
            raise DataError(where, f"field '{here}' has no 'content' (or ShareGPT 'value')")
        content = msg[content_key] if content_key else None
        if content is None and not calls:
            raise DataError(where, f"field '{here}.{content_key}' is null (and the turn calls no tool)")
        text = _text(content, where, f"{here}.{content_key}") if content is not None else ""
        out.append({"role": role, "content": "\n".join(([text] if text.strip() else []) + calls)})
    return out


def _tool_calls(msg: dict, where: str, name: str) -> list[str]:
    """An assistant's tool calls as text lines: '[tool call] name(arguments)'."""
    calls = msg.get("tool_calls") or ([msg["function_call"]] if msg.get("function_call") else [])
    if not isinstance(calls, list):
        raise DataError(where, f"field '{name}.tool_calls' should be a list")
    lines = []
    for j, call in enumerate(calls):
        fn = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not fn.get("name"):
            raise DataError(where, f"field '{name}.tool_calls[{j}]' should be {{function: {{name, arguments}}}}")
        args = fn.get("arguments", "")
        args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        lines.append(_valid_unicode(f"[tool call] {fn['name']}({args})", where, f"{name}.tool_calls[{j}]"))
    return lines


def _tool_result(msg: dict, where: str, name: str) -> str:
    content_key = next((k for k in ("content", "value", "text") if k in msg), None)
    if content_key is None or msg[content_key] is None:
        raise DataError(where, f"field '{name}' (a tool result) has no 'content'")
    label = msg.get("name") or msg.get("tool_call_id")
    text = _text(msg[content_key], where, f"{name}.{content_key}")
    return _valid_unicode(f"[tool result{': ' + str(label) if label else ''}] {text}", where, name)


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
            return _valid_unicode(str(row[name]), where, name)
    return where.rsplit("/", 1)[-1]  # file:line is unique and stable


def parse_row(row: Any, where: str) -> Example:
    if not isinstance(row, dict):
        raise DataError(where, f"expected a JSON object per record, got {type(row).__name__}")
    row = _lower_keys(row, where)
    rid = _row_id(row, where)
    response = _teacher(row, where)
    # status: a collected teacher file says why a prompt has no response (refused, failed)
    extra = {k: row[k] for k in ("category", "source", "dataset", "status") if k in row}

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
        row = _lower_keys(row, where)
        response = _teacher(row, where)
        if response is None:
            raise DataError(where, f"no response field: expected choices or one of {', '.join(TEACHER_FIELDS)}")
        rid = _row_id(row, where)
        if rid in out:
            raise DataError(where, f"duplicate id '{rid}' in the responses file")
        out[rid] = response
    return out


def load_examples(path: str | Path, responses: str | Path | None = None, *,
                  require_response: bool = False, skip_missing: bool = False,
                  limit: int | None = None, max_bytes: int | None = None, max_rows: int | None = None,
                  max_document_bytes: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> list[Example]:
    """Read a prompt set, optionally joining teacher responses from a second file on id.

    require_response: every example must have a teacher response (training); with skip_missing,
    those that lack one are dropped instead (see `require_responses` to learn how many).
    max_bytes / max_rows / max_document_bytes: refuse a file past these (DataTooLarge; see read_rows).
    progress(bytes_read, file_size): how far into `path` parsing is (see read_rows).
    """
    rows = read_rows(path, max_bytes=max_bytes, max_rows=max_rows, max_document_bytes=max_document_bytes,
                     progress=progress)
    examples = [parse_row(row, where) for where, row in rows]
    if not examples:
        raise DataError(str(path), "the file holds no records")
    first_at: dict[str, str] = {}
    for ex in examples:
        if ex.id in first_at:
            raise DataError(ex.where, f"duplicate id '{ex.id}' (first at {first_at[ex.id]}): ids must be unique, "
                                      f"responses are joined and splits made on them; renumber or drop the repeat")
        first_at[ex.id] = ex.where
    if responses is not None:
        answers = load_responses(responses)
        for ex in examples:
            if ex.id in answers:
                ex.response = answers[ex.id]
    examples = examples[:limit] if limit else examples
    if require_response:
        examples, _ = require_responses(examples, skip=skip_missing)
    return examples


def require_responses(examples: list[Example], *, skip: bool = False) -> tuple[list[Example], list[Example]]:
    """(examples with a teacher response, those without); without `skip`, any missing one is an error."""
    kept = [ex for ex in examples if (ex.response or "").strip()]
    missing = [ex for ex in examples if not (ex.response or "").strip()]
    if not missing or (skip and kept):
        return kept, missing
    ex = missing[0]
    statuses = Counter(str(e.extra["status"]) for e in missing if e.extra.get("status") not in (None, "ok"))
    why = (": " + ", ".join(f"{n} {s}" for s, n in statuses.most_common()) + " when collected") if statuses else ""
    if skip:
        raise DataError(ex.where, f"no record has a teacher response ({len(missing)} lack one{why})")
    fixes = ["re-run `collect --retry-failed` for them"] if statuses else \
        [f"give a field such as {', '.join(TEACHER_FIELDS[:3])}", "pass --teacher-responses"]
    fixes.append(f"skip them and train on the {len(kept)} that have one (skip_missing_responses, "
                 f"--skip-missing-responses)")
    raise DataError(ex.where, f"no teacher response for prompt id '{ex.id}' ({len(missing)} of {len(examples)} "
                              f"records lack one{why}): " + "; or ".join(fixes))


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
