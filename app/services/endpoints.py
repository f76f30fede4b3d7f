"""Teacher/judge endpoints: create, list, delete, test; and turn one into a gad Endpoint.

The API key is write-only: stored Fernet-encrypted (or only the name of the environment variable
that holds it), never returned by any route, view, log line or error message.
"""

from __future__ import annotations

import re
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Endpoint as EndpointRow
from app.errors import Conflict, InvalidInput, NotFound
from app.security import KeyUnreadable, decrypt_secret, encrypt_secret
from app.settings import Settings
from gad.api_client import ENDPOINT_PARAM_FIELDS as PARAM_FIELDS  # sampling, limits, prices: gad's one list
from gad.api_client import Endpoint

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,119}$")


def create_endpoint(session: Session, settings: Settings, *, name: str, base_url: str, model: str,
                    api_key: str | None = None, key_env_var: str | None = None, **params) -> EndpointRow:
    if api_key and key_env_var:
        raise InvalidInput("give either the API key (stored encrypted) or the name of its environment variable, "
                           "not both", field="api_key")
    if key_env_var and not ENV_NAME.match(key_env_var):
        # Most likely the key itself pasted into the wrong box: say so without echoing it.
        raise InvalidInput("key_env_var must be the *name* of an environment variable (like OPENAI_API_KEY); "
                           "the value given is not a valid name. To store the key itself, use api_key",
                           field="key_env_var")
    if not re.match(r"^https?://[^\s/]+", base_url or ""):
        raise InvalidInput("base_url must be an http(s) URL, e.g. https://api.openai.com/v1", field="base_url")
    unknown = set(params) - set(PARAM_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown endpoint parameter(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    if session.scalar(select(EndpointRow.id).where(EndpointRow.name == name)) is not None:
        raise Conflict(f"an endpoint named {name!r} exists already", field="name")
    params = {k: v for k, v in params.items() if v is not None}
    try:
        Endpoint(base_url=base_url, model=model, api_key_env=None, **params)  # validates the parameters
    except ValueError as err:
        raise InvalidInput(f"endpoint parameters: {err}") from None
    row = EndpointRow(name=name, base_url=base_url.rstrip("/"), model=model, key_env_var=key_env_var,
                      key_encrypted=encrypt_secret(settings, api_key) if api_key else None, params=params)
    session.add(row)
    session.flush()
    return row


def get_endpoint(session: Session, endpoint_id: int) -> EndpointRow:
    row = session.get(EndpointRow, endpoint_id)
    if row is None:
        raise NotFound(f"no endpoint with id {endpoint_id}")
    return row


def delete_endpoint(session: Session, endpoint_id: int) -> None:
    """The endpoint goes; answers it gave stay in the cache (paid for, and keyed by content)."""
    from sqlalchemy import update

    from app.db.models import TeacherResponse

    row = get_endpoint(session, endpoint_id)
    session.execute(update(TeacherResponse).where(TeacherResponse.endpoint_id == endpoint_id).values(endpoint_id=None))
    session.delete(row)
    session.flush()


def public_view(row: EndpointRow) -> dict:
    """What the API and UI may show: everything but key material."""
    return {"id": row.id, "name": row.name, "base_url": row.base_url, "model": row.model,
            "key": "stored (encrypted)" if row.key_encrypted else (f"${row.key_env_var}" if row.key_env_var else "none"),
            "params": row.params, "created_at": row.created_at}


def to_gad(row: EndpointRow, settings: Settings) -> Endpoint:
    ep = Endpoint(base_url=row.base_url, model=row.model, api_key_env=row.key_env_var, **row.params)
    if row.key_encrypted:
        from pydantic import SecretStr

        ep = ep.model_copy(update={"api_key_value": SecretStr(decrypt_secret(settings, row.key_encrypted))})
    return ep


def list_endpoints(session: Session) -> list[EndpointRow]:
    return list(session.scalars(select(EndpointRow).order_by(EndpointRow.id)))


def test_connection(row: EndpointRow, settings: Settings, timeout: float = 15.0) -> dict:
    """One tiny chat request through the official SDK: {ok, latency_ms, answer | error}; never the key."""
    import openai

    from gad.api_client import EndpointError

    t0 = time.monotonic()
    try:
        ep = to_gad(row, settings)
        client = openai.OpenAI(base_url=ep.base_url, api_key=ep.api_key(), timeout=timeout, max_retries=0)
        reply = client.chat.completions.create(model=ep.model, max_tokens=8,
                                               messages=[{"role": "user", "content": "Say OK."}])
        answer = (reply.choices[0].message.content or "") if reply.choices else ""
        return {"ok": True, "latency_ms": round(1000 * (time.monotonic() - t0), 1), "answer": answer[:200]}
    except (EndpointError, KeyUnreadable) as err:
        return {"ok": False, "latency_ms": None, "error": str(err)}
    except openai.APIStatusError as err:
        return {"ok": False, "latency_ms": round(1000 * (time.monotonic() - t0), 1),
                "error": f"HTTP {err.status_code} from {ep.base_url}: {redact(str(err.message), ep)}"}
    except openai.APIError as err:  # connection refused, timeout, malformed answer
        return {"ok": False, "latency_ms": None, "error": f"{type(err).__name__}: {redact(str(err), ep)}"}


def redact(text: str, ep: Endpoint) -> str:
    from gad.api_client import EndpointError

    try:
        key = ep.api_key()
    except EndpointError:  # no key configured: nothing to hide
        return text
    return text.replace(key, "[redacted]") if key and len(key) > 3 else text
