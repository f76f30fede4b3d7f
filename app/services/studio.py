"""The studio's identity: a random id kept in its database, and the data folder that belongs to it.

A data folder outlives databases (a new DATABASE_URL, a deleted studio.db). Runs are named by a
uid that is unique beyond the database, and the data folder records which studio it serves, so a
second database pointed at it is refused at start with the reason instead of mixing runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import StudioMeta
from app.errors import Conflict

MARKER = "studio.json"


def studio_id(session: Session) -> str:
    value = session.scalar(select(StudioMeta.value).where(StudioMeta.key == "studio_id"))
    if value is None:  # created by migration 0002; a database stamped by hand may lack it
        import uuid

        value = uuid.uuid4().hex
        session.add(StudioMeta(key="studio_id", value=value))
        session.flush()
    return value


def claim_data_dir(data_dir: Path, sid: str, db_label: str) -> None:
    """Record that `data_dir` serves studio `sid`, or refuse if it serves another one."""
    data_dir.mkdir(parents=True, exist_ok=True)
    marker = data_dir / MARKER
    if marker.is_file():
        owner = json.loads(marker.read_text())
        if owner.get("studio_id") != sid:
            raise Conflict(f"the data folder {data_dir.resolve()} belongs to another studio database "
                           f"({owner.get('database', 'unknown')}); this database is {db_label}. Use another "
                           f"GAD_DATA_DIR, or point DATABASE_URL back at the database it belongs to")
        return
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps({"studio_id": sid, "database": db_label}, indent=2))
    tmp.replace(marker)
