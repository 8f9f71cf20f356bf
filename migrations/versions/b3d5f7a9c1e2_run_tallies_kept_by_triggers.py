"""runs by state and the duration histogram kept as runs are written: run_tallies, appended to by triggers on
task_logs and folded by the panel; counted once here from the runs already there

Revision ID: b3d5f7a9c1e2
Revises: a1c3e5f7b9d2
Create Date: 2026-12-05 19:00:00

"""
import sqlalchemy as sa
from alembic import op

from panel.runlog import tally

revision = 'b3d5f7a9c1e2'
down_revision = 'a1c3e5f7b9d2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'run_tallies',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('family', sa.String(length=20), nullable=False),
        sa.Column('label', sa.String(length=20), nullable=False),
        sa.Column('n', sa.BigInteger(), nullable=False),
        sa.Column('seconds', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    tally.install(op.get_bind(), recount=True)


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name in ("insert", "delete", "state", "runtime"):
            op.execute(f"DROP TRIGGER IF EXISTS task_logs_tally_{name}")
    elif bind.dialect.name == "postgresql":
        for name in ("insert", "update", "delete", "truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS task_logs_tally_{name} ON task_logs")
        for function in tally.PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.drop_table('run_tallies')
