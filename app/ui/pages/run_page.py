"""One run, live: status, stage, progress, ETA and the alarms (a discriminator that wins too easily,
student length drifting from the teacher's, KL blowing up, a silent worker); the curves (EMA over
the raw line, min/max bands where long runs are downsampled, stage boundaries); the rollout viewer
(prompt, teacher response, the N student responses with D scores and advantages, best and worst
marked) with a step slider; checkpoints with evaluate / chat / fork; the settings; the worker log.
Cancel, resume, fork with edited settings.

While the run is queued or running the page follows it by server push: one generator event per open
page waits on app/services/events.py (a cheap version read of the run's row, on the server) and yields
an update over Gradio's stream when the run moved, redrawing the curves only when a new step arrived.
Opening another run, changing the chart's settings or closing the page ends it; a closed or reloaded
browser reopens the page from the database."""

from __future__ import annotations

import asyncio
import uuid

import gradio as gr

from app.enums import JobKind, RunStatus
from app.errors import InvalidInput
from app.services import events, lifecycle, run_views
from app.services import runs as run_service
from app.services.model_ids import checkpoint_student, model_id
from app.services.run_form import is_changed, stored_config_warnings
from app.ui.common import LIVE, Followers, Ui, parse_id, shows_errors
from app.ui.widgets import charts
from app.ui.widgets.html import alarms, badge, cards, duration, esc, num, pbar, table, when
from gad.training.metric_catalog import M

# Points per metric and panel, from the panel's drawing width: two panels side by side on a 1,280-pixel
# screen leave each about 500 pixels of plot, and a line needs no more than a point every 2.5 pixels (the
# min/max band of each bucket keeps one-step spikes visible).
PANEL_PLOT_PX, PX_PER_POINT = 500, 2.5
MAX_POINTS = int(PANEL_PLOT_PX / PX_PER_POINT)
# A followed run is redrawn at least this often without a change (relative times, a silent worker's alarm);
# this also bounds how long a generator outlives a page that was closed (it stops at its next yield).
REFRESH_SECONDS = 20.0


def follow_token() -> str:
    """A fresh value for RunPage.following: each one starts a new follower and ends the previous one."""
    return uuid.uuid4().hex


def load_series(session, run_id: int, names) -> dict[str, list[dict]]:
    return {n: run_views.metric_series(session, run_id, n, max_points=MAX_POINTS) for n in names}


def prompt_html(text: str | None) -> str:
    """The prompt as its messages (role, then text) when its chat template is known, else as it is."""
    messages = run_views.prompt_messages(text)
    if not messages:
        return esc(text)
    return "".join(f'<div><span class="gad-hint"><b>{esc(m["role"])}</b></span> {esc(m["content"])}</div>'
                   for m in messages)


def rollout_html(samples: list[dict]) -> str:
    """Prompt, teacher response and the group of student responses of one step."""
    if not samples:
        return '<div class="gad-hint">No rollouts recorded at this step.</div>'
    out = []
    for sample in samples:
        students = sample.get("students") or []
        scores = [st.get("score") for st in students if st.get("score") is not None]
        best = max(scores) if len(scores) > 1 else None
        worst = min(scores) if len(scores) > 1 else None
        out.append(f'<div class="lbl">prompt · step {sample["step"]} · {esc(sample.get("stage"))}</div>'
                   f'<div class="rollout-prompt">{prompt_html(sample.get("prompt"))}</div>'
                   f'<div class="lbl">teacher response</div>'
                   f'<div class="rollout-teacher">{esc(sample.get("teacher"))}</div>'
                   f'<div class="lbl">{len(students)} student responses '
                   f'(green: highest D score, red: lowest)</div><div class="rollout-grid">')
        for i, st in enumerate(students):
            score, adv = st.get("score"), st.get("advantage")
            cls = "best" if score is not None and score == best else "worst" if score is not None and score == worst \
                else ""
            mark = f'<span class="tag {cls}">{cls}</span>' if cls else ""
            sign = "+" if adv is not None and adv > 0 else ""
            out.append(f'<div class="student {cls}"><div class="meta"><span>#{i + 1}</span>{mark}'
                       f'<span>D score <b>{num(score)}</b></span><span>advantage <b>{sign}{num(adv)}</b></span>'
                       f'<span class="gad-hint">{"finished" if st.get("finished") else "cut at max length"}</span>'
                       f'</div><div class="text">{esc(st.get("text")) or "<i>(empty)</i>"}</div></div>')
        out.append("</div>")
    return "".join(out)


class RunPage:
    def __init__(self, ui: Ui):
        self.ui = ui
        self._followers = Followers()

    # --- layout ---------------------------------------------------------------------------------
    def build(self) -> RunPage:
        self.run_id = gr.State(None)
        self.last_step = gr.State(-1)
        self.ckpt = gr.State(None)  # the checkpoint chosen in the table: {id, step, model_id, student}
        with gr.Row(equal_height=False):
            self.pick = gr.Dropdown(label="Run", choices=[], scale=4, elem_id="run-pick")
            with gr.Column(scale=1, min_width=220):
                self.cancel = gr.Button("Cancel run", variant="stop", size="sm", visible=False, elem_id="run-cancel")
                self.resume = gr.Button("Resume from last checkpoint", size="sm", visible=False,
                                        elem_id="run-resume")
                self.fork = gr.Button("Fork with edited settings", size="sm", visible=False, elem_id="run-fork")
        self.header = gr.HTML(elem_id="run-header")
        with gr.Tabs(elem_id="run-tabs"):
            with gr.Tab("Curves", id="curves"):
                with gr.Row():
                    self.smoothing = gr.Slider(0, 0.99, value=0.6, step=0.01, label="Smoothing (EMA weight)",
                                               info="the thin line is the raw value; shaded: min/max of the "
                                                    "steps each point stands for", scale=2)
                    self.extra = gr.Dropdown(label="More metrics", choices=[], multiselect=True, scale=3)
                self.chart = gr.Plot(show_label=False, elem_id="run-curves")
            with gr.Tab("Rollouts", id="rollouts", elem_id="run-rollouts-tab"):
                with gr.Row(equal_height=True):
                    self.step = gr.Slider(0, 1, value=0, step=1, label="Step", elem_id="rollout-step", scale=5,
                                          info="rollouts are recorded every sample_every steps; the slider snaps "
                                               "to the nearest one")
                    self.follow = gr.Checkbox(value=True, label="Follow the newest step", scale=1,
                                              elem_id="rollout-follow")
                self.rollouts = gr.HTML(elem_id="rollouts")
            with gr.Tab("Checkpoints", id="checkpoints"):
                self.ckpts = gr.Dataframe(headers=["step", "stage", "saved", "model id (chat, /v1)"],
                                          datatype=["number", "str", "str", "str"], interactive=False,
                                          max_height=320, elem_id="run-checkpoints")
                self.ckpt_info = gr.HTML('<div class="gad-hint">Click a checkpoint, then:</div>', elem_id="ckpt-info")
                with gr.Row():
                    self.evaluate = gr.Button("Evaluate", size="sm", elem_id="ckpt-evaluate")
                    self.chat = gr.Button("Chat", size="sm", elem_id="ckpt-chat")
                    self.fork_here = gr.Button("Fork from here", size="sm", elem_id="ckpt-fork")
            with gr.Tab("Settings", id="settings"):
                self.settings = gr.HTML()
            with gr.Tab("Worker log", id="log"):
                self.log = gr.Textbox(show_label=False, lines=18, max_lines=18, autoscroll=True,
                                      elem_classes=["logtail"], elem_id="run-log")
        # A new value starts the follower (`follow_run`): set by open, act and the chart's settings.
        self.following = gr.State(None)
        return self

    def open_outputs(self) -> list:
        return [self.run_id, self.last_step, self.pick, self.header, self.cancel, self.resume, self.fork, self.chart,
                self.extra, self.step, self.rollouts, self.follow, self.ckpts, self.settings, self.log, self.following,
                self.ckpt, self.ckpt_info]

    def wire(self, remembered: gr.BrowserState) -> None:
        # No progress overlay over a dozen outputs: the page answers in well under a second.
        self.pick.input(self.open, [self.pick, self.smoothing], self.open_outputs(), show_progress="hidden").then(
            lambda v: v, [self.pick], [remembered])
        self.following.change(self.follow_run, [self.run_id, self.following, self.last_step, self.smoothing,
                                                self.extra, self.follow],
                              [self.last_step, self.header, self.cancel, self.resume, self.fork, self.chart, self.step,
                               self.rollouts, self.ckpts, self.log, self.pick], **LIVE)
        # The follower read these when it started: a new one takes the new values.
        gr.on([self.smoothing.release, self.extra.change, self.follow.change],
              lambda current: follow_token() if current else gr.skip(), [self.following], [self.following],
              show_progress="hidden")
        gr.on([self.smoothing.release, self.extra.change], self.redraw, [self.run_id, self.smoothing, self.extra],
              [self.chart], show_progress="hidden")
        self.step.release(self.show_step, [self.run_id, self.step], [self.step, self.rollouts, self.follow],
                          show_progress="hidden")
        # Typing in the number box and the arrow keys send `input` only (no release): show the nearest
        # recorded step at once, without snapping the box under the user's fingers (release snaps).
        self.step.input(self.peek_step, [self.run_id, self.step], [self.rollouts, self.follow],
                        show_progress="hidden", trigger_mode="always_last")
        self.ckpts.select(self.choose_ckpt, [self.run_id], [self.ckpt, self.ckpt_info])
        for button, action in ((self.cancel, run_service.cancel_run), (self.resume, run_service.resume_run)):
            button.click(self.act, [self.run_id, gr.State(action.__name__)],
                         [self.header, self.cancel, self.resume, self.fork, self.following])

    # --- handlers -------------------------------------------------------------------------------
    def choices(self, request: gr.Request) -> list:
        with self.ui.session(request, "runs") as (s, _):
            return [(o["label"], o["id"]) for o in run_views.run_options(s)]

    @shows_errors
    def open(self, run_id, smoothing, request: gr.Request):
        run_id = parse_id(run_id)
        choices = self.choices(request)
        if run_id is None or run_id not in {c[1] for c in choices}:  # nothing remembered: the newest run
            run_id = choices[0][1] if choices else None
        if run_id is None:
            return [None, -1, gr.update(choices=[], value=None),
                    '<div class="gad-hint">No run yet: launch one on the New run page.</div>'] \
                + [gr.skip()] * (len(self.open_outputs()) - 4)
        with self.ui.session(request, "runs") as (s, _):
            run = run_service.get_run(s, run_id)
            view = run_views.run_view(s, run, self.ui.ctx.settings.heartbeat_timeout)
            names = run_views.metric_names(s, run_id)
            series = load_series(s, run_id, [n for n in names if n in charts.PANEL_METRICS])
            stages = run_views.stage_boundaries(s, run_id)
            steps = run_views.sample_steps(s, run_id)
            samples = run_views.samples_at(s, run_id, steps[-1]) if steps else []
            log = "\n".join(run_views.log_tail(run, 300))
        live = view["status"] in (RunStatus.queued, RunStatus.running)
        extra = [n for n in names if n not in charts.PANEL_METRICS]
        return [run_id, view["step"], gr.update(choices=choices, value=run_id), self._header(view),
                *self._buttons(view), charts.run_curves(series, stages, smoothing),
                gr.update(choices=extra, value=[]), self._slider(steps, steps[-1] if steps else None),
                rollout_html(samples), True, self._ckpt_rows(view), self._settings(view), log,
                follow_token() if live else None, None,
                '<div class="gad-hint">Click a checkpoint, then:</div>']

    async def follow_run(self, run_id, token, last_step, smoothing, extra, follow, request: gr.Request):
        """Push the run's updates while it is live: wait for a change on the server, then yield `poll`'s
        outputs. Ends when the run finishes, when a newer follower of this browser session starts (another
        run opened, chart settings changed) or, after a closed page, at its next yield (Gradio stops it)."""
        run_id = parse_id(run_id)
        session = request.session_hash or ""
        if run_id is None or not token:  # a finished run was opened: the previous follower stops
            self._followers.drop(session)
            return
        version = None
        with self._followers.following(session, token) as current:
            while True:
                version = await events.wait_for_change(self.ui.ctx.sessions, events.RUN, run_id, version,
                                                       REFRESH_SECONDS)
                if not current() or version is None:
                    return
                outputs, live = await asyncio.to_thread(self.poll, run_id, last_step, smoothing, extra, follow,
                                                        request)
                if not current():  # another run opened while this one was read
                    return
                last_step = outputs[0]
                yield outputs
                if not live:
                    return

    @shows_errors
    def poll(self, run_id, last_step, smoothing, extra, follow, request: gr.Request) -> tuple[list, bool]:
        """The outputs of one live update (the follower's), and whether the run is still live."""
        with self.ui.session(request, "runs") as (s, _):
            lifecycle.reconcile_now_and_then(self.ui.ctx)  # throttled; its own session, committed
            run = run_service.get_run(s, run_id)
            view = run_views.run_view(s, run, self.ui.ctx.settings.heartbeat_timeout)
            live = view["status"] in (RunStatus.queued, RunStatus.running)
            moved = view["step"] != last_step
            chart = slider = rollouts = gr.skip()
            if moved or not live:  # a finished run gets one last full redraw
                names = [n for n in run_views.metric_names(s, run_id)
                         if n in charts.PANEL_METRICS or n in (extra or [])]
                chart = charts.run_curves(load_series(s, run_id, names), run_views.stage_boundaries(s, run_id),
                                          smoothing, extra)
                steps = run_views.sample_steps(s, run_id)
                if steps and follow:  # the viewer follows the newest rollouts until the user picks a step
                    slider = gr.update(maximum=max(steps[-1], 1), value=steps[-1], interactive=True)
                    rollouts = rollout_html(run_views.samples_at(s, run_id, steps[-1]))
                elif steps:  # the range grows; the minimum stays 0 so the value the user chose stays valid
                    slider = gr.update(maximum=max(steps[-1], 1), interactive=True)
            log = "\n".join(run_views.log_tail(run, 300))
        # The run picker's labels carry statuses: refreshed once the run stops.
        pick = gr.skip() if live else gr.update(choices=self.choices(request), value=run_id)
        return [view["step"], self._header(view), *self._buttons(view), chart, slider, rollouts, self._ckpt_rows(view),
                log, pick], live

    @shows_errors
    def redraw(self, run_id, smoothing, extra, request: gr.Request):
        run_id = parse_id(run_id)
        if run_id is None:
            return gr.skip()
        with self.ui.session(request, "runs") as (s, _):
            names = [n for n in run_views.metric_names(s, run_id) if n in charts.PANEL_METRICS or n in (extra or [])]
            return charts.run_curves(load_series(s, run_id, names), run_views.stage_boundaries(s, run_id),
                                     smoothing, extra)

    @shows_errors
    def show_step(self, run_id, step, request: gr.Request):
        run_id = parse_id(run_id)
        if run_id is None:
            return gr.skip(), gr.skip(), gr.skip()
        with self.ui.session(request, "runs") as (s, _):
            steps = run_views.sample_steps(s, run_id)
            if not steps:
                return gr.skip(), rollout_html([]), gr.skip()
            nearest = min(steps, key=lambda k: (abs(k - (step or 0)), k))
            return (gr.update(value=nearest), rollout_html(run_views.samples_at(s, run_id, nearest)),
                    nearest == steps[-1])

    @shows_errors
    def peek_step(self, run_id, step, request: gr.Request = None):
        """The rollouts of the recorded step nearest `step`; the slider keeps what the user typed."""
        _, rollouts, newest = self.show_step(run_id, step, request)
        return rollouts, newest

    @shows_errors
    def choose_ckpt(self, run_id, evt: gr.SelectData, request: gr.Request):
        run_id = parse_id(run_id)
        row = evt.row_value if evt is not None else None
        if run_id is None or not row or row[0] in (None, ""):
            return None, gr.skip()
        with self.ui.session(request, "runs") as (s, _):
            run = run_service.get_run(s, run_id)
            found = next((c for c in run.checkpoints if c.step == int(row[0])), None)
            if found is None:
                raise InvalidInput(f"run {run_id} has no checkpoint at step {row[0]} any more")
            ckpt = {"id": found.id, "step": found.step, "run_id": run_id,
                    "model_id": model_id(run.id, found.step), "student": checkpoint_student(found.path)}
        return ckpt, (f'<div class="gad-hint">Checkpoint <b>{esc(ckpt["model_id"])}</b> ({esc(found.stage)}) '
                      f'selected:</div>')

    @shows_errors
    def act(self, run_id, action, request: gr.Request):
        run_id = parse_id(run_id)
        if run_id is None:
            raise InvalidInput("open a run first")
        with self.ui.session(request, "runs") as (s, _):
            getattr(run_service, action)(s, run_id)
            s.commit()
            view = run_views.run_view(s, run_service.get_run(s, run_id), self.ui.ctx.settings.heartbeat_timeout)
        if action == "resume_run":
            self.ui.ctx.enqueue(JobKind.train, run_id)  # after the commit: the worker must find it queued
        gr.Info("Cancel requested: the run stops after its current step and keeps a checkpoint."
                if view["cancel_requested"] else f"Run {run_id} is {view['status']}.")
        return [self._header(view), *self._buttons(view), follow_token()]

    # --- rendering ------------------------------------------------------------------------------
    def _buttons(self, view: dict) -> list:
        status = view["status"]
        can_cancel = status in RunStatus.cancellable() and not view.get("cancel_requested")
        return [gr.update(visible=can_cancel), gr.update(visible=status in RunStatus.resumable()),
                gr.update(visible=bool(view.get("checkpoints")))]

    @staticmethod
    def _slider(steps: list[int], value: int | None):
        if not steps:
            return gr.update(minimum=0, maximum=1, value=0, interactive=False)
        return gr.update(minimum=0, maximum=max(steps[-1], 1), value=value, interactive=True)

    @staticmethod
    def _header(v: dict) -> str:
        total = v["total_steps"]
        m = v["last_metrics"]
        parent = (f' · forked from run #{v["parent_id"]} at step {v["parent_step"]}' if v.get("parent_id") else "")
        top = (f'<div style="display:flex;gap:12px;align-items:center;flex-wrap:wrap">'
               f'<span class="gad-h">#{v["id"]} {esc(v["name"])}</span>{badge(v["status"])}'
               f'<span class="gad-hint">{esc(v["method"])} · stage {esc(v["stage"] or "–")} · attempt '
               f'{v["attempts"]}{parent}'
               + (f' · worker {esc(v.get("worker"))}' if v.get("worker") else "")
               + (f' · last heartbeat {when(v["heartbeat_at"])}' if v.get("heartbeat_at") and
                  v["status"] == RunStatus.running else "")
               + '</span></div>')
        progress = (f'<div style="display:flex;gap:10px;align-items:center;margin:6px 0">'
                    f'<div style="flex:1">{pbar(v["progress"], done=v["status"] == RunStatus.succeeded)}</div>'
                    f'<span class="gad-hint">step {v["step"]} / {total or "?"}'
                    + (f' · ETA {duration(v["eta_seconds"])}' if v.get("eta_seconds") is not None else "")
                    + (" · cancel requested" if v.get("cancel_requested") and v["status"] == RunStatus.running
                       else "") + "</span></div>")
        ratio = (m[M.STUDENT_LENGTH] / m[M.TEACHER_LENGTH]) if m.get(M.STUDENT_LENGTH) and m.get(M.TEACHER_LENGTH) \
            else None
        stats = cards([
            ("reward", num(m.get(M.REWARD_MEAN))),
            ("D accuracy", f'{100 * m[M.DISC_ACCURACY]:.0f}%' if m.get(M.DISC_ACCURACY) is not None else "–"),
            ("D loss", num(m.get(M.DISC_LOSS))),
            ("D held-out accuracy", f'{100 * m[M.DISC_EVAL_ACCURACY]:.0f}%' if m.get(M.DISC_EVAL_ACCURACY) is not None
             else "–", f'{100 * m[M.DISC_EVAL_IDENTICAL]:.0f}% identical to teacher'
             if m.get(M.DISC_EVAL_IDENTICAL) is not None else None),
            ("KL", num(m.get("kl"))),
            ("length student / teacher", f'{num(m.get(M.STUDENT_LENGTH))} / {num(m.get(M.TEACHER_LENGTH))}',
             f"{ratio:.2f}×" if ratio else None),
            ("loss", num(m.get("loss"))),
        ])
        error = f'<div class="alarm"><b>error</b>{esc(v["error"])}</div>' if v.get("error") else ""
        return top + progress + stats + alarms(v["alarms"]) + RunPage._alarm_window(v) + error

    @staticmethod
    def _alarm_window(v: dict) -> str:
        """Say that the alarms are silent, not satisfied, on a run too short for their window."""
        from gad.training.health import WINDOW

        total = v["total_steps"]
        if not total or total >= WINDOW or v["alarms"]:
            return ""
        return (f'<div class="gad-hint">The alarms (discriminator too strong, length drift, KL) look at the last '
                f'{WINDOW} steps: this run plans {total}, so they cannot fire.</div>')

    @staticmethod
    def _ckpt_rows(view: dict) -> list[list]:
        rows = [[c["step"], c["stage"] or "–", when(c["created_at"]), c["model_id"]]
                for c in reversed(view.get("checkpoints") or [])]
        return rows or [[None, "no checkpoint yet", "", ""]]

    @staticmethod
    def _settings(view: dict) -> str:
        from gad.training.config import RunConfig

        config = view.get("config") or {}
        rows = []
        for name, field in RunConfig.model_fields.items():
            value = config.get(name)
            changed = not field.is_required() and is_changed(name, value)
            rows.append([f"<b>{esc(name)}</b>" if changed else esc(name), esc(value),
                         esc(field.default) if not field.is_required() else "required",
                         esc(field.description or "")])
        warnings = stored_config_warnings(config, f"run {view.get('id')}") if config else []
        note = "".join(f'<div class="note">{esc(w)}</div>' for w in warnings)
        return (note + '<div class="gad-hint">Bold: changed from the paper’s default.</div>'
                + table(["setting", "value", "default", "meaning"], rows, raw={0, 1, 2, 3}))
