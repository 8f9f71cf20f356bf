"""the hosts pane's restart history: a host per process event, and what the panel last saw of each host's programs

Revision ID: f7c2d4e6a8b0
Revises: e5b7a3c9d2f1
Create Date: 2026-12-04 21:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'f7c2d4e6a8b0'
down_revision = 'e5b7a3c9d2f1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('process_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('host', sa.String(length=120), nullable=True))
    op.create_table(
        'followed_programs',
        sa.Column('host', sa.String(length=120), nullable=False),
        sa.Column('program', sa.String(length=20), nullable=False),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('pids', sa.JSON(), nullable=False),
        sa.Column('desired', sa.String(length=10), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('changed_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('host', 'program'),
    )


def downgrade():
    op.drop_table('followed_programs')
    with op.batch_alter_table('process_events', schema=None) as batch_op:
        batch_op.drop_column('host')
