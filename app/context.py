"""The studio's runtime context, built once per process by a factory: settings, engine, sessions."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import make_engine, make_sessionmaker
from app.settings import Settings, get_settings


@dataclass
class StudioContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]

    def close(self) -> None:
        self.engine.dispose()


def make_context(settings: Settings | None = None, *, migrate: bool = True) -> StudioContext:
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if migrate:
        from app.db.migrate import upgrade

        upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    return StudioContext(settings, engine, make_sessionmaker(engine))
