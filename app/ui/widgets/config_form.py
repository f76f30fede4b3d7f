"""The run-settings form, generated from gad.training.config.RunConfig: one input per field, its help text and
the paper's default as the hint, grouped with the essentials first and the rest folded.

There is no second list of settings here: GROUPS only *orders* fields by name, and any field of
RunConfig not named in it lands in "Other settings", so a new setting appears in the form by itself.
"""

from __future__ import annotations

import typing

import gradio as gr

from gad.training.config import RunConfig, fields_of_kind

# Set elsewhere on the page (method menu, student picker, dataset) or by the studio (output, held-out pairs):
# the method and the per-run inputs and places (gad.training.config's field kinds).
NOT_IN_FORM = tuple(sorted(fields_of_kind("method", "input", "place")))

GROUPS: list[tuple[str, list[str]]] = [
    ("Essentials", ["steps", "warmup_steps", "batch_size", "group_size", "lr", "disc_lr", "max_new_tokens",
                    "max_examples"]),
    ("Schedule and checkpoints", ["disc_only_steps", "offpolicy_disc_steps", "generator_warmup",
                                  "discriminator_warmup", "save_steps", "sample_every",
                                  "gradient_accumulation_steps"]),
    ("Discriminator: schedule and held-out check", ["disc_steps_per_step", "disc_warmup_steps", "disc_warmup_target",
                                                    "fork_discriminator", "disc_eval_every", "disc_eval_prompts",
                                                    "disc_eval_samples", "monitor_teacher"]),
    ("Optimisation", ["warmup_lr", "seqkd_lr", "kl_coef", "clip_range", "grad_clip", "disc_grad_clip",
                      "weight_decay"]),
    ("Student sampling", ["temperature", "top_p"]),
    ("Data", ["prompt_format", "max_prompt_length", "test_fraction", "seed", "teacher_responses"]),
    ("Precision, LoRA and hardware", ["dtype", "lora", "lora_r", "lora_alpha", "lora_dropout", "use_vllm",
                                      "trust_remote_code"]),
]


def grouped_fields() -> list[tuple[str, list[str]]]:
    """GROUPS restricted to RunConfig's fields, plus every field GROUPS does not name."""
    fields = [f for f in RunConfig.model_fields if f not in NOT_IN_FORM]
    named = {f for _, fs in GROUPS for f in fs}
    groups = [(title, [f for f in fs if f in fields]) for title, fs in GROUPS]
    rest = [f for f in fields if f not in named]
    return [g for g in groups if g[1]] + ([("Other settings", rest)] if rest else [])


def _base_type(annotation):
    """`int | None` -> int; anything else as it is."""
    args = typing.get_args(annotation)
    rest = [a for a in args if a is not type(None)]
    return rest[0] if type(None) in args and len(rest) == 1 else annotation


def default_text(name: str) -> str:
    field = RunConfig.model_fields[name]
    if field.default is None:
        return "unset"
    return str(field.default)


def _label(name: str) -> str:
    return (name.replace("_", " ").capitalize().replace("Lr", "LR").replace("Kl ", "KL ")
            .replace("Disc ", "Discriminator "))


def _component(name: str):
    field = RunConfig.model_fields[name]
    info = f"{field.description or ''} Paper default: {default_text(name)}. ({name})"
    kind = _base_type(field.annotation)
    common = dict(label=_label(name), info=info, elem_id=f"cfg-{name}")
    if kind is bool:
        return gr.Checkbox(value=field.default, **common)
    if typing.get_origin(kind) is typing.Literal:
        return gr.Dropdown(choices=list(typing.get_args(kind)), value=field.default, **common)
    if kind is int and field.default is None:
        # gr.Number cannot show "unset" (it shows 0, which means something else here): a text box.
        return gr.Textbox(value="", placeholder="unset", **common)
    if kind is int:
        return gr.Number(value=field.default, precision=0, **common)
    if kind is float:
        return gr.Number(value=field.default, **common)
    return gr.Textbox(value=field.default or "", placeholder="unset", **common)


class ConfigForm:
    """The inputs, in a fixed order; `values` reads them back, `updates` fills them."""

    @staticmethod
    def _component_kind(name: str):
        """'' for fields shown as text boxes (strings and optional whole numbers), else the field's type."""
        field = RunConfig.model_fields[name]
        kind = _base_type(field.annotation)
        if kind is str or (kind is int and field.default is None):
            return ""
        return kind

    def __init__(self):
        self.names: list[str] = []
        self.components: list = []

    def build(self) -> ConfigForm:
        for i, (title, names) in enumerate(grouped_fields()):
            with gr.Accordion(title, open=i == 0, elem_classes=["cfg-group"]):
                per_row = 4
                for start in range(0, len(names), per_row):
                    with gr.Row(equal_height=False):
                        for name in names[start:start + per_row]:
                            self.names.append(name)
                            self.components.append(_component(name))
        return self

    def values(self, raw: list) -> dict:
        """Form values as settings: empty numbers and texts are unset (None), whole numbers are ints."""
        out = {}
        for name, value in zip(self.names, raw):
            kind = _base_type(RunConfig.model_fields[name].annotation)
            if isinstance(value, str):
                value = value.strip()
            if value in ("", None):
                out[name] = None
            elif kind is int and isinstance(value, float) and value.is_integer():
                out[name] = int(value)
            elif kind is int and isinstance(value, str) and value.lstrip("-").isdigit():
                out[name] = int(value)  # other text goes to RunConfig as it is, which says what is wrong
            else:
                out[name] = value
        return out

    def updates(self, values: dict) -> list:
        """Updates for every input: the given value, else the paper's default."""
        out = []
        for name in self.names:
            value = values.get(name, RunConfig.model_fields[name].default)
            if isinstance(self._component_kind(name), str):
                value = "" if value is None else str(value)
            out.append(gr.update(value=value))
        return out
