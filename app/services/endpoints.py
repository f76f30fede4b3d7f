"""Teacher/judge endpoints: create, list (never with the key), and turn into a gad Endpoint."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Endpoint as EndpointRow
from app.security import decrypt_secret, encrypt_secret
from app.settings import Settings
from gad.api_client import Endpoint

PARAM_FIELDS = ("temperature", "top_p", "max_tokens", "system_prompt", "concurrency", "rpm", "tpm", "max_retries",
                "timeout", "price_prompt", "price_completion")


def create_endpoint(session: Session, settings: Settings, *, name: str, base_url: str, model: str,
                    api_key: str | None = None, key_env_var: str | None = None, **params) -> EndpointRow:
    if api_key and key_env_var:
        raise ValueError("give either the API key (stored encrypted) or the name of its environment variable, not both")
    unknown = set(params) - set(PARAM_FIELDS)
    if unknown:
        raise ValueError(f"unknown endpoint parameter(s): {', '.join(sorted(unknown))}")
    Endpoint(base_url=base_url, model=model, api_key_env=None, **params)  # validates the parameters
    row = EndpointRow(name=name, base_url=base_url, model=model, key_env_var=key_env_var,
                      key_encrypted=encrypt_secret(settings, api_key) if api_key else None, params=params)
    session.add(row)
    session.flush()
    return row


def public_view(row: EndpointRow) -> dict:
    """What the API and UI may show: everything but key material."""
    return {"id": row.id, "name": row.name, "base_url": row.base_url, "model": row.model,
            "key": "stored (encrypted)" if row.key_encrypted else (f"${row.key_env_var}" if row.key_env_var else "none"),
            "params": row.params}


def to_gad(row: EndpointRow, settings: Settings) -> Endpoint:
    ep = Endpoint(base_url=row.base_url, model=row.model, api_key_env=row.key_env_var, **row.params)
    if row.key_encrypted:
        from pydantic import SecretStr

        ep = ep.model_copy(update={"api_key_value": SecretStr(decrypt_secret(settings, row.key_encrypted))})
    return ep


def list_endpoints(session: Session) -> list[dict]:
    return [public_view(r) for r in session.scalars(select(EndpointRow).order_by(EndpointRow.id))]
