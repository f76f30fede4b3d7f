"""Chat history over HTTP (SQLite): conversations are private to their owner (admins included),
resume in order, and export as JSONL in the OpenAI messages format."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.db.models import ChatMessage, User
from app.errors import InvalidInput
from app.services import chat

ROLES = {"system", "user", "assistant"}


def _user_id(studio, name: str) -> int:
    with studio.ctx.sessions() as s:
        return s.scalar(select(User.id).where(User.name == name))


def _conversation(studio, owner: str, models: list[str], turns: list[tuple[str, str, str | None]],
                  system: str | None = None) -> int:
    """A stored conversation of `owner`: (role, content, model) turns, as the Chat page saves them."""
    with studio.ctx.sessions() as s:
        conv = chat.create_conversation(s, _user_id(studio, owner), models, turns[0][1])
        if system:
            chat.append_message(s, conv, "system", system)
        for role, content, model in turns:
            chat.append_message(s, conv, role, content, model)
        s.commit()
        return conv.id


def test_a_conversation_is_visible_to_its_owner_only(studio):
    mine = _conversation(studio, "researcher", ["base/tiny"], [("user", "hello <b>there</b>", None),
                                                             ("assistant", "hi", "base/tiny")])
    with studio.client("researcher") as me, studio.client("admin") as admin, studio.client("annotator") as ann:
        listed = me.get("/api/chat/conversations").json()
        assert mine in [c["id"] for c in listed]
        got = me.get(f"/api/chat/conversations/{mine}").json()
        assert got["title"] == "hello <b>there</b>" and got["models"] == ["base/tiny"]
        assert mine not in [c["id"] for c in admin.get("/api/chat/conversations").json()]
        assert admin.get(f"/api/chat/conversations/{mine}").status_code == 404      # not 403: no hint it exists
        assert admin.get(f"/api/chat/conversations/{mine}/export").status_code == 404
        assert admin.delete(f"/api/chat/conversations/{mine}").status_code == 404
        assert f'"id": {mine},' not in admin.get("/api/chat/conversations/export").text
        assert ann.get("/api/chat/conversations").status_code == 403                 # annotators do not chat
        assert me.get(f"/api/chat/conversations/{mine}").status_code == 200          # the admin deleted nothing
        assert me.get("/api/chat/conversations/2147483647").status_code == 404


def test_resuming_appends_in_order_and_moves_the_conversation_first(studio):
    first = _conversation(studio, "researcher", ["m"], [("user", "one", None), ("assistant", "1", "m")])
    second = _conversation(studio, "researcher", ["m"], [("user", "other", None)])
    with studio.ctx.sessions() as s:  # resume the first, as the Chat page does when it is picked
        conv = chat.get_conversation(s, _user_id(studio, "researcher"), first)
        chat.append_message(s, conv, "user", "two")
        chat.append_message(s, conv, "assistant", "2", "m")
        s.commit()
    with studio.client("researcher") as me:
        ids = [c["id"] for c in me.get("/api/chat/conversations").json()]
        assert ids.index(first) < ids.index(second)                                  # most recently active first
        got = me.get(f"/api/chat/conversations/{first}").json()
    assert [(m["role"], m["content"]) for m in got["messages"]] == [
        ("user", "one"), ("assistant", "1"), ("user", "two"), ("assistant", "2")]
    assert [m["position"] for m in got["messages"]] == [1, 2, 3, 4]
    assert got["messages"][0]["model"] is None and got["messages"][1]["model"] == "m"


def test_export_is_jsonl_in_the_openai_messages_format(studio):
    single = _conversation(studio, "researcher", ["run-1/step-4"],
                           [("user", "Ünïcode & \"quotes\"\nnewline", None), ("assistant", "ok", "run-1/step-4")],
                           system="be brief")
    pair = _conversation(studio, "researcher", ["a", "b"], [("user", "q", None), ("assistant", "from a", "a"),
                                                           ("assistant", "from b", "b")])
    with studio.client("researcher") as me:
        r = me.get("/api/chat/conversations/export")
        one = me.get(f"/api/chat/conversations/{single}/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    assert r.headers["content-disposition"].startswith("attachment;")
    records = [json.loads(line) for line in r.text.splitlines()]
    assert r.text.endswith("\n") and all(line.strip() for line in r.text.splitlines())
    for rec in records:
        assert {"id", "model", "created_at", "messages"} <= set(rec)
        assert rec["messages"] and all(set(m) == {"role", "content"} and m["role"] in ROLES for m in rec["messages"])
    by_id = {}
    for rec in records:
        by_id.setdefault(rec["id"], []).append(rec)
    assert [(rec["model"], rec["messages"]) for rec in by_id[single]] == [("run-1/step-4", [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "Ünïcode & \"quotes\"\nnewline"},
        {"role": "assistant", "content": "ok"}])]
    assert [json.loads(line) for line in one.text.splitlines()] == by_id[single]
    # Side by side: one valid conversation per model, each with its own answers only.
    assert {rec["model"]: [m["content"] for m in rec["messages"]] for rec in by_id[pair]} == {
        "a": ["q", "from a"], "b": ["q", "from b"]}


def test_deleting_removes_the_messages_too(studio):
    gone = _conversation(studio, "researcher", ["m"], [("user", "bye", None), ("assistant", "ciao", "m")])
    with studio.client("researcher") as me:
        assert me.delete(f"/api/chat/conversations/{gone}").status_code == 204
        assert me.get(f"/api/chat/conversations/{gone}").status_code == 404
    with studio.ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ChatMessage).where(ChatMessage.conversation_id == gone)) == 0


def test_a_role_outside_openai_is_refused(studio):
    with studio.ctx.sessions() as s:
        conv = chat.create_conversation(s, _user_id(studio, "researcher"), ["m"], "x")
        with pytest.raises(InvalidInput):
            chat.append_message(s, conv, "tool", "{}")
        s.rollback()
