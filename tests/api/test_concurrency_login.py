"""Login throttling under parallel guessing: every attempt is counted before its password is checked,
known and unknown user names are answered alike, and one client address is throttled across names."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import select

from tests.api.conftest import ServerThread, free_port, make_studio


@pytest.fixture
def server(tmp_path):
    app, ctx, _env, _ = make_studio(tmp_path)
    with ServerThread(app, free_port()) as srv:
        yield srv.url, ctx
    ctx.close()


def _try(url: str, name: str, password: str = "wrong password!") -> int:
    return _answer(url, name, password)[0]


def _answer(url: str, name: str, password: str = "wrong password!") -> tuple[int, str, str]:
    """(status, error kind, message without its numbers)."""
    with httpx.Client(base_url=url, timeout=120) as c:
        r = c.post("/api/auth/login", json={"username": name, "password": password})
    body = r.json()
    return r.status_code, body.get("error", ""), "".join(ch for ch in body.get("message", "") if not ch.isdigit())


def test_sixty_parallel_guesses_are_counted_before_checking_and_only_a_few_are_checked(server):
    from app.db.models import LoginAttempt

    url, ctx = server
    with ThreadPoolExecutor(60) as pool:
        codes = Counter(pool.map(lambda _: _try(url, "researcher"), range(60)))
    assert set(codes) <= {401, 429} and codes[500] == 0, codes
    assert 1 <= codes[401] <= 3, codes                          # the free tries; the rest were refused unchecked
    with ctx.sessions() as s:
        counted = s.scalar(select(LoginAttempt.failures).where(LoginAttempt.key == "name:researcher"))
    assert counted == codes[401]                                # every checked guess counted, none lost


def test_known_and_unknown_names_are_answered_alike(server):
    url, _ = server
    known = [_answer(url, "researcher") for _ in range(6)]
    unknown = [_answer(url, "nobody-by-this-name") for _ in range(6)]
    # Three free tries each, then throttled (how soon depends on how slow the machine is: the wait
    # counts from the last failure), with the same words whether the name exists or not.
    assert [a[0] for a in known[:3]] == [a[0] for a in unknown[:3]] == [401] * 3
    assert known[-1][0] == unknown[-1][0] == 429
    assert set(known) == set(unknown)


def test_one_address_guessing_many_names_is_throttled(server):
    url, _ = server
    codes = [_try(url, f"name{i}") for i in range(24)]        # one try per name: no name is throttled
    assert codes[:20] == [401] * 20 and codes[20:] == [429] * 4
