"""SQLite's run search in two FTS5 tables, what a run was sent with and how it ended: a run's ending indexes its
result and error only, not its id and arguments again; no column sizes kept. Filled from the runs already there.
PostgreSQL's trigram index is unchanged.

Revision ID: c9e1f3a5b7d0
Revises: b3d5f7a9c1e2
Create Date: 2026-12-05 22:40:00

"""
from alembic import op

from panel.database import SQLITE_SEARCH_DDL, SQLITE_SEARCH_TABLES

revision = 'c9e1f3a5b7d0'
down_revision = 'b3d5f7a9c1e2'
branch_labels = None
depends_on = None

BEFORE = "celery_task_id, args, kwargs, result, error"  # a1c3e5f7b9d2's one table
OLD, NEW = (", ".join(f"{side}.{c.strip()}" for c in BEFORE.split(",")) for side in ("old", "new"))


def _drop_search():
    for trigger in ("search", "search_end"):
        for change in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS task_logs_{trigger}_{change}")
    for name in SQLITE_SEARCH_TABLES:
        op.execute(f"DROP TABLE IF EXISTS {name}")


def upgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    _drop_search()
    for statement in SQLITE_SEARCH_DDL:
        op.execute(statement)
    for name in SQLITE_SEARCH_TABLES:  # the runs already there
        op.execute(f"INSERT INTO {name}({name}) VALUES ('rebuild')")


def downgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    _drop_search()
    op.execute(f"CREATE VIRTUAL TABLE run_search USING fts5({BEFORE}, content='task_logs', content_rowid='id', "
               "tokenize='trigram')")
    op.execute(f"CREATE TRIGGER task_logs_search_insert AFTER INSERT ON task_logs BEGIN "
               f"INSERT INTO run_search(rowid, {BEFORE}) VALUES (new.id, {NEW}); END")
    op.execute(f"CREATE TRIGGER task_logs_search_delete AFTER DELETE ON task_logs BEGIN "
               f"INSERT INTO run_search(run_search, rowid, {BEFORE}) VALUES ('delete', old.id, {OLD}); END")
    op.execute(f"CREATE TRIGGER task_logs_search_update AFTER UPDATE OF {BEFORE} ON task_logs BEGIN "
               f"INSERT INTO run_search(run_search, rowid, {BEFORE}) VALUES ('delete', old.id, {OLD}); "
               f"INSERT INTO run_search(rowid, {BEFORE}) VALUES (new.id, {NEW}); END")
    op.execute("INSERT INTO run_search(run_search) VALUES ('rebuild')")
