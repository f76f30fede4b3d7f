"""auth, tokens, presets, enum checks, run uid, study settings

Adds what the web server needs: password hashes and login throttling on users, API tokens (hashes
only), saved presets, live job statistics, a unique `uid` per run (names its folder), study
settings, leak flags and both-bad votes, and the studio's identity (`studio_meta.studio_id`).
Every enum column gets a CHECK constraint generated from app.enums.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 22:47:46.127029
"""
import uuid

import sqlalchemy as sa
from alembic import op

from app.enums import JobKind, Role, RunStatus, StudyStatus, VoteChoice


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

CHECKS = [("users", "role", Role), ("runs", "status", RunStatus), ("jobs", "kind", JobKind.of_jobs()),
          ("jobs", "status", RunStatus), ("studies", "status", StudyStatus), ("votes", "choice", VoteChoice)]


def upgrade() -> None:
    op.create_table('studio_meta',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=500), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_studio_meta'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('presets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_presets_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_presets')),
    sa.UniqueConstraint('user_id', 'name', name=op.f('uq_presets_user_id'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stats', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('eta_seconds', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('created_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('started_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_jobs_created_by_users'), 'users', ['created_by'], ['id'])

    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('uid', sa.String(length=16), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_runs_uid'), ['uid'])

    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('n_items', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('annotators_per_item', sa.Integer(), nullable=False, server_default=sa.text('1')))
        batch_op.add_column(sa.Column('guidelines', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('settings', sa.JSON(), nullable=False, server_default='{}'))

    with op.batch_alter_table('study_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('leaks', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('dropped', sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('password_hash', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('failed_logins', sa.Integer(), nullable=False, server_default=sa.text('0')))
        batch_op.add_column(sa.Column('last_failed_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('votes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('both_bad', sa.Boolean(), nullable=False, server_default=sa.false()))

    # ### end Alembic commands ###
    for table, column, enum in CHECKS:
        values = ", ".join(f"'{m.value}'" for m in enum)
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_check_constraint(f"{column}_valid", f"{column} IN ({values})")
    op.execute(sa.text("INSERT INTO studio_meta (key, value) VALUES ('studio_id', :v)").bindparams(v=uuid.uuid4().hex))
    # Existing runs keep their folders: their uid stays NULL and their folder name is run-<id>.


def downgrade() -> None:
    for table, column, _ in CHECKS:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(f"{column}_valid", type_="check")
    with op.batch_alter_table('votes', schema=None) as batch_op:
        batch_op.drop_column('both_bad')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('last_failed_at')
        batch_op.drop_column('failed_logins')
        batch_op.drop_column('active')
        batch_op.drop_column('password_hash')

    with op.batch_alter_table('study_items', schema=None) as batch_op:
        batch_op.drop_column('dropped')
        batch_op.drop_column('leaks')

    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_column('settings')
        batch_op.drop_column('guidelines')
        batch_op.drop_column('annotators_per_item')
        batch_op.drop_column('n_items')

    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_runs_uid'), type_='unique')
        batch_op.drop_column('uid')

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_jobs_created_by_users'), type_='foreignkey')
        batch_op.drop_column('started_at')
        batch_op.drop_column('created_by')
        batch_op.drop_column('eta_seconds')
        batch_op.drop_column('stats')

    op.drop_table('presets')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))

    op.drop_table('api_tokens')
    op.drop_table('studio_meta')
    # ### end Alembic commands ###
