"""upload jobs: the `upload` job kind (an uploaded file parsed and imported by a worker)

Revision ID: 0008
Revises: 0007

The web server only stores an upload's bytes; an `upload` job on the io queue parses it into a
dataset. jobs.kind's CHECK constraint (kind_valid) gets the new value. The kinds are written out
here, not read from app.enums, so this migration keeps meaning what it meant when the enum grows.
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BEFORE = ("collect", "evaluate", "study")
AFTER = BEFORE + ("upload",)


def _kind_check(kinds: tuple[str, ...]) -> None:
    values = ", ".join(f"'{k}'" for k in kinds)
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_constraint("kind_valid", type_="check")
        batch_op.create_check_constraint("kind_valid", f"kind IN ({values})")


def upgrade() -> None:
    _kind_check(AFTER)


def downgrade() -> None:
    # An upload job's file was parsed or refused already; its row says nothing a dataset does not.
    op.execute("DELETE FROM jobs WHERE kind = 'upload'")
    _kind_check(BEFORE)
