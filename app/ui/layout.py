"""The studio app at /ui/: one tab per page (the header above it, who is logged in and log out, is written
into the page by the server: header_html), built by the
page modules in app/ui/pages; this module only lays the tabs out and wires the ways between pages
(a click in the runs list opens the run, a launched run opens its page, a checkpoint goes to
Evaluate, Chat or a fork).

Every page rebuilds from the database when it is shown; the browser remembers only which tab, run
and dataset were open (localStorage), so a reload or a new window lands where the user was."""

from __future__ import annotations

import functools

import gradio as gr

from app.ui.common import Ui, shows_errors
from app.ui.pages.admin import AdminPage
from app.ui.pages.chat import ChatPage
from app.ui.pages.compare import ComparePage
from app.ui.pages.datasets import DatasetsPage
from app.ui.pages.evaluate import EvaluatePage
from app.ui.pages.new_run import NewRunPage
from app.ui.pages.run_page import RunPage
from app.ui.pages.runs import RunsList
from app.ui.pages.studies import StudiesPage
from app.ui.widgets.html import esc

TABS = ["datasets", "new-run", "runs", "evaluate", "studies", "chat", "admin"]
# Loads and navigation read the database only; they must not queue behind a slow click.
FAST = dict(concurrency_limit=None, show_progress="hidden")


def header_html(name: str, role: str) -> str:
    """The studio's header bar; the server writes it into the page (app/ui/__init__.py), ahead of Gradio."""
    return (f'<div class="gad-header"><div class="gad-brand">GAD Studio <small>black-box distillation with '
            f'adversarial training</small></div><div class="gad-user">{esc(name)}<span class="role">{esc(role)}'
            f'</span><a href="/annotate/" target="_blank">Annotate</a><a href="/docs" target="_blank">API</a>'
            f'<a href="/logout">Log out</a></div></div>')


def build(ui: Ui):
    datasets, new_run, runs, run_page = DatasetsPage(ui), NewRunPage(ui), RunsList(ui), RunPage(ui)
    compare, evaluate, studies, chat, admin = ComparePage(ui), EvaluatePage(ui), StudiesPage(ui), ChatPage(ui), \
        AdminPage(ui)
    with gr.Blocks(title="GAD Studio", fill_width=True) as blocks:
        tab_memory = gr.BrowserState(None, storage_key="gad-studio-tab")
        run_memory = gr.BrowserState(None, storage_key="gad-studio-run")
        dataset_memory = gr.BrowserState(None, storage_key="gad-studio-dataset")
        nav_run = gr.State(None)  # a run to open, handed from one page to the run page
        with gr.Tabs(elem_id="main-tabs") as tabs:
            with gr.Tab("Datasets", id="datasets", elem_id="tab-datasets") as t_datasets:
                datasets.build()
            with gr.Tab("New run", id="new-run", elem_id="tab-new-run") as t_new:
                new_run.build()
            with gr.Tab("Runs", id="runs", elem_id="tab-runs") as t_runs:
                with gr.Tabs(elem_id="runs-tabs") as run_tabs:
                    with gr.Tab("All runs", id="list", elem_id="tab-runs-list") as t_list:
                        runs.build()
                    with gr.Tab("Run", id="run", elem_id="tab-run") as t_run:
                        run_page.build()
                    with gr.Tab("Compare", id="compare", elem_id="tab-compare") as t_compare:
                        compare.build()
            with gr.Tab("Evaluate", id="evaluate", elem_id="tab-evaluate") as t_eval:
                evaluate.build()
            with gr.Tab("Human evaluation", id="studies", elem_id="tab-studies") as t_studies:
                studies.build()
            with gr.Tab("Chat", id="chat", elem_id="tab-chat") as t_chat:
                chat.build()
            with gr.Tab("Endpoints & users", id="admin", elem_id="tab-admin") as t_admin:
                admin.build()

        for page in (new_run, runs, compare, evaluate, studies, chat, admin):
            page.wire()
        datasets.wire(dataset_memory)
        run_page.wire(run_memory)

        # --- page load: every page from the database, then back where the user was ------------------
        # The first page: the tab the user was on and every page's pickers in ONE event (a dozen
        # concurrent load events made each other wait, and the hidden run page
        # drew a long run's curves nobody saw). The runs list and the run page load when their tab opens.
        blocks.load(lambda t: gr.Tabs(selected=t) if t in TABS else gr.skip(), [tab_memory], [tabs], **FAST)
        blocks.load(lambda d: gr.update(value=d), [dataset_memory], [datasets.pick], **FAST).then(
            datasets.open, [datasets.pick], datasets.detail_outputs(), **FAST)
        # Each page's refresh keeps what the user chose (its inputs) while that still exists.
        pickers = [(datasets.refresh_list, datasets.load_inputs(), datasets.load_outputs()),
                   (new_run.refresh, new_run.load_inputs(), new_run.load_outputs()),
                   (evaluate.refresh, evaluate.load_inputs(), evaluate.load_outputs()),
                   (studies.refresh, studies.load_inputs(), studies.load_outputs()),
                   (chat.refresh, chat.load_inputs(), chat.load_outputs()),
                   (admin.refresh, admin.load_inputs(), admin.load_outputs())]
        blocks.load(all_of(pickers), {c for _, ins, _ in pickers for c in ins},
                          [c for _, _, outs in pickers for c in outs], **FAST).then(
            new_run.preview, set(new_run.inputs()), new_run.preview_outputs(), **FAST)

        def runs_if_open(tab, run, smoothing, statuses, method, query, request: gr.Request):
            if tab != "runs":
                return [gr.skip()] * (len(run_page.open_outputs()) + len(runs.outputs()))
            return [*run_page.open(run, smoothing, request), *runs.refresh(statuses, method, query, request)]

        blocks.load(runs_if_open, [tab_memory, run_memory, run_page.smoothing, runs.status, runs.method, runs.query],
                    run_page.open_outputs() + runs.outputs(), **FAST)

        # --- tabs: remember the open one, and show fresh data when one opens ---------------------------
        # A tab's refresh only renews the pickers' choices: its answer may arrive after the user has
        # already chosen something, and must not undo that choice.
        for tab, tab_id in ((t_datasets, "datasets"), (t_new, "new-run"), (t_runs, "runs"), (t_eval, "evaluate"),
                            (t_studies, "studies"), (t_chat, "chat"), (t_admin, "admin")):
            tab.select(lambda t=tab_id: t, None, [tab_memory], **FAST)
        for tab, page in ((t_new, new_run), (t_eval, evaluate), (t_studies, studies), (t_chat, chat)):
            tab.select(choices_only(page.refresh, page.load_outputs()), page.load_inputs(), page.load_outputs(),
                       **FAST)
        t_datasets.select(choices_only(datasets.refresh_list, datasets.load_outputs()), datasets.load_inputs(),
                          datasets.load_outputs(), **FAST)
        for tab in (t_runs, t_list):
            tab.select(runs.refresh, [runs.status, runs.method, runs.query], runs.outputs(), **FAST)

        def open_if_closed(run_id, remembered, smoothing, request: gr.Request):
            """The run page loads when first shown (not with the first page)."""
            if run_id is not None:
                return [gr.skip()] * len(run_page.open_outputs())
            return run_page.open(remembered, smoothing, request)

        for tab in (t_runs, t_run):
            tab.select(open_if_closed, [run_page.run_id, run_memory, run_page.smoothing], run_page.open_outputs(),
                       **FAST)
        t_compare.select(compare.refresh, None, [compare.runs], **FAST)

        # --- ways between pages ------------------------------------------------------------------
        def open_run(target):
            """Chain after an event that put a run id in nav_run: show the Runs tab on that run's page."""
            target.then(lambda r: (gr.Tabs(selected="runs"), gr.Tabs(selected="run"), r), [nav_run],
                        [tabs, run_tabs, run_memory], **FAST).then(
                run_page.open, [nav_run, run_page.smoothing], run_page.open_outputs(), **FAST)

        @shows_errors
        def clicked_run(ids, evt: gr.SelectData):
            row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            return ids[row] if ids and row is not None and row < len(ids) else None

        open_run(runs.table.select(clicked_run, [runs.ids], [nav_run], **FAST))
        # A launch sets `launched` only when it succeeded (a refusal is shown on the form and changes nothing).
        open_run(new_run.launched.change(lambda r: r if r is not None else gr.skip(), [new_run.launched], [nav_run],
                                         **FAST))

        def fork_newest(run_id, request: gr.Request):
            return [gr.Tabs(selected="new-run")] + new_run.start_fork(run_id, None, request)

        to_form = [tabs] + new_run.fork_outputs()
        # The form's values change without an input event: the checks and command follow explicitly.
        preview = (new_run.preview, set(new_run.inputs()), new_run.preview_outputs())
        run_page.fork.click(fork_newest, [run_page.run_id], to_form).success(*preview, **FAST)
        run_page.fork_here.click(_from_ckpt(lambda c, request: [gr.Tabs(selected="new-run")]
                                            + new_run.start_fork(c["run_id"], c["step"], request)),
                                 [run_page.ckpt], to_form).success(*preview, **FAST)
        @shows_errors
        def to_evaluate(ckpt, judge, shown, request: gr.Request):
            return [gr.Tabs(selected="evaluate")] + evaluate.refresh(judge, shown, request, _chosen(ckpt))

        @shows_errors
        def to_chat(ckpt, first, second, third, request: gr.Request):
            return [gr.Tabs(selected="chat")] + chat.refresh(first, second, third, request, _chosen(ckpt))

        run_page.evaluate.click(to_evaluate, [run_page.ckpt, *evaluate.load_inputs()],
                                [tabs] + evaluate.load_outputs())
        run_page.chat.click(to_chat, [run_page.ckpt, *chat.load_inputs()], [tabs] + chat.load_outputs())
    return blocks


def all_of(pages: list[tuple]):
    """One handler for several pages' refreshes [(fn, inputs, outputs)]: their outputs, in order. A page
    whose refresh fails (a role that may not see it) keeps what it shows; the others still load."""
    import logging

    def handler(data: dict, request: gr.Request):  # data: {input component: value} (inputs given as a set)
        out = []
        for fn, ins, outs in pages:
            try:
                res = fn(*[data[c] for c in ins], request)
                out += list(res) if len(outs) > 1 else [res]
            except Exception:
                logging.getLogger(__name__).exception("loading %s", getattr(fn, "__qualname__", fn))
                out += [gr.skip()] * len(outs)
        return out
    return handler


def choices_only(fn, outputs: list):
    """`fn` with the values of its dropdown updates dropped (their choices kept)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        for i, component in enumerate(outputs):
            if isinstance(component, gr.Dropdown) and isinstance(out[i], dict):
                out[i] = {k: v for k, v in out[i].items() if k != "value"}
        return out
    return wrapper


def _chosen(ckpt: dict | None) -> str:
    """The model id of the checkpoint chosen in the run page's table (a message if none is)."""
    if not ckpt:
        from app.errors import InvalidInput

        raise InvalidInput("click a checkpoint in the table first")
    return ckpt["model_id"]


def _from_ckpt(fn):
    """A checkpoint button: nothing happens (but a message) until a checkpoint is chosen in the table."""
    @shows_errors
    def handler(ckpt, request: gr.Request):
        if not ckpt:
            from app.errors import InvalidInput

            raise InvalidInput("click a checkpoint in the table first")
        return fn(ckpt, request)
    return handler
