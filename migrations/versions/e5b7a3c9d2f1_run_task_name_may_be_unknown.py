"""a run's task name may be unknown: a run read back from a result backend without extended results

Revision ID: e5b7a3c9d2f1
Revises: c3a1f0e2d4b6
Create Date: 2026-12-04 15:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'e5b7a3c9d2f1'
down_revision = 'c3a1f0e2d4b6'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('task_logs', schema=None) as batch_op:
        batch_op.alter_column('task_name', existing_type=sa.String(length=200), nullable=True)
    # Rows read back before this revision carry the placeholder "unknown" for a name nobody recorded (and
    # nothing else of the run was known either: a real task of that name has its args and worker).
    op.execute("UPDATE task_logs SET task_name = NULL "
               "WHERE task_name = 'unknown' AND args IS NULL AND worker IS NULL")


def downgrade():
    op.execute("UPDATE task_logs SET task_name = 'unknown' WHERE task_name IS NULL")
    with op.batch_alter_table('task_logs', schema=None) as batch_op:
        batch_op.alter_column('task_name', existing_type=sa.String(length=200), nullable=False)
