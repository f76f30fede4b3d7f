"""study secrets, item leases, login attempts

Revision ID: 0004
Revises: 0003

`studies.blind_secret`: a random per study that seeds the left/right draw (existing studies get
one; their recorded order does not change). `item_leases`: items reserved for an annotator until a
time, so a study's `annotators_per_item` holds. `login_attempts`: failed logins counted by user
name and by client address, before the password is checked.
"""
import secrets

import sqlalchemy as sa
from alembic import op

from app.db.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch_op:
        batch_op.add_column(sa.Column("blind_secret", sa.String(length=64), nullable=True))
    conn = op.get_bind()
    for (study_id,) in conn.execute(sa.text("SELECT id FROM studies")).all():
        conn.execute(sa.text("UPDATE studies SET blind_secret = :s WHERE id = :i"),
                     {"s": secrets.token_hex(32), "i": study_id})
    op.create_table(
        "item_leases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], name=op.f("fk_item_leases_study_id_studies"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["item_id"], ["study_items.id"], name=op.f("fk_item_leases_item_id_study_items"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["annotator_id"], ["users.id"], name=op.f("fk_item_leases_annotator_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_leases")),
        sa.UniqueConstraint("item_id", "annotator_id", name=op.f("uq_item_leases_item_id")),
    )
    op.create_index(op.f("ix_item_leases_study_id"), "item_leases", ["study_id"])
    op.create_table(
        "login_attempts",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", UTCDateTime(), nullable=True),
        sa.Column("prev_failed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_attempts")),
    )
    op.create_index(op.f("ix_login_attempts_last_failed_at"), "login_attempts", ["last_failed_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_login_attempts_last_failed_at"), table_name="login_attempts")
    op.drop_table("login_attempts")
    op.drop_index(op.f("ix_item_leases_study_id"), table_name="item_leases")
    op.drop_table("item_leases")
    with op.batch_alter_table("studies") as batch_op:
        batch_op.drop_column("blind_secret")
