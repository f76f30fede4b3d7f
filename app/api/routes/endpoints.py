"""Teacher and judge endpoints. Admins create and delete them; researchers list and test them.
The API key is write-only: no route returns it."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool

from app.api.deps import DB, Can, Ctx, IdPath
from app.api.schemas import ERRORS, ConnectionTest, EndpointCreate, EndpointOut
from app.services import endpoints as svc

router = APIRouter(prefix="/api/endpoints", tags=["endpoints"], responses=ERRORS)


@router.get("", response_model=list[EndpointOut], summary="Every endpoint (never a key)")
def list_endpoints(_: Can("endpoints.read"), session: DB) -> list[EndpointOut]:
    return [EndpointOut(**svc.public_view(r)) for r in svc.list_endpoints(session)]


@router.post("", response_model=EndpointOut, status_code=201, summary="Add an endpoint (admin)")
def create(body: EndpointCreate, ctx: Ctx, _: Can("endpoints.write"), session: DB) -> EndpointOut:
    row = svc.create_endpoint(session, ctx.settings, name=body.name, base_url=body.base_url, model=body.model,
                              api_key=body.api_key, key_env_var=body.key_env_var, **body.params)
    session.commit()
    return EndpointOut(**svc.public_view(row))


@router.get("/{endpoint_id}", response_model=EndpointOut, summary="One endpoint (never its key)")
def detail(endpoint_id: IdPath, _: Can("endpoints.read"), session: DB) -> EndpointOut:
    return EndpointOut(**svc.public_view(svc.get_endpoint(session, endpoint_id)))


@router.delete("/{endpoint_id}", status_code=204, summary="Delete an endpoint (admin)")
def delete(endpoint_id: IdPath, _: Can("endpoints.write"), session: DB) -> Response:
    svc.delete_endpoint(session, endpoint_id)
    session.commit()
    return Response(status_code=204)


@router.post("/{endpoint_id}/test", response_model=ConnectionTest, summary="Send one tiny request and report")
async def test(endpoint_id: IdPath, ctx: Ctx, _: Can("endpoints.test"), session: DB) -> ConnectionTest:
    row = svc.get_endpoint(session, endpoint_id)
    return ConnectionTest(**await run_in_threadpool(svc.test_connection, row, ctx.settings))
