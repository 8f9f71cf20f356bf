"""text search over runs through an index made for substrings: SQLite FTS5 (trigram) kept by triggers, PostgreSQL
pg_trgm (GIN) over the searched columns joined; filled from the runs already there

Revision ID: a1c3e5f7b9d2
Revises: f7c2d4e6a8b0
Create Date: 2026-12-04 22:15:00

"""
from alembic import op


revision = 'a1c3e5f7b9d2'
down_revision = 'f7c2d4e6a8b0'
branch_labels = None
depends_on = None

COLUMNS = "celery_task_id, args, kwargs, result, error"
NEW = ", ".join(f"new.{c.strip()}" for c in COLUMNS.split(","))
OLD = ", ".join(f"old.{c.strip()}" for c in COLUMNS.split(","))
PG_TEXT = "lower(" + " || chr(31) || ".join(f"coalesce({c.strip()}::text, '')" for c in COLUMNS.split(",")) + ")"


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS run_search USING fts5({COLUMNS}, content='task_logs', "
                   "content_rowid='id', tokenize='trigram')")
        op.execute(f"CREATE TRIGGER IF NOT EXISTS task_logs_search_insert AFTER INSERT ON task_logs BEGIN "
                   f"INSERT INTO run_search(rowid, {COLUMNS}) VALUES (new.id, {NEW}); END")
        op.execute(f"CREATE TRIGGER IF NOT EXISTS task_logs_search_delete AFTER DELETE ON task_logs BEGIN "
                   f"INSERT INTO run_search(run_search, rowid, {COLUMNS}) VALUES ('delete', old.id, {OLD}); END")
        op.execute(f"CREATE TRIGGER IF NOT EXISTS task_logs_search_update AFTER UPDATE OF {COLUMNS} ON task_logs "
                   f"BEGIN INSERT INTO run_search(run_search, rowid, {COLUMNS}) VALUES ('delete', old.id, {OLD}); "
                   f"INSERT INTO run_search(rowid, {COLUMNS}) VALUES (new.id, {NEW}); END")
        op.execute("INSERT INTO run_search(run_search) VALUES ('rebuild')")  # the runs already there
    elif op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(f"CREATE INDEX IF NOT EXISTS ix_task_logs_search ON task_logs USING gin (({PG_TEXT}) "
                   "gin_trgm_ops)")


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS task_logs_search_{trigger}")
        op.execute("DROP TABLE IF EXISTS run_search")
    elif op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_task_logs_search")
