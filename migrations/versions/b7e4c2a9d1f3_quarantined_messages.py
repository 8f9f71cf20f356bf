"""quarantined messages (poison messages a worker died on)

Revision ID: b7e4c2a9d1f3
Revises: 9121550f89b0
Create Date: 2026-11-30 15:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'b7e4c2a9d1f3'
down_revision = '9121550f89b0'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('quarantined_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('celery_task_id', sa.String(length=255), nullable=False),
    sa.Column('task_name', sa.String(length=200), nullable=False),
    sa.Column('queue', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('deaths', sa.Integer(), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('envelope', sa.JSON(), nullable=True),
    sa.Column('first_seen', sa.DateTime(), nullable=False),
    sa.Column('last_seen', sa.DateTime(), nullable=False),
    sa.Column('quarantined_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('celery_task_id')
    )


def downgrade():
    op.drop_table('quarantined_messages')
