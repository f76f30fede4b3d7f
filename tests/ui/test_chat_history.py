"""Chat history in the browser: a message to a model is saved; after a reload the conversation is listed
(its title shown as the text typed, markup included) and picking it resumes it: the history comes back
and the next message continues the same conversation."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests.conftest import wait_for
from tests.ui.conftest import LONG, PASSWORD, choose, login, open_tab, settle, shot, wait_for_app

pytestmark = pytest.mark.slow
USER = "chatty"
TYPED = 'Crêpes, how? <b>bold</b> <img src=x onerror="alert(1)">'
# One element per message (each also has a .message.<role> wrapper: counting both would count it twice).
ANSWERS = "#chat-bot-1 [data-testid='bot']"
QUESTIONS = "#chat-bot-1 [data-testid='user']"


def _send(page, text: str, answers: int) -> None:
    """Send `text` and wait until the `answers`-th answer has arrived in full (not just "…")."""
    page.locator("#chat-input textarea").fill(text)
    page.locator("#chat-input textarea").press("Enter")
    expect(page.locator(ANSWERS)).to_have_count(answers, timeout=LONG)
    expect(page.locator(ANSWERS).last).not_to_have_text(re.compile(r"^\s*(…)?\s*$"), timeout=LONG)
    settle(page)


def test_a_conversation_is_saved_listed_and_resumed(studio, browser, shots):
    from app.db.models import Conversation, User
    from app.db.session import session_scope
    from app.services.users import create_user

    with session_scope(studio.ctx.sessions) as s:
        create_user(s, USER, "researcher", PASSWORD)
    dialogs = []
    page = login(browser, studio, USER)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_tab(page, "tab-chat")
    choose(page, "chat-model-1", "base/tiny")
    page.locator("#chat-max-tokens input[type=number]").fill("16")
    page.locator("#chat-max-tokens input[type=number]").press("Enter")
    _send(page, TYPED, 1)
    expect(page.locator("#chat-history input")).to_have_value(re.compile(r"^Crêpes, how\?"), timeout=LONG)

    page.reload()
    wait_for_app(page)
    open_tab(page, "tab-chat")
    settle(page)
    expect(page.locator(QUESTIONS)).to_have_count(0)                       # a fresh page starts empty
    choose(page, "chat-history", "Crêpes, how?")                          # listed, with the text as typed
    expect(page.locator(QUESTIONS)).to_have_count(1, timeout=LONG)        # resumed: the exchange is back
    expect(page.locator(QUESTIONS).first).to_contain_text(TYPED)
    expect(page.locator(ANSWERS)).to_have_count(1)
    expect(page.locator("#chat-model-1 input")).to_have_value(re.compile(r"^base/tiny"))
    page.locator("#chat-max-tokens input[type=number]").fill("16")
    page.locator("#chat-max-tokens input[type=number]").press("Enter")
    _send(page, "And with less sugar?", 2)                                # continues the same conversation

    def stored() -> list[tuple]:
        """(models, [(role, user text or answering model)]) of each of the user's conversations."""
        with studio.ctx.sessions() as s:
            user_id = s.scalar(select(User.id).where(User.name == USER))
            return [(c.models, [(m.role, m.content if m.role == "user" else m.model) for m in c.messages])
                    for c in s.scalars(select(Conversation).where(Conversation.user_id == user_id))]

    # The exchange is saved once the answer is complete: wait for the second one's rows.
    wait_for(lambda: sum(len(msgs) for _, msgs in stored()) >= 4, LONG / 1000, "the second exchange saved")
    [(models, messages)] = stored()                                       # one conversation, continued
    assert models[0].startswith("base/tiny")
    assert messages == [("user", TYPED), ("assistant", models[0]), ("user", "And with less sugar?"),
                        ("assistant", models[0])]

    page.locator("#chat-export").click()
    link = page.locator("#chat-export-file a[href*='conversations.jsonl']").first
    link.wait_for(timeout=LONG)
    [record] = [json.loads(line) for line in page.request.get(link.get_attribute("href")).text().splitlines()]
    assert record["model"] == models[0] and [m["role"] for m in record["messages"]] == ["user", "assistant"] * 2
    assert record["messages"][0]["content"] == TYPED
    assert page.locator("#chat-bot-1 b, #chat-bot-1 img, #chat-history img").count() == 0  # markup shown as text
    shot(page, shots, "chat_history")
    assert dialogs == [], dialogs
    page.context.close()
