"""job cost cap: the `paused` status (a job whose spend reached its max_cost_usd)

Revision ID: 0006
Revises: 0005

Runs and jobs share RunStatus and its CHECK constraint (status_valid), so both tables get the new
value. The cap itself lives in jobs.params (max_cost_usd): no column. The status lists are written
out here, not read from app.enums, so this migration keeps meaning what it meant when the enum grows.
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BEFORE = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
AFTER = BEFORE + ("paused",)


def _status_check(statuses: tuple[str, ...]) -> None:
    values = ", ".join(f"'{s}'" for s in statuses)
    for table in ("runs", "jobs"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint("status_valid", type_="check")
            batch_op.create_check_constraint("status_valid", f"status IN ({values})")


def upgrade() -> None:
    _status_check(AFTER)


def downgrade() -> None:
    # A paused job becomes interrupted: still retried (answers are cached), its cap kept in its params.
    op.execute("UPDATE jobs SET status = 'interrupted', error = 'paused by its cost cap; retry to continue' "
               "WHERE status = 'paused'")
    _status_check(BEFORE)
