"""Following a job by server push, for the pages that show a job's live panel (Evaluate, Human evaluation).

A page starts a follower by writing a new value into a `gr.State` (`follow_value`): its `.change` runs
`follow_job`, an async generator that waits on app/services/events.py (a cheap version read of the job's
row, on the server) and yields the page's outputs over Gradio's open stream when the job moved, instead
of a browser timer asking every second or two. A follower ends when its job ends (after one last
redraw), when the page starts a newer follower in the same browser session (another job or study
shown), or, after a closed page, at its next yield (Gradio stops it). The run page does the same for
runs (run_page.follow_run)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import gradio as gr

from app.services import events
from app.ui.common import Followers

# A followed job is redrawn at least this often without a change (relative times: "started 2 min ago");
# this also bounds how long a generator outlives a page that was closed (it stops at its next yield).
REFRESH_SECONDS = 20.0


def follow_value(job_id: int | None, live: bool, **extra) -> dict | None:
    """The value that starts a follower of `job_id` (a fresh token each time: a new follower replaces the
    old one), or None when there is nothing live to follow (the previous follower then stops)."""
    if job_id is None or not live:
        return None
    return {"job_id": job_id, "token": uuid.uuid4().hex, **extra}


async def follow_job(sessions, followers: Followers, following: dict | None, request: gr.Request,
                     read: Callable[[dict], tuple[list, bool]]) -> AsyncIterator[list]:
    """Yield `read(following)`'s outputs each time the followed job's row changes, while `read` says the
    job is live (the first read, and the last one after it ended, are yielded too). `sessions`: the
    studio's session factory, for the version reads; `read` runs in a worker thread and opens its own."""
    session = request.session_hash or ""
    if not following:  # nothing live is shown any more: the previous follower stops
        followers.drop(session)
        return
    version = None
    with followers.following(session, following["token"]) as current:
        while True:
            version = await events.wait_for_change(sessions, events.JOB, following["job_id"],
                                                   version, REFRESH_SECONDS)
            if not current() or version is None:  # a newer follower, or the job was deleted
                return
            outputs, live = await asyncio.to_thread(read, following)
            if not current():  # another job was shown while this one was read
                return
            yield outputs
            if not live:
                return

