"""Users (admin only): create, list, change role, deactivate, set a password."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import DB, Can, IdPath
from app.api.schemas import ERRORS, UserCreate, UserOut, UserUpdate
from app.services import users as svc

router = APIRouter(prefix="/api/users", tags=["users"], responses=ERRORS)
Admin = Can("users")


@router.get("", response_model=list[UserOut], summary="Every user")
def list_users(_: Admin, session: DB) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in svc.list_users(session)]


@router.post("", response_model=UserOut, status_code=201, summary="Create a user")
def create_user(body: UserCreate, _: Admin, session: DB) -> UserOut:
    user = svc.create_user(session, body.name, body.role, body.password)
    session.commit()
    return UserOut.model_validate(user)


@router.patch("/{user_id}", response_model=UserOut, summary="Change a user's role, active flag or password")
def update_user(user_id: IdPath, body: UserUpdate, admin: Admin, session: DB) -> UserOut:
    user = svc.update_user(session, user_id, role=body.role, active=body.active, actor=admin)
    if body.password is not None:
        svc.set_password(session, user, body.password)
    session.commit()
    return UserOut.model_validate(user)
