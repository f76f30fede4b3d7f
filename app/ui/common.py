"""What every page shares: the `Ui` handle (context + loaded-model cache), the logged-in user and a
database session for one event, and turning the studio's errors into messages.

Handlers follow one pattern:

    @shows_errors
    def launch(..., request: gr.Request):
        with ui.session(request, "runs") as (s, user):   # who asks, and may they (auth/policy.py)
            run = runs.submit_from_dataset(s, ...)         # a service holds the rules
            s.commit()
        ui.ctx.enqueue(JobKind.train, run.id)                    # only after the commit

A StudioError's message reaches the user as a toast (never a traceback).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import gradio as gr

from app.auth.policy import allowed, require
from app.context import StudioContext
from app.errors import InvalidInput, Unauthenticated, as_studio_error
from app.services.users import active_user

# Live views poll; they must never wait behind each other or behind a slow click (Gradio's default
# is one event of a kind at a time), and polling events stay out of the progress overlay.
LIVE = dict(concurrency_limit=None, show_progress="hidden", queue=True)


@dataclass
class Ui:
    ctx: StudioContext
    models: object  # app.services.chat.ModelCache, shared with /v1 so a model is loaded once per process

    @contextmanager
    def session(self, request: gr.Request | None, action: str | None = None) -> Iterator[tuple]:
        """(database session, user row) behind this browser request, the user checked against `action`."""
        with self.ctx.sessions() as s:
            user = user_of(s, request)
            if action is not None:
                require(user, action)
            yield s, user

    def can(self, request: gr.Request | None, action: str) -> bool:
        with self.ctx.sessions() as s:
            return allowed(user_of(s, request).role, action)


def user_of(session, request: gr.Request | None):
    """The user Gradio's auth dependency let in (it put their name on the request)."""
    name = getattr(request, "username", None) if request is not None else None
    user = active_user(session, name)
    if user is None:
        raise Unauthenticated("your session has ended; reload the page to log in again")
    return user


def shows_errors(fn):
    """Run an event handler; a studio error (or gad's input errors, mapped by app.errors.as_studio_error:
    this entry point's one mapping) becomes a toast with its message and the outputs stay as they were.
    Anything else is a bug and keeps its traceback."""
    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def agen_wrapper(*args, **kwargs):
            try:
                async for item in fn(*args, **kwargs):
                    yield item
            except Exception as err:
                raise _toast(err) from None
        return agen_wrapper

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:
                raise _toast(err) from None
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            raise _toast(err) from None
    return wrapper


def _toast(err: Exception) -> Exception:
    mapped = as_studio_error(err)
    if mapped is None:
        raise err
    return gr.Error(mapped.message, title=mapped.title.replace("_", " "))


def parse_id(choice) -> int | None:
    """Dropdowns hold ids as values; an empty choice is None."""
    if choice in (None, "", []):
        return None
    return int(choice)


def number_or_none(text, field: str, kind: type = float):
    """A text box holding an optional number: empty is None; anything else must read as `kind`."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        value = kind(text.strip() if isinstance(text, str) else text)
    except ValueError:
        raise InvalidInput(f"{field}: {text!r} is not a {'whole ' if kind is int else ''}number", field=field) from None
    return value


class Followers:
    """The one live follower (a generator pushing a view's updates) of each browser session: a newer
    follower of the same session (another run opened, filters changed) makes the older one stop."""

    def __init__(self):
        self._by_session: dict[str, str] = {}

    def drop(self, session: str) -> None:
        self._by_session.pop(session, None)

    @contextmanager
    def following(self, session: str, token: str) -> Iterator:
        """Register `token` as the session's follower; yields a check "is it still the current one?"."""
        self._by_session[session] = token
        try:
            yield lambda: self._by_session.get(session) == token
        finally:
            if self._by_session.get(session) == token:
                del self._by_session[session]
