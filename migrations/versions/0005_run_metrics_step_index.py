"""index run_metrics by (run_id, step)

Revision ID: 0005
Revises: 0004

The run detail reads every metric of a run's last steps (alarms, header cards). The primary key
(run_id, name, step) cannot serve a filter on step alone, so each view scanned all of the run's
metric rows (72,000 for a 2,400-step run of 30 metrics): 10 ms of a 17 ms view, per request.
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_run_metrics_run_step", "run_metrics", ["run_id", "step"])


def downgrade() -> None:
    op.drop_index("ix_run_metrics_run_step", table_name="run_metrics")
