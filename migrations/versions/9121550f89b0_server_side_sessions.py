"""server-side sessions: the cookie names a row that logout, disable, role and password changes delete

Revision ID: 9121550f89b0
Revises: 5c1d2e3f4a5b
Create Date: 2026-11-30 15:30:00

Sessions opened before this revision carried the user id in the cookie and name no row: those browsers log in
once more.
"""
from alembic import op
import sqlalchemy as sa


revision = '9121550f89b0'
down_revision = '5c1d2e3f4a5b'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('panel_sessions',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('user_agent', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id_hash')
    )
    with op.batch_alter_table('panel_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_panel_sessions_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_panel_sessions_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('panel_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_panel_sessions_user_id'))
        batch_op.drop_index(batch_op.f('ix_panel_sessions_expires_at'))
    op.drop_table('panel_sessions')
