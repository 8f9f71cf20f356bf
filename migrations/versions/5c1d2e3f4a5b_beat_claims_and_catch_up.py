"""beat claims (exactly-once dispatch) and catch-up per schedule

Revision ID: 5c1d2e3f4a5b
Revises: 97359555e26b
Create Date: 2026-11-30 12:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '5c1d2e3f4a5b'
down_revision = '97359555e26b'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('scheduled_tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('catch_up', sa.String(length=4), server_default='once', nullable=False))
        batch_op.add_column(sa.Column('anchored_at', sa.DateTime(), nullable=True))
    # Existing schedules keep their clock: their due times go on from their last run (or their creation).
    op.execute("UPDATE scheduled_tasks SET anchored_at = COALESCE(last_run_at, created_at)")
    op.create_table('beat_claims',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('schedule_id', sa.Integer(), nullable=False),
    sa.Column('due_at', sa.DateTime(), nullable=False),
    sa.Column('outcome', sa.String(length=10), nullable=False),
    sa.Column('claimed_by', sa.String(length=200), nullable=False),
    sa.Column('claimed_at', sa.DateTime(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('celery_task_id', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['schedule_id'], ['scheduled_tasks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('schedule_id', 'due_at', name='uq_beat_claims_schedule_due')
    )
    with op.batch_alter_table('beat_claims', schema=None) as batch_op:
        batch_op.create_index('ix_beat_claims_sent', ['sent_at'], unique=False)


def downgrade():
    with op.batch_alter_table('beat_claims', schema=None) as batch_op:
        batch_op.drop_index('ix_beat_claims_sent')
    op.drop_table('beat_claims')
    with op.batch_alter_table('scheduled_tasks', schema=None) as batch_op:
        batch_op.drop_column('anchored_at')
        batch_op.drop_column('catch_up')
