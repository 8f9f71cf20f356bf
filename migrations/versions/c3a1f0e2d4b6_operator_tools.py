"""operator tools: a run's ETA, runtime (slowest first) and the run it retried; paused queues

Revision ID: c3a1f0e2d4b6
Revises: b7e4c2a9d1f3
Create Date: 2026-11-30 16:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'c3a1f0e2d4b6'
down_revision = 'b7e4c2a9d1f3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('task_logs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('eta', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('runtime_s', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('retry_of', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_task_logs_runtime', ['runtime_s', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_logs_retry_of'), ['retry_of'], unique=False)
    # Runs that ended before this revision get their runtime too, so "slowest first" sees them.
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("UPDATE task_logs SET runtime_s = EXTRACT(EPOCH FROM finished_at - started_at) "
                   "WHERE finished_at IS NOT NULL AND started_at IS NOT NULL")
    else:
        op.execute("UPDATE task_logs SET runtime_s = (julianday(finished_at) - julianday(started_at)) * 86400.0 "
                   "WHERE finished_at IS NOT NULL AND started_at IS NOT NULL")
    op.create_table('paused_queues',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('paused_at', sa.DateTime(), nullable=False),
    sa.Column('paused_by', sa.String(length=80), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade():
    op.drop_table('paused_queues')
    with op.batch_alter_table('task_logs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_logs_retry_of'))
        batch_op.drop_index('ix_task_logs_runtime')
        batch_op.drop_column('retry_of')
        batch_op.drop_column('runtime_s')
        batch_op.drop_column('eta')
