"""What the new-run form shows before launch, computed from gad.training.config so the page holds no
rules: the method menu (the paper's methods and warmup ablations as RunConfig settings), which
settings differ from the paper's defaults, what RunConfig says of them (blocking errors, settings the
method ignores), and the equivalent `gad-studio train` command and YAML."""

from __future__ import annotations

from gad.training.config import ConfigError, RunConfig, build_config, method_warnings

# The five methods of the paper's experiments, each as the RunConfig settings it means.
METHODS: dict[str, dict] = {
    "GAD (warmup + adversarial)": {"method": "gad", "generator_warmup": True, "discriminator_warmup": True},
    "SeqKD (baseline)": {"method": "seqkd"},
    "Off-policy (SeqKD, frozen D, GRPO)": {"method": "offpolicy"},
    "GAD without generator warmup (ablation)": {"method": "gad", "generator_warmup": False,
                                                "discriminator_warmup": True},
    "GAD without discriminator warmup (ablation)": {"method": "gad", "generator_warmup": True,
                                                    "discriminator_warmup": False},
}
# Stand-ins for the required fields the form may not have filled yet: checks then speak of the rest.
_PLACEHOLDERS = {"student": "org/model", "data": "data.jsonl", "output": "out"}


def method_label(values: dict) -> str:
    """The menu entry a set of settings corresponds to."""
    method = values.get("method", "gad")
    if method != "gad":
        return next(k for k, v in METHODS.items() if v["method"] == method)
    gen, disc = values.get("generator_warmup", True), values.get("discriminator_warmup", True)
    for label, v in METHODS.items():
        if v["method"] == "gad" and (v["generator_warmup"], v["discriminator_warmup"]) == (gen, disc):
            return label
    return next(iter(METHODS))  # both warmups off: plain GAD with warmup_steps 0 (the config check says so)


def is_changed(name: str, value) -> bool:
    """Whether a setting differs from RunConfig's default (a required field always counts as set)."""
    field = RunConfig.model_fields[name]
    return field.is_required() or value != field.default


def changed_settings(values: dict) -> dict:
    """Settings that differ from RunConfig's defaults, in field order (required fields always)."""
    return {name: values[name] for name in RunConfig.model_fields
            if values.get(name) is not None and is_changed(name, values[name])}


def command_preview(values: dict, output: str = "runs/my-run") -> tuple[str, str]:
    """The equivalent `gad-studio train` command and YAML config (only what differs from the defaults)."""
    import shlex

    import yaml

    changed = changed_settings({**values, "output": output})
    parts = ["gad-studio train"]
    for name, value in changed.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + name.replace("_", "-"))
        else:
            parts.append(f"{flag} {shlex.quote(str(value))}")
    command = " \\\n    ".join(parts)
    text = "# gad-studio train --config run.yaml  (settings not listed keep the paper's defaults)\n"
    text += yaml.safe_dump(changed, sort_keys=False, allow_unicode=True)
    return command, text


def config_checks(values: dict, source: str = "the form") -> dict[str, list[str]]:
    """What RunConfig says of these settings: {"errors": problems that block the launch, one per line,
    "notes": settings the method ignores (gad.training.config.method_warnings)}. Required fields the
    form has not filled yet are not reported."""
    filled = {k: values.get(k) or v for k, v in _PLACEHOLDERS.items()}
    try:
        cfg = build_config({**values, **filled}, source=source)
    except ConfigError as err:
        return {"errors": [line.strip(" -") for line in str(err).splitlines()[1:]] or [str(err)], "notes": []}
    return {"errors": [], "notes": method_warnings(cfg)}


def stored_config_warnings(config: dict, source: str) -> list[str]:
    """Warnings about a run's stored settings: what its method ignores, or that they no longer
    validate (a row written by an older studio; said rather than failing the page)."""
    found = config_checks(config, source)
    if found["errors"]:
        return [f"the stored settings no longer validate: {found['errors'][-1]}"]
    return found["notes"]
