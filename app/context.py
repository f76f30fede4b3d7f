"""The studio's runtime context, built once per process by a factory: settings, engine, sessions,
the studio's identity and the task producer. Nothing here runs at import time."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import make_engine, make_sessionmaker, session_scope
from app.queue import Producer
from app.settings import Settings, get_settings


@dataclass
class StudioContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    studio_id: str
    producer: Producer = field(repr=False)

    def enqueue(self, kind: str, row_id: int) -> None:
        """Send a task for a committed row (call after the commit, never inside the transaction).

        A broker that does not answer leaves the row queued and unsent: the workers' sweeper sends it
        when the broker is back, and the caller learns it was saved but not yet sent."""
        from kombu.exceptions import KombuError

        from app.errors import BrokerUnavailable
        from app.services.sending import mark_sent

        try:
            self.producer.send(kind, row_id)
        except (KombuError, OSError) as err:
            raise BrokerUnavailable(f"saved, but the job queue ({type(err).__name__}) did not answer: it will be "
                                    f"sent when the queue is back (CELERY_BROKER_URL)") from None
        with session_scope(self.sessions) as s:
            mark_sent(s, kind, row_id)

    def close(self) -> None:
        self.producer.close()
        self.engine.dispose()


def make_context(settings: Settings | None = None, *, migrate: bool = True) -> StudioContext:
    from app.services.studio import claim_data_dir, studio_id

    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if migrate:
        from app.db.migrate import upgrade

        upgrade(settings.db_url)
    engine = make_engine(settings.db_url, threads=settings.web_threads)
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as s:
        sid = studio_id(s)
    claim_data_dir(settings.data_dir, sid, engine.url.render_as_string(hide_password=True))
    return StudioContext(settings, engine, sessions, sid, Producer(settings, sid))
