"""New run: teacher responses (a dataset), the student (a folder, a hub id, or a checkpoint of an earlier
run), the method (GAD, SeqKD, off-policy, the two warmup ablations) and every setting of
gad.training.config.RunConfig with its help text and the paper's default. Presets (built in and the user's
own), copying an earlier run's settings, what the settings imply (checks, GPU memory and time
estimates) and the equivalent `gad-studio train` command and YAML, all before launch.

The same form forks a run: "Fork" on a run page fills it with the parent's settings and launching
starts the child from the chosen checkpoint."""

from __future__ import annotations

import gradio as gr

from app.enums import JobKind
from app.errors import InvalidInput, StudioError
from app.services import presets as preset_service
from app.services import run_views
from app.services import runs as run_service
from app.services.chat import list_models
from app.services.datasets import dataset_options
from app.services.estimates import estimate
from app.services.run_form import METHODS, command_preview, config_checks, method_label
from app.services.run_views import checkpoint_options, run_options
from app.ui.common import Ui, parse_id, shows_errors
from app.ui.widgets.config_form import ConfigForm
from app.ui.widgets.html import alarms, error_box, esc, notes

STUDENT_PATH, STUDENT_CKPT = "a folder or hub id", "a checkpoint of an earlier run"


class NewRunPage:
    def __init__(self, ui: Ui):
        self.ui = ui
        self.form = ConfigForm()

    # --- layout ---------------------------------------------------------------------------------
    def build(self) -> NewRunPage:
        self.fork_of = gr.State(None)  # {"run_id", "step"} while the form forks a run
        self.launched = gr.State(None)
        with gr.Row(visible=False) as self.fork_banner:
            self.fork_text = gr.HTML()
            self.fork_cancel = gr.Button("Start a fresh run instead", size="sm", scale=0, min_width=220)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=520):
                with gr.Group(visible=True) as self.inputs_group:
                    with gr.Row():
                        self.dataset = gr.Dropdown(label="Teacher responses (dataset)", choices=[], scale=3,
                                                   info="the student learns from the teacher's answers to these "
                                                        "prompts (its held-out test split stays out)",
                                                   elem_id="run-dataset")
                        self.copy_from = gr.Dropdown(label="Copy settings from a run", choices=[], scale=2,
                                                     info="method, student and every setting",
                                                     elem_id="run-copy-from")
                    with gr.Row():
                        self.student_kind = gr.Radio([STUDENT_PATH, STUDENT_CKPT], value=STUDENT_PATH,
                                                     label="Student model from", scale=2)
                        self.student = gr.Dropdown(label="Student: local folder or hub id", choices=[],
                                                   allow_custom_value=True, scale=3, elem_id="run-student",
                                                   info="e.g. Qwen/Qwen2.5-0.5B-Instruct or /models/my-student")
                        self.student_ckpt = gr.Dropdown(label="Student: checkpoint", choices=[], visible=False,
                                                        scale=3, elem_id="run-student-ckpt")
                with gr.Row():
                    self.method = gr.Radio(list(METHODS), value=next(iter(METHODS)), label="Method",
                                           elem_id="run-method", scale=3)
                    self.name = gr.Textbox(label="Run name", placeholder="method and student", scale=1,
                                           elem_id="run-name")
                with gr.Row(equal_height=False):
                    self.preset = gr.Dropdown(label="Preset", choices=[], scale=3, elem_id="run-preset",
                                              info="fills the settings below; anything you change after stays yours")
                    with gr.Column(scale=2, min_width=260):
                        self.preset_name = gr.Textbox(label="Save these settings as a preset", placeholder="name",
                                                      elem_id="run-preset-name")
                        with gr.Row():
                            self.save_preset = gr.Button("Save preset", size="sm", min_width=90,
                                                         elem_id="run-preset-save")
                            self.delete_preset = gr.Button("Delete chosen preset", size="sm", variant="stop",
                                                           min_width=90)
                self.form.build()
            with gr.Column(scale=2, min_width=380, elem_classes=["sticky-side"]):
                gr.HTML('<div class="gad-h">Before you launch</div>')
                self.checks = gr.HTML(elem_id="run-checks")
                self.estimate = gr.Markdown(elem_id="run-estimate")
                with gr.Tabs():
                    with gr.Tab("Command"):
                        self.command = gr.Code(language="shell", interactive=False, show_label=False,
                                               elem_id="run-command")
                    with gr.Tab("YAML"):
                        self.yaml = gr.Code(language="yaml", interactive=False, show_label=False, elem_id="run-yaml")
                self.launch = gr.Button("Launch run", variant="primary", size="lg", elem_id="run-launch")
                self.result = gr.HTML(elem_id="run-result")
        return self

    # --- wiring ---------------------------------------------------------------------------------
    def inputs(self) -> list:
        return [self.fork_of, self.dataset, self.student_kind, self.student, self.student_ckpt, self.method,
                self.name, *self.form.components]

    def preview_outputs(self) -> list:
        return [self.checks, self.estimate, self.command, self.yaml]

    def wire(self) -> None:
        # Many inputs: handlers take them as one {component: value} dict (Gradio passes a set so).
        ins, prev = set(self.inputs()), self.preview_outputs()
        # `change`, not `input`: Gradio 6 sends no `input` for the first edit of a box whose value came from
        # the server (a preset, a copied run, a fork), which left the previews stale after such an edit.
        gr.on([c.change for c in [self.dataset, self.student, self.student_ckpt, self.method, self.name,
                                  *self.form.components]] + [self.student_kind.change],
              self.preview, ins, prev, trigger_mode="always_last", show_progress="hidden")
        self.student_kind.change(lambda k: (gr.update(visible=k == STUDENT_PATH), gr.update(visible=k == STUDENT_CKPT)),
                                 [self.student_kind], [self.student, self.student_ckpt], show_progress="hidden")
        self.method.input(self.apply_method, [self.method], self.form.components).then(self.preview, ins, prev)
        self.preset.input(self.apply_preset, [self.preset], [self.method, *self.form.components]).then(
            self.preview, ins, prev)
        self.copy_from.input(self.copy_run, [self.copy_from],
                             [self.method, self.student_kind, self.student, *self.form.components]).then(
            self.preview, ins, prev)
        self.save_preset.click(self.save, {self.preset_name, self.method, *self.form.components},
                               [self.preset, self.result])
        self.delete_preset.click(self.delete, [self.preset], [self.preset, self.result])
        self.fork_cancel.click(self.end_fork, None, [self.fork_of, self.fork_banner, self.inputs_group, self.launch,
                                                     self.result]).then(self.preview, ins, prev)
        self.launch_event = self.launch.click(self.submit, ins, [self.result, self.launched, self.fork_of,
                                                                 self.fork_banner, self.inputs_group, self.launch])

    def load_inputs(self) -> list:
        return [self.dataset, self.student, self.student_ckpt, self.preset]

    def load_outputs(self) -> list:
        return [self.dataset, self.student, self.student_ckpt, self.preset, self.copy_from]

    # --- reading the form -----------------------------------------------------------------------
    def _values(self, data: dict) -> tuple[dict | None, int | None, dict]:
        """(fork_of, dataset id, settings) from the inputs' values."""
        values = {**self.form.values([data[c] for c in self.form.components]), **METHODS.get(data[self.method], {})}
        ckpt = data[self.student_kind] == STUDENT_CKPT
        values["student"] = (data[self.student_ckpt] if ckpt else data[self.student]) or None
        return data[self.fork_of], parse_id(data[self.dataset]), values

    # --- handlers -------------------------------------------------------------------------------
    def refresh(self, dataset, student, ckpt, preset, request: gr.Request):
        """Pickers from the database; what the user chose stays chosen while it still exists."""
        with self.ui.session(request, "runs") as (s, user):
            options = dataset_options(s)
            datasets = [(o["label"], o["id"]) for o in options]
            # Preselect a dataset that can train (the newest with teacher responses), not merely the newest.
            trainable = [o["id"] for o in options if o["with_response"]]
            students = [e.path for e in list_models(s, self.ui.ctx.settings) if e.kind == "base" and e.path]
            ckpts = [(c["label"], c["student"]) for c in checkpoint_options(s)]
            presets = [p["name"] for p in preset_service.list_presets(s, user)]
            runs = [(o["label"], o["id"]) for o in run_options(s)]

        def keep(value, choices, custom=False):
            values = [c[1] if isinstance(c, tuple) else c for c in choices]
            if value in values or (custom and value):
                return value
            return values[0] if values else None
        chosen = parse_id(dataset)
        if chosen not in {d[1] for d in datasets}:
            chosen = trainable[0] if trainable else keep(None, datasets)
        return [gr.update(choices=datasets, value=chosen),
                gr.update(choices=students, value=keep(student, students, custom=True)),
                gr.update(choices=ckpts, value=keep(ckpt, ckpts)),
                gr.update(choices=presets, value=preset if preset in presets else None),
                gr.update(choices=runs, value=None)]

    def preview(self, data: dict, request: gr.Request):
        fork_of, dataset_id, values = self._values(data)
        return self._preview(request, fork_of, dataset_id, values)

    def _preview(self, request, fork_of, dataset_id, values):
        found = config_checks(values)
        with self.ui.session(request, "runs") as (s, _):
            refused, fork_note = [], []
            if not found["errors"]:
                # The launch's own validation (runs.check_launch), so "consistent" means the launch accepts.
                try:
                    run_service.check_launch(s, self.ui.ctx.settings, values, dataset_id=dataset_id, fork_of=fork_of)
                except StudioError as err:
                    refused.append(err.message)
            parent = run_service.get_run(s, fork_of["run_id"]) if fork_of else None
            if parent is not None:  # the command a fork amounts to: the parent's student and data
                values = {**values, "student": parent.config.get("student")}
                if not refused and not found["errors"]:
                    fork_note = [self._fork_adds(parent, fork_of["step"], values)]
            est = estimate(s, values, dataset_id) if not found["errors"] else {"memory": [], "time": []}
            data = parent.config.get("data") if parent is not None else \
                f"data/datasets/dataset-{dataset_id}.jsonl" if dataset_id else "prompts.jsonl"
        checks = (alarms([{"kind": "invalid", "message": e} for e in found["errors"]]
                         + [{"kind": "the launch would be refused", "message": e} for e in refused])
                  + notes([n for n in fork_note + found["notes"] if n]))
        if not found["errors"] and not refused:
            checks = '<div class="okbox">Settings are consistent: the launch accepts them.</div>' + checks
        md = ""
        if est["memory"] or est["time"]:
            md = ("**GPU memory** · " + " · ".join(est["memory"][:1]) + "\n\n"
                  + "".join(f"<span class='gad-hint'>{line}</span><br>" for line in est["memory"][1:])
                  + "\n\n**Time** · " + " · ".join(est["time"]))
        command, yaml_text = command_preview({**values, "data": data}, output="runs/my-run")
        return checks, md, command, yaml_text

    @staticmethod
    def _fork_adds(parent, step: int, values: dict) -> str:
        """What the fork will train after its starting point, in words."""
        overrides = {k: v for k, v in values.items() if k not in ("student", "data")}
        try:
            plan = run_views.fork_plan(parent, step, overrides)
        except Exception:  # the checks above already said what is wrong
            return ""
        stages = " + ".join(f"{n} {stage}" for stage, n in plan["plan"].items() if n)
        return (f"This fork starts after step {step} and trains {plan['added']} more step(s), to step "
                f"{plan['total']} (plan: {stages}).")

    def apply_method(self, method):
        """Picking an ablation sets its warmup switches; the other settings stay as they are."""
        overrides = METHODS.get(method, {})
        return [gr.update(value=overrides[n]) if n in overrides else gr.skip() for n in self.form.names]

    @shows_errors
    def apply_preset(self, name, request: gr.Request):
        if not name:
            return [gr.skip()] * (1 + len(self.form.names))
        with self.ui.session(request, "presets") as (s, user):
            values = preset_service.preset_values(s, user, name)
        return [gr.update(value=method_label(values)) if "method" in values else gr.skip(),
                *self.form.updates(values)]

    @shows_errors
    def copy_run(self, run_id, request: gr.Request):
        run_id = parse_id(run_id)
        if run_id is None:
            return [gr.skip()] * (3 + len(self.form.names))
        with self.ui.session(request, "runs") as (s, _):
            config = dict(run_service.get_run(s, run_id).config)
        return [gr.update(value=method_label(config)), gr.update(value=STUDENT_PATH),
                gr.update(value=config.get("student")), *self.form.updates(config)]

    @shows_errors
    def save(self, data: dict, request: gr.Request):
        values = {**self.form.values([data[c] for c in self.form.components]), **METHODS.get(data[self.method], {})}
        with self.ui.session(request, "presets") as (s, user):
            row = preset_service.save_preset(s, user, data[self.preset_name], values)
            s.commit()
            names = [p["name"] for p in preset_service.list_presets(s, user)]
            saved = row.name
        return gr.update(choices=names, value=saved), f'<div class="okbox">Preset “{esc(saved)}” saved.</div>'

    @shows_errors
    def delete(self, name, request: gr.Request):
        if not name:
            raise InvalidInput("choose one of your presets to delete", field="name")
        with self.ui.session(request, "presets") as (s, user):
            preset_service.delete_preset(s, user, name)
            s.commit()
            names = [p["name"] for p in preset_service.list_presets(s, user)]
        return gr.update(choices=names, value=None), f'<div class="okbox">Preset “{esc(name)}” deleted.</div>'

    # --- forking --------------------------------------------------------------------------------
    @shows_errors
    def start_fork(self, run_id, step, request: gr.Request) -> list:
        """Fill the form with a run's settings to fork it from checkpoint `step` (default: its newest).
        Called from the run page."""
        run_id = parse_id(run_id)
        if run_id is None:
            raise InvalidInput("open a run first")
        with self.ui.session(request, "runs") as (s, _):
            run = run_service.get_run(s, run_id)
            config, name = dict(run.config), run.name
            steps = [c.step for c in run.checkpoints]
        if not steps:
            raise InvalidInput(f"run {run_id} has no checkpoint to fork from yet")
        step = max(steps) if step is None else int(step)
        with self.ui.session(request, "runs") as (s, _):
            # A finished run planned no step after its last checkpoint: the form starts with steps that
            # continue training, so a fork launched as it is does something.
            try:
                plan = run_views.fork_plan(run_service.get_run(s, run_id), step)
            except Exception:
                plan = None
        continues = ""
        if plan is not None and plan["steps"] != config.get("steps"):
            config["steps"] = plan["steps"]
            continues = (f' The parent’s plan ends at step {plan["total"]}: <b>steps</b> is set to {plan["steps"]} so '
                         f'the fork continues training; “Before you launch” says how many steps it adds.')
        banner = (f'<div class="note"><b>Forking run #{run_id} “{esc(name)}” from its checkpoint at step {step}.</b> '
                  f'The fork starts from those weights and the parent’s data; edit any setting below.{continues}</div>')
        return [{"run_id": run_id, "step": step}, gr.update(visible=True), banner, gr.update(visible=False),
                gr.update(value=method_label(config)), gr.update(value=f"{name} (fork @{step})"),
                gr.update(value="Launch fork"), "", *self.form.updates(config)]

    def fork_outputs(self) -> list:
        return [self.fork_of, self.fork_banner, self.fork_text, self.inputs_group, self.method, self.name,
                self.launch, self.result, *self.form.components]

    def end_fork(self):
        return None, gr.update(visible=False), gr.update(visible=True), gr.update(value="Launch run"), ""

    # --- launch ---------------------------------------------------------------------------------
    def submit(self, data: dict, request: gr.Request):
        """Launch; a refusal stays next to the button in the server's words (a toast fades, and an
        error raised here would mark every output with a bare "Error")."""
        try:
            return self._submit(data, request)
        except StudioError as err:
            message = error_box(f"Not launched: {err.message}")
            return message, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()

    def _submit(self, data: dict, request: gr.Request):
        fork_of, dataset_id, values = self._values(data)
        name = data[self.name] or None
        with self.ui.session(request, "runs") as (s, user):
            if fork_of:
                run = run_service.fork_run(s, self.ui.ctx.settings, fork_of["run_id"], fork_of["step"],
                                           overrides=run_service.form_fork_overrides(values), name=name,
                                           user_id=user.id)
            else:
                if dataset_id is None:
                    raise InvalidInput("choose the dataset whose teacher responses the student learns from",
                                       field="dataset_id")
                run = run_service.submit_from_dataset(s, self.ui.ctx.settings, values, dataset_id, name=name,
                                                      user_id=user.id)
            s.commit()
            run_id, run_name = run.id, run.name
        self.ui.ctx.enqueue(JobKind.train, run_id)
        done = f'<div class="okbox">Run #{run_id} “{esc(run_name)}” queued.</div>'
        return done, run_id, None, gr.update(visible=False), gr.update(visible=True), gr.update(value="Launch run")
