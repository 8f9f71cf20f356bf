"""Settings: code defaults, then a `.env` file, then the environment (which wins)."""
import os
import secrets
from pathlib import Path

from dotenv import dotenv_values

from panel.broker.connection import is_redis

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE = ROOT / "instance"

DEFAULTS = {
    "PANEL_HOST": "127.0.0.1",
    "PANEL_PORT": "5000",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "CELERY_RESULT_BACKEND": "",
    "CELERY_TIMEZONE": "UTC",
    "CELERY_IMPORTS": "",
    # Your own Celery project (panel/host/target.py): all unset means the embedded demo app.
    "CELERY_APP": "",
    "CELERY_WORKDIR": "",
    "CELERY_BIN": "",
    "CELERY_WORKER_ARGS": "",
    "CELERY_BEAT_ARGS": "",
    # The run log from task events (panel/runlog/from_events.py): auto = on for your own project.
    "RUN_EVENTS": "auto",
    "EVENT_QUEUE_MAX_LENGTH": "100000",
    "EVENT_QUEUE_MAX_AGE_S": "86400",
    "EVENT_QUEUE_EXPIRES_S": "604800",
    "WORKER_CONCURRENCY": "2",
    "WORKER_POOL": "prefork",
    "WORKER_QUEUES": "celery",
    "WORKER_LOGLEVEL": "info",
    "WORKER_NODENAME": "worker@%h",
    "WORKER_MAX_TASKS_PER_CHILD": "0",  # 0: a pool process lives on; N: it is replaced after N tasks
    "STOP_GRACE_S": "10",
    "START_TIMEOUT_S": "30",
    "BEAT_MAX_INTERVAL_S": "2",
    "CONTROL_LOCK_WAIT_S": "60",
    "RECORD_RUNS": "1",
    "WATCHDOG": "",  # "worker", "beat" or "worker,beat": switched on at start-up (the page can switch too)
    "WATCHDOG_INTERVAL_S": "1",
    "WATCHDOG_STABLE_S": "10",
    "WATCHDOG_MAX_FAILURES": "3",
    "WATCHDOG_BACKOFF_S": "2",
    "WATCHDOG_BACKOFF_MAX_S": "60",
    "WATCHDOG_LOCK_WAIT_S": "5",
    "POISON_AFTER_DEATHS": "2",  # worker deaths holding the same message before it is quarantined
    "PANEL_AUTH": "on",
    "PANEL_ALLOWED_HOSTS": "",  # with PANEL_AUTH=off: host names served besides localhost, 127.0.0.1 and [::1]
    "PANEL_SECURE_COOKIES": "",
    # Login throttling (panel/security/lockout.py): a lock per account and address, one per address, and an
    # account-wide slowdown (a doubling delay up to LOGIN_SLOW_MAX_DELAY_S) that never locks the account.
    "LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS": "5",
    "LOGIN_MAX_FAILURES_PER_ADDRESS": "20",
    "LOGIN_SLOW_AFTER_FAILURES_PER_ACCOUNT": "10",
    "LOGIN_SLOW_MAX_DELAY_S": "60",
    "LOGIN_WINDOW_S": "900",
    "ALERT_WEBHOOK_URL": "",
    "ALERT_WEBHOOK_TIMEOUT_S": "5",
    "ALERT_SMTP_HOST": "",
    "ALERT_SMTP_PORT": "25",
    "ALERT_SMTP_USER": "",
    "ALERT_SMTP_PASSWORD": "",
    "ALERT_SMTP_TLS": "",
    "ALERT_SMTP_TIMEOUT_S": "10",
    "ALERT_EMAIL_FROM": "",
    "ALERT_EMAIL_TO": "",
    "ALERT_MIN_INTERVAL_S": "300",
    "ALERT_BEAT_MISS_MARGIN_S": "120",
    "ALERT_FAILURES_THRESHOLD": "10",
    "ALERT_FAILURES_WINDOW_S": "600",
    "ALERT_CHECK_INTERVAL_S": "10",
    # Limits on what the panel accepts (issue 19): a request body (413 past it), a worker's pool size.
    "MAX_CONTENT_LENGTH": str(1024 * 1024),
    "WORKER_POOL_MAX": "32",
    # A run sent later waits unacknowledged in its worker; Redis gives it to another after its visibility timeout
    # (1 h) and RabbitMQ closes the channel after its consumer_timeout (30 min): keep a countdown or eta below both.
    "SEND_LATER_MAX_S": "1500",
    "BULK_MAX_RUNS": "10000",  # runs one bulk action may touch; a larger set is refused with how to narrow it
}


def read_env(env_file=None):
    """Merge `.env` under the process environment; the environment wins."""
    path = Path(env_file) if env_file else ROOT / ".env"
    merged = {k: v for k, v in dotenv_values(path).items() if v is not None} if path.is_file() else {}
    merged.update(os.environ)
    if "CELERY_BROKER_URL" not in merged and merged.get("BROKER_URL"):
        merged["CELERY_BROKER_URL"] = merged["BROKER_URL"]
    return merged


def instance_path(env):
    """The folder for this panel's database, logs, pid files and locks."""
    return Path(env.get("PANEL_INSTANCE_PATH") or DEFAULT_INSTANCE).resolve()


def _secret_key(folder):
    """A secret kept in the instance folder so sessions survive restarts."""
    key_file = folder / "secret_key"
    if key_file.is_file():
        return key_file.read_text().strip()
    key = secrets.token_hex(32)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def default_result_backend(broker, database):
    """Results go to the broker when it is Redis; on any other broker (RabbitMQ keeps no results) to the panel's
    own database, through Celery's SQLAlchemy backend, so the pages and the command-line tools can read them."""
    return broker if is_redis(broker) else f"db+{database}"


def load_settings(env_file=None):
    """All settings as a flat dict of Flask config keys."""
    env = read_env(env_file)
    folder = instance_path(env)
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    (folder / "run").mkdir(parents=True, exist_ok=True)
    values = {key: env.get(key, default) for key, default in DEFAULTS.items()}
    database = env.get("DATABASE_URL") or f"sqlite:///{folder / 'panel.db'}"
    values.update(
        INSTANCE_PATH=str(folder),
        SECRET_KEY=env.get("SECRET_KEY") or _secret_key(folder),
        SQLALCHEMY_DATABASE_URI=database,
        CELERY_RESULT_BACKEND=values["CELERY_RESULT_BACKEND"] or default_result_backend(values["CELERY_BROKER_URL"],
                                                                                        database),
    )
    for key in ("PANEL_PORT", "WORKER_CONCURRENCY", "WORKER_MAX_TASKS_PER_CHILD", "STOP_GRACE_S", "START_TIMEOUT_S",
                "BEAT_MAX_INTERVAL_S", "CONTROL_LOCK_WAIT_S", "LOGIN_WINDOW_S",
                "LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS", "LOGIN_MAX_FAILURES_PER_ADDRESS",
                "LOGIN_SLOW_AFTER_FAILURES_PER_ACCOUNT", "LOGIN_SLOW_MAX_DELAY_S", "WATCHDOG_INTERVAL_S",
                "WATCHDOG_STABLE_S", "WATCHDOG_MAX_FAILURES", "WATCHDOG_BACKOFF_S", "WATCHDOG_BACKOFF_MAX_S",
                "WATCHDOG_LOCK_WAIT_S", "POISON_AFTER_DEATHS",
                "ALERT_WEBHOOK_TIMEOUT_S", "ALERT_SMTP_PORT", "ALERT_SMTP_TIMEOUT_S", "ALERT_MIN_INTERVAL_S",
                "ALERT_BEAT_MISS_MARGIN_S", "ALERT_FAILURES_THRESHOLD", "ALERT_FAILURES_WINDOW_S",
                "ALERT_CHECK_INTERVAL_S", "EVENT_QUEUE_MAX_LENGTH", "EVENT_QUEUE_MAX_AGE_S",
                "EVENT_QUEUE_EXPIRES_S", "MAX_CONTENT_LENGTH", "WORKER_POOL_MAX", "SEND_LATER_MAX_S",
                "BULK_MAX_RUNS"):
        values[key] = float(values[key]) if key.endswith("_S") else int(values[key])
    values["RECORD_RUNS"] = str(values["RECORD_RUNS"]).lower() not in ("0", "false", "no", "off")
    values["PANEL_SECURE_COOKIES"] = str(values["PANEL_SECURE_COOKIES"]).lower() in ("1", "true", "yes", "on")
    return values
