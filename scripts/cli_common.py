"""What both command-line tools share: settings, the app, the broker check, output and exit codes."""
import getpass
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


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
    lines = [f"  panel database: {record['status']} ({record['state']}), task {record['task']}",
             f"    args {record['args']} kwargs {record['kwargs']}, retries {record['retries']}, "
             f"worker {record['worker'] or '-'}"]
    if record["next_retry_at"]:
        lines.append(f"    next attempt {record['next_retry_at']}")
    if record["error"]:
        lines.append(f"    last error: {record['error'][:200]}")
    return lines
