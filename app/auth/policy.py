"""The role policy: one function that every entry point (REST API, UI, CLI) asks.

Actions are named by resource and verb. Annotators may only work their own annotation queue;
researchers may do everything but manage users and endpoints' keys; admins may do everything.
"""

from __future__ import annotations

from app.enums import Role
from app.errors import Forbidden

RESEARCH = {"datasets", "runs", "jobs", "evaluations", "studies", "chat", "presets", "endpoints.read",
            "endpoints.test"}
ANNOTATE = {"annotate"}


def allowed(role: str, action: str) -> bool:
    """`action` is 'resource' or 'resource.verb', e.g. 'runs', 'endpoints.write', 'users', 'annotate'."""
    if role == Role.admin:
        return True
    resource = action.split(".")[0]
    if role == Role.researcher:
        return action in RESEARCH or (resource in RESEARCH and resource != "endpoints") or action in ANNOTATE
    if role == Role.annotator:
        return action in ANNOTATE
    return False


def require(user, action: str) -> None:
    if not allowed(user.role, action):
        raise Forbidden(f"your role ({user.role}) does not allow {action.replace('.', ' ')}")
