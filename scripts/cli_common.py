"""What both command-line tools share: settings, the app, the broker check, output and exit codes."""
import getpass
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
RUN_TABLE = "task_logs"  # the run log: a database without it is not the server's
DB_CONNECT_TIMEOUT_S = 5


def add_common(parser):
    parser.add_argument("--env-file", metavar="PATH",
                        help="settings file (default: the project's .env); the environment wins over it")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts instead of text")


def open_app(args):
    """The panel's app with these settings; exits 3 when the broker or result backend is unreachable."""
    from sqlalchemy.exc import SQLAlchemyError

    from app import create_app
    from panel.broker import connection
    from panel.errors import BrokerDown, SettingsError

    if args.env_file and not Path(args.env_file).is_file():
        print(f"no such settings file: {args.env_file}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    try:
        check_database(args.env_file)
        app = create_app(env_file=args.env_file)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except SQLAlchemyError as exc:
        print(f"database unreachable: {exc}", file=sys.stderr)
        sys.exit(EXIT_UNREACHABLE)
    logging.getLogger("panel").setLevel(logging.WARNING)
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        url = app.config[name]
        if url.startswith(("redis://", "rediss://", "amqp://", "pyamqp://")):
            try:
                connection.ping(url)
            except BrokerDown as exc:
                print(f"{name.split('_', 1)[1].lower().replace('_', ' ')} unreachable: {exc}", file=sys.stderr)
                sys.exit(EXIT_UNREACHABLE)
    return app


def database_problem(url, instance_folder):
    """Why the panel's run log cannot be read at this URL (no such database, no panel tables in it), or None.

    Read only: a SQLite file that is not there is not created, and no table is made."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = instance_folder / (parsed.database or "")  # Flask-SQLAlchemy reads a relative path from there
        if not parsed.database or not path.is_file():
            return "no such file"
        url = f"sqlite:///file:{path}?mode=ro&uri=true"
    options = {"connect_args": {"connect_timeout": DB_CONNECT_TIMEOUT_S}} if parsed.get_backend_name() in (
        "postgresql", "mysql") else {}
    engine = create_engine(url, **options)
    try:
        with engine.connect() as conn:
            return None if inspect(conn).has_table(RUN_TABLE) else f"no {RUN_TABLE} table in it"
    except Exception as exc:  # every driver raises its own kind: its first line says what
        return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    finally:
        engine.dispose()


def check_database(env_file=None):
    """Before anything opens the panel's database (and SQLite would create an empty one): is it there? Exits 3
    with one line naming the database tried and what to set when it is not."""
    from sqlalchemy.engine import make_url

    from panel.config import ROOT as PANEL_ROOT, read_settings

    settings = read_settings(env_file)
    url = settings.DATABASE_URL or f"sqlite:///{settings.instance_folder() / 'panel.db'}"
    problem = database_problem(url, settings.instance_folder())
    if problem is None:
        return
    where = env_file or PANEL_ROOT / ".env"
    source = (f"DATABASE_URL from the environment or {where}" if settings.DATABASE_URL
              else f"DATABASE_URL is not set here nor in {where}")
    print(f"cannot open the panel's database {make_url(url).render_as_string(hide_password=True)} ({problem}; "
          f"{source}): set DATABASE_URL to the server's database, or pass --env-file with the server's .env",
          file=sys.stderr)
    sys.exit(EXIT_UNREACHABLE)


def run(app, action):
    """Run an operation in the app's context; a database failure is exit 3, not a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    from panel.errors import BrokerDown
    with app.app_context():
        try:
            return action()
        except (SQLAlchemyError, BrokerDown) as exc:
            print(f"unreachable: {exc}", file=sys.stderr)
            sys.exit(EXIT_UNREACHABLE)


def who():
    """How the run log names a person acting from this shell."""
    return f"cli:{getpass.getuser()}"


def emit(args, report, lines):
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print("\n".join(lines))


def steps_text(report):
    return [f"  {'✓' if s['ok'] else '✗'} {s['step']}" for s in report["steps"]]


def record_text(record):
    if not record:
        return ["  panel database: no record"]
    args = (f"args {record['args']} kwargs {record['kwargs']}" if record["args_known"]
            else "args not recorded (the project does not set result_extended = True)")
    lines = [f"  panel database: {record['status']} ({record['state']}), task {record['task'] or 'not known'}",
             f"    {args}, retries {record['retries']}, "
             f"worker {record['worker'] or '-'}"]
    if record["next_retry_at"]:
        lines.append(f"    next attempt {record['next_retry_at']}")
    if record["error"]:
        lines.append(f"    last error: {record['error'][:200]}")
    return lines
