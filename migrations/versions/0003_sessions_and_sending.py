"""session epochs and sent_at

Revision ID: 0003
Revises: 0002

`users.session_epoch`: part of every session cookie; bumping it (logout, password change) ends
every session of that user at once. `runs.sent_at` / `jobs.sent_at`: when the row was handed to
the broker; a queued row without it (the broker was down at submit time) is sent again by the
workers' sweeper.
"""
import sqlalchemy as sa
from alembic import op

from app.db.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("session_epoch", sa.Integer(), nullable=False, server_default=sa.text("0")))
    for table in ("runs", "jobs"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("sent_at", UTCDateTime(), nullable=True))
    # Rows queued before this revision were sent when they were created.
    op.execute(sa.text("UPDATE runs SET sent_at = created_at"))
    op.execute(sa.text("UPDATE jobs SET sent_at = created_at"))


def downgrade() -> None:
    for table in ("jobs", "runs"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("sent_at")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("session_epoch")
