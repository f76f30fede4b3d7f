"""The dashboard in a real headless Chromium, against the real studio: `gad-studio serve` and a
`gad-studio worker` in subprocesses on loopback (SQLite file, the embedded broker), a tiny offline
student model, and the local OpenAI-compatible dev server as teacher and judge.

Chromium is Debian's package (scripts/ensure_chromium.sh installs it); Playwright's own browser
download is not reachable offline, so it is pointed at /usr/bin/chromium.

Tests that need a trained run, a dataset with teacher responses and so on get them from session
fixtures that reuse what an earlier test made through the browser, or make it through the services
when that test did not run (so any test can run alone).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

from gad.data.resources import DATASET_DIR
from tests.conftest import REPO, free_port, wait_for
from tests.studio.conftest import Worker, studio_env

CHROMIUM = os.environ.get("GAD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ADMIN, ANNOTATOR, PASSWORD = "ada", "ann", "correct-horse-1"
VIEWPORT = {"width": 1440, "height": 900}  # a laptop screen
# Loaded CI machines are slow: waits are generous, and a test never sleeps where a condition can be awaited.
LONG = 240_000


class Studio:
    """The web server and a worker over one throwaway data folder, plus a dev server as teacher and judge."""

    def __init__(self, root: Path, tiny_model: Path):
        from app.devserver import DevServer

        self.root, self.tiny_model = root, tiny_model
        self.data = root / "data"
        self.db = f"sqlite:///{self.data / 'studio.db'}"
        self.env = {**studio_env(self.data, self.db, None), "GAD_BASE_MODELS": str(tiny_model),
                    # Heartbeats every 0.5 s, but a loaded machine must not see a healthy run as lost.
                    "GAD_HEARTBEAT_TIMEOUT": "60"}
        self.devserver = DevServer()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = self.worker = self.ctx = None
        self.shared: dict = {}  # what one test made for the next ones (dataset, run, ...)

    def start(self) -> Studio:
        from app.context import make_context
        from app.settings import Settings

        self.devserver.start()
        self.ctx = make_context(Settings(GAD_DATA_DIR=self.data, DATABASE_URL=self.db,
                                         GAD_BASE_MODELS=str(self.tiny_model)))
        self._seed()
        log = (self.root / "server.log").open("ab")
        self.server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(self.port),
                                        "--log-level", "warning"], env=self.env, cwd=REPO, stdout=log, stderr=log,
                                       start_new_session=True)
        self.worker = Worker(self.env, self.root / "worker.log").start()
        wait_for(self._healthy, 120, "the web server")
        return self

    def _healthy(self) -> bool:
        if self.server.poll() is not None:
            raise AssertionError(f"the server exited: {(self.root / 'server.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def _seed(self) -> None:
        from app.db.session import session_scope
        from app.services.endpoints import create_endpoint
        from app.services.users import create_user

        with session_scope(self.ctx.sessions) as s:
            create_user(s, ADMIN, "admin", PASSWORD)
            create_user(s, ANNOTATOR, "annotator", PASSWORD)
            create_endpoint(s, self.ctx.settings, name="devserver", base_url=self.devserver.base_url,
                            model="teacher-dev", api_key="sk-test-not-a-real-key", concurrency=4)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
        self.devserver.stop()
        if self.ctx is not None:
            self.ctx.close()

    # --- reading the database, for waits and checks ----------------------------------------------
    def run_status(self, run_id: int) -> str:
        from app.db.models import Run

        with self.ctx.sessions() as s:
            return s.get(Run, run_id).status

    def endpoint_id(self) -> int:
        from sqlalchemy import select

        from app.db.models import Endpoint

        with self.ctx.sessions() as s:
            return s.scalar(select(Endpoint.id).where(Endpoint.name == "devserver"))


@pytest.fixture(scope="session")
def studio(tmp_path_factory, tiny_model):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Chromium with scripts/ensure_chromium.sh (Debian's package)")
    root = tmp_path_factory.mktemp("ui")
    s = Studio(root, tiny_model).start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    """Where screenshots go: $GAD_UI_SCREENSHOTS, else a temporary folder (printed at the end)."""
    folder = Path(os.environ["GAD_UI_SCREENSHOTS"]) if os.environ.get("GAD_UI_SCREENSHOTS") \
        else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shot(page, folder: Path, name: str, full_page: bool = True) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def login(browser, studio: Studio, user: str, path: str = "/ui/"):
    """A fresh browser context logged in through the login form; returns the page, settled on `path`."""
    context = browser.new_context(viewport=VIEWPORT, base_url=studio.url)
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(f"/login?next={path}")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{path}")
    wait_for_app(page, path)
    return page


def wait_for_app(page, path: str = "/ui/") -> None:
    """Gradio has mounted the app: the studio's tabs (its header is in the HTML, so it shows earlier), or the
    annotator app's header (written by its first load event)."""
    page.locator("#main-tabs" if path.startswith("/ui") else ".gad-header").first.wait_for()


def open_tab(page, tab_id: str) -> None:
    """Click a main tab by its id (Gradio renders tab buttons with the tab's elem_id + '-button')."""
    page.locator(f"#{tab_id}-button").click()


def choose(page, elem_id: str, option: str, timeout: float = LONG / 1000) -> None:
    """Pick the option whose label contains `option` in a Gradio dropdown. Its choices may still be on
    their way (page-load events fill them): open the list until the option is there."""
    box = page.locator(f"#{elem_id} input").first
    wanted = page.locator(f"#{elem_id} [role=option]").filter(has_text=option).first

    def listed() -> bool:
        box.click()
        try:
            wanted.wait_for(state="visible", timeout=2_000)
            return True
        except Exception:  # not listed yet: close the list and look again
            page.keyboard.press("Escape")
            return False

    try:
        wait_for(listed, timeout, f"option {option!r} in #{elem_id}", interval=0.5)
    except AssertionError as err:  # say what the list held instead, for the log of a failed run
        box.click()
        shown = page.locator(f"#{elem_id} [role=option]").all_inner_texts()
        picture = Path(os.environ.get("GAD_UI_SCREENSHOTS") or tempfile.gettempdir()) / f"choose-failed-{elem_id}.png"
        page.screenshot(path=str(picture))
        raise AssertionError(f"{err}; the box reads {box.input_value()!r} and lists {shown[:12]} "
                             f"({len(shown)} options); screenshot {picture}") from None
    wanted.click()


def settle(page) -> None:
    """Wait until Gradio has no event in flight (its pending indicators are gone)."""
    page.wait_for_function("() => !document.querySelector('.pending, .generating')", timeout=LONG)


@pytest.fixture(scope="session")
def prompts_file(tmp_path_factory) -> Path:
    """12 prompts without teacher responses (the teacher is asked for them)."""
    src = DATASET_DIR / "teacher_alpaca_gpt4_demo_999.jsonl"
    rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines()[:12]]
    out = tmp_path_factory.mktemp("upload") / "alpaca-prompts.jsonl"
    out.write_text("".join(json.dumps({"id": r["id"], "prompt": r["prompt"]}) + "\n" for r in rows), encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def dataset_id(studio, pairs_file) -> int:
    """A dataset whose prompts have teacher responses: the one the upload test collected, else imported here."""
    if "dataset_id" in studio.shared:
        return studio.shared["dataset_id"]
    from app.db.session import session_scope
    from app.services.datasets import import_dataset

    with session_scope(studio.ctx.sessions) as s:
        ds_id = import_dataset(s, pairs_file, name="pairs", test_fraction=0.25).id
    studio.shared["dataset_id"] = ds_id
    return ds_id


@pytest.fixture(scope="session")
def finished_run(studio, dataset_id) -> int:
    """A GAD run that succeeded: the one launched from the form, else submitted here through the services."""
    run_id = studio.shared.get("run_id")
    if run_id is None:
        from app.db.session import session_scope
        from app.services.presets import BUILTIN, CPU_SMOKE
        from app.services.runs import submit_from_dataset

        with session_scope(studio.ctx.sessions) as s:
            run_id = submit_from_dataset(s, studio.ctx.settings, {**BUILTIN[CPU_SMOKE], "method": "gad",
                                                                  "student": str(studio.tiny_model)},
                                         dataset_id, name="fixture run").id
        studio.ctx.enqueue("train", run_id)
        studio.shared["run_id"] = run_id
    wait_for(lambda: studio.run_status(run_id) in ("succeeded", "failed", "cancelled"), LONG / 1000, "the run")
    assert studio.run_status(run_id) == "succeeded", (studio.root / "worker.log").read_text()[-3000:]
    return run_id


def pytest_sessionfinish(session, exitstatus):
    folder = os.environ.get("GAD_UI_SCREENSHOTS")
    if folder:
        print(f"\nUI screenshots in {folder}")

