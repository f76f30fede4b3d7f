"""Teacher/judge endpoints: create, list, delete, test; and turn one into a gad Endpoint.

The API key is write-only: stored Fernet-encrypted (or only the name of the environment variable
that holds it), never returned by any route, view, log line or error message. So are credentials in
a base URL (http://user:password@host/v1): the row keeps the URL masked, followed by the whole URL
sealed (encrypted); views show the masked part.

What an endpoint may reach for: a key's environment variable must match GAD_ENDPOINT_KEY_ENVS (and
is never one of the studio's own secrets), so an endpoint pointed at an outside server cannot be made
to send GAD_SECRET_KEY or DATABASE_URL there; and link-local addresses (169.254.0.0/16, where cloud
metadata services answer, and fe80::/10) are refused unless GAD_ENDPOINT_ALLOW_LINK_LOCAL is set.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import socket
import time
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Endpoint as EndpointRow
from app.errors import Conflict, InvalidInput
from app.security import KeyUnreadable, decrypt_secret, encrypt_secret
from app.services.lookup import one
from app.settings import Settings
from gad.llm.api_client import ENDPOINT_PARAM_FIELDS as PARAM_FIELDS  # sampling, limits, prices: gad's one list
from gad.llm.api_client import Endpoint, mask_url

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,119}$")
# Never readable by an endpoint, whatever GAD_ENDPOINT_KEY_ENVS says: the studio's own secrets.
STUDIO_SECRETS = ("GAD_SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL")
SEALED = " sealed:"  # stored base_url: "<masked url> sealed:<Fernet token of the whole url>"
URL_COLUMN = 500


def check_key_env(name: str, settings: Settings) -> None:
    """The variable an endpoint's key is read from must be on the allow-list (InvalidInput if not)."""
    allowed = [p.strip() for p in settings.endpoint_key_envs.split(",") if p.strip()]
    if name.upper() in STUDIO_SECRETS or name.upper().startswith("GAD_") or not any(
            fnmatch.fnmatchcase(name, p) for p in allowed):
        raise InvalidInput(f"key_env_var {name!r} is not allowed: an endpoint may read its key only from a variable "
                           f"matching GAD_ENDPOINT_KEY_ENVS ({', '.join(allowed) or 'none'}), and never from the "
                           f"studio's own settings ({', '.join(STUDIO_SECRETS)}, GAD_*)", field="key_env_var")


def check_destination(base_url: str, settings: Settings) -> None:
    """Refuse a host that is, or resolves to, a link-local address (cloud metadata services live at
    169.254.169.254) unless GAD_ENDPOINT_ALLOW_LINK_LOCAL is set. A host that does not resolve passes:
    the request itself will say it cannot connect."""
    if settings.endpoint_allow_link_local:
        return
    host = urlsplit(base_url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except (OSError, UnicodeError):
        return
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        mapped = getattr(ip, "ipv4_mapped", None)
        if ip.is_link_local or (mapped is not None and mapped.is_link_local):
            raise InvalidInput(f"base_url {mask_url(base_url)} points at a link-local address ({ip}: where cloud "
                               f"metadata services answer); refused. An admin who means it sets "
                               f"GAD_ENDPOINT_ALLOW_LINK_LOCAL=true", field="base_url")


def _store_url(base_url: str, settings: Settings) -> str:
    """What the base_url column holds: the URL itself, or with credentials, masked + sealed."""
    if mask_url(base_url) == base_url:
        return base_url
    stored = mask_url(base_url) + SEALED + encrypt_secret(settings, base_url).decode()
    if len(stored) > URL_COLUMN:
        raise InvalidInput("base_url: a URL with credentials is stored encrypted, and this one is too long for that "
                           "(keep it under about 250 characters, or pass the credential as the API key)",
                           field="base_url")
    return stored


def _real_url(stored: str, settings: Settings) -> str:
    if SEALED not in stored:
        return stored
    return decrypt_secret(settings, stored.split(SEALED, 1)[1].encode())


def shown_url(stored: str) -> str:
    """The base URL fit to show or log: credentials masked."""
    return mask_url(stored.split(SEALED, 1)[0])


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
    if not re.match(r"^https?://[^\s/]+", base_url or "") or re.search(r"\s", base_url):
        raise InvalidInput("base_url must be an http(s) URL, e.g. https://api.openai.com/v1", field="base_url")
    if key_env_var:
        check_key_env(key_env_var, settings)
    check_destination(base_url, settings)
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
    row = EndpointRow(name=name, base_url=_store_url(base_url.rstrip("/"), settings), model=model,
                      key_env_var=key_env_var,
                      key_encrypted=encrypt_secret(settings, api_key) if api_key else None, params=params)
    session.add(row)
    session.flush()
    return row


def get_endpoint(session: Session, endpoint_id: int) -> EndpointRow:
    return one(session, EndpointRow, endpoint_id, "endpoint")


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
    return {"id": row.id, "name": row.name, "base_url": shown_url(row.base_url), "model": row.model,
            "key": "stored (encrypted)" if row.key_encrypted else (f"${row.key_env_var}" if row.key_env_var
                                                                   else "none"),
            "params": row.params, "created_at": row.created_at}


def to_gad(row: EndpointRow, settings: Settings) -> Endpoint:
    """The endpoint to call; checked again here (rows saved before the checks, or settings since changed)."""
    if row.key_env_var:
        check_key_env(row.key_env_var, settings)
    url = _real_url(row.base_url, settings)
    check_destination(url, settings)
    ep = Endpoint(base_url=url, model=row.model, api_key_env=row.key_env_var, **row.params)
    if row.key_encrypted:
        from pydantic import SecretStr

        ep = ep.model_copy(update={"api_key_value": SecretStr(decrypt_secret(settings, row.key_encrypted))})
    return ep


def list_endpoints(session: Session) -> list[EndpointRow]:
    return list(session.scalars(select(EndpointRow).order_by(EndpointRow.id)))


def test_connection(row: EndpointRow, settings: Settings, timeout: float = 15.0) -> dict:
    """One tiny chat request through the official SDK: {ok, latency_ms, answer | error}; never the key."""
    import openai

    from gad.llm.api_client import EndpointError

    t0 = time.monotonic()
    shown = shown_url(row.base_url)
    try:
        ep = to_gad(row, settings)
        client = openai.OpenAI(base_url=ep.base_url, api_key=ep.api_key(), timeout=timeout, max_retries=0)
        reply = client.chat.completions.create(model=ep.model, max_tokens=8,
                                               messages=[{"role": "user", "content": "Say OK."}])
        answer = (reply.choices[0].message.content or "") if reply.choices else ""
        return {"ok": True, "latency_ms": round(1000 * (time.monotonic() - t0), 1), "answer": answer[:200]}
    except (EndpointError, InvalidInput) as err:  # KeyUnreadable is a Conflict: below
        return {"ok": False, "latency_ms": None, "error": mask_url(getattr(err, "message", None) or str(err))}
    except KeyUnreadable as err:
        return {"ok": False, "latency_ms": None, "error": err.message}
    except openai.APIStatusError as err:
        return {"ok": False, "latency_ms": round(1000 * (time.monotonic() - t0), 1),
                "error": f"HTTP {err.status_code} from {shown}: {redact(str(err.message), ep)}"}
    except openai.APIError as err:  # connection refused, timeout, malformed answer
        return {"ok": False, "latency_ms": None, "error": f"{type(err).__name__}: {redact(str(err), ep)}"}


def redact(text: str, ep: Endpoint) -> str:
    from gad.llm.api_client import EndpointError

    text = mask_url(text)
    try:
        key = ep.api_key()
    except EndpointError:  # no key configured: nothing to hide
        return text
    return text.replace(key, "[redacted]") if key and len(key) > 3 else text
