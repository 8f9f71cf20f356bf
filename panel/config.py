"""Settings: code defaults, then a `.env` file, then the environment (which wins).

Each setting is declared once below (`Settings`), with its type and default; pydantic-settings reads it from the
environment and `.env`. A value that does not fit its type stops the start with a SettingsError naming the key.
"""
import os
import re
import secrets
from pathlib import Path
from typing import Annotated, Literal

from dotenv import dotenv_values
from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError, PydanticUseDefault
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from panel.errors import SettingsError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE = ROOT / "instance"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
SUPERVISOR_URL_FORM = r"http://[^/\s]+/?|unix:///\S+"  # a password in it is never shown
SUPERVISORS_FORM = "name=http://user:password@host:port or name=unix:///path"
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _refuse(wanted, value):
    return PydanticCustomError("setting", "expected {wanted}, got {got}", {"wanted": wanted, "got": repr(value)})


def _number(cast, wanted, kinds):
    """As cast() always read these (ints: " 5 ", "+5" and "1_000", never "", "5.0" or "five"); a bool is none."""
    def read(value):
        if isinstance(value, kinds) and not isinstance(value, bool):
            return cast(value)
        if isinstance(value, str):
            try:
                return cast(value)
            except ValueError:
                pass
        raise _refuse(wanted, value)
    return read


def _supervisor_url(value):
    """A supervisord's address; a bad one is refused without echoing it (it may hold a password)."""
    if re.fullmatch(SUPERVISOR_URL_FORM, str(value)):
        return str(value)
    raise PydanticCustomError("setting", "is not http://user:password@host:port or unix:///path")


def _to_flag(value):
    """1/0, true/false, yes/no, on/off (any case); empty means the default."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if not word:
        raise PydanticUseDefault()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise _refuse("one of 1/0, true/false, yes/no, on/off", value)


def _or_default(value):
    """Empty means the default."""
    if value == "":
        raise PydanticUseDefault()
    return value


def pairs(pattern, wants):
    """"name=value,..." (or a dict) whose entries each match `pattern`, as a dict; empty is the default. A bad entry
    is named by its place, never echoed: its URL may hold a password."""
    def parse(value):
        if value == "":
            raise PydanticUseDefault()
        entries = value.items() if isinstance(value, dict) else (
            e.partition("=")[::2] for e in str(value).split(",") if e.strip())
        found = {}
        for n, (name, text) in enumerate(entries, 1):
            if name.strip() in found or not re.fullmatch(pattern, f"{name.strip()}={text.strip()}"):
                raise PydanticCustomError("setting", "entry {n} is not {wants}", {"n": n, "wants": wants})
            found[name.strip()] = text.strip()
        return found
    return Annotated[dict[str, str], NoDecode, BeforeValidator(parse)]


Int = Annotated[int, BeforeValidator(_number(int, "an integer", int))]
Seconds = Annotated[float, BeforeValidator(_number(float, "a number of seconds", (int, float)))]
Flag = Annotated[bool, BeforeValidator(_to_flag)]
NonEmpty = Annotated[str, BeforeValidator(_or_default)]
SupervisorUrl = Annotated[str, BeforeValidator(_supervisor_url)]
# Read to derive other values (or by gunicorn.conf.py), not Flask config keys themselves.
INPUT_ONLY = dict(exclude=True)


class Settings(BaseSettings):
    """Every setting of the panel; `load_settings()` turns them into Flask config keys."""

    model_config = SettingsConfigDict(env_file=ROOT / ".env", env_file_encoding="utf-8", case_sensitive=True,
                                      extra="ignore")

    # Where the panel listens, and its own files.
    PANEL_HOST: NonEmpty = "127.0.0.1"  # address the panel listens on (make run and gunicorn)
    PANEL_PORT: Int = 5000  # port the panel listens on
    PANEL_INSTANCE_PATH: str = Field("", **INPUT_ONLY)  # database, logs, pid files, locks; empty: ./instance
    DATABASE_URL: str = Field("", **INPUT_ONLY)  # SQLAlchemy URL; empty: SQLite in the instance folder
    SECRET_KEY: str = ""  # Flask's secret; empty: one generated once into the instance folder
    # gunicorn (`make serve`, read by gunicorn.conf.py).
    # gunicorn worker processes; default: one per CPU this process may use (a gthread worker's Python uses one), >= 2
    PANEL_WORKERS: Int = Field(default_factory=lambda: max(2, len(os.sched_getaffinity(0))), **INPUT_ONLY)
    PANEL_THREADS: Int = Field(4, **INPUT_ONLY)  # threads per gunicorn worker
    PANEL_ACCESS_LOG: str = Field("", **INPUT_ONLY)  # access log path, "-" stdout, "off"; empty: logs/access.log
    # The broker and results.
    CELERY_BROKER_URL: str = "redis://127.0.0.1:6379/0"  # the broker (redis:// or amqp://)
    BROKER_URL: str = Field("", **INPUT_ONLY)  # older name, used when CELERY_BROKER_URL is not set at all
    CELERY_RESULT_BACKEND: str = ""  # empty: the broker on Redis, else the panel's database (db+...)
    RESULTS_DATABASE_URL: str = ""  # with a django-db result backend: the project's database, read only
    CELERY_TIMEZONE: str = "UTC"  # timezone of crontab schedules
    CELERY_IMPORTS: str = ""  # comma-separated modules with your own tasks, for the embedded app
    # Your own Celery project (panel/target.py): all unset means the embedded demo app.
    CELERY_APP: str = ""  # the -A value of your app
    CELERY_WORKDIR: str = ""  # your project's folder
    CELERY_BIN: str = ""  # your project's own `celery`
    CELERY_WORKER_ARGS: str = ""  # extra worker arguments, split like a shell
    CELERY_BEAT_ARGS: str = ""  # extra Beat arguments, split like a shell
    # The run log from task events (panel/runlog/from_events.py): auto = on for your own project.
    RUN_EVENTS: str = "auto"  # auto, on or off
    EVENT_QUEUE_MAX_LENGTH: Int = 100000  # events the panel's RabbitMQ event queue holds at most
    EVENT_QUEUE_MAX_AGE_S: Seconds = 86400.0  # how long an event is kept in that queue
    EVENT_QUEUE_EXPIRES_S: Seconds = 604800.0  # that queue is deleted after this long without a consumer
    # How the worker and Beat are started.
    WORKER_CONCURRENCY: Int = 2  # pool size
    WORKER_POOL: str = "prefork"  # pool type
    WORKER_QUEUES: str = "celery"  # comma-separated queues the worker consumes
    WORKER_LOGLEVEL: str = "info"  # the worker's log level
    WORKER_NODENAME: str = "worker@%h"  # the worker's node name
    WORKER_MAX_TASKS_PER_CHILD: Int = 0  # 0: a pool process lives on; N: it is replaced after N tasks
    STOP_GRACE_S: Seconds = 10.0  # a stop waits this long after SIGTERM, then SIGKILLs
    START_TIMEOUT_S: Seconds = 30.0  # a start that takes longer is a failure
    BEAT_MAX_INTERVAL_S: Seconds = 2.0  # Beat wakes at least this often (schedule edits seen within it)
    CONTROL_LOCK_WAIT_S: Seconds = 60.0  # a control action waits this long for the one before it
    STATUS_SHARE_S: Seconds = Field(1.0, ge=0)  # status routes share one process-table read this long (0: never)
    RECORD_RUNS: Flag = True  # record runs in the database
    # Watchdog and quarantine.
    WATCHDOG: str = ""  # "worker", "beat" or "worker,beat": switched on at start-up (the page can switch too)
    WATCHDOG_INTERVAL_S: Seconds = 1.0  # how often the watchdog looks
    WATCHDOG_STABLE_S: Seconds = 10.0  # a start that lives this long forgives earlier failures
    WATCHDOG_MAX_FAILURES: Int = 3  # quick failures before FATAL
    WATCHDOG_BACKOFF_S: Seconds = 2.0  # first delay before a restart, doubling
    WATCHDOG_BACKOFF_MAX_S: Seconds = 60.0  # longest delay before a restart
    WATCHDOG_LOCK_WAIT_S: Seconds = 5.0  # how long the watchdog waits for the control lock
    POISON_AFTER_DEATHS: Int = 2  # worker deaths holding the same message before it is quarantined
    # Who keeps the worker and Beat: the panel itself, or this host's supervisord (panel/host/supervised.py).
    PROCESS_MANAGER: Literal["panel", "supervisor"] = "panel"  # "panel" or "supervisor"
    SUPERVISOR_URL: SupervisorUrl = "unix:///var/run/supervisor.sock"  # with "supervisor": this host's supervisord
    SUPERVISORS: pairs(rf"[\w.-]+=({SUPERVISOR_URL_FORM})", SUPERVISORS_FORM) = {}  # the hosts pane (panel/fleet)
    SUPERVISOR_PROGRAMS: pairs(r"(worker|beat)=[^\s:]+(:[^\s:]+)?", "worker=<program> or beat=<program>") = {
        "worker": "celery-worker", "beat": "celery-beat"}  # Supervisor's names for the worker and Beat
    SUPERVISOR_TIMEOUT_S: Seconds = Field(2.0, gt=0)  # a supervisord that takes longer is unreachable
    # Security.
    PANEL_AUTH: str = "on"  # "off" drops the login (loopback only)
    PANEL_ALLOWED_HOSTS: str = ""  # with PANEL_AUTH=off: host names served besides localhost, 127.0.0.1, [::1]
    PANEL_SECURE_COOKIES: Flag = False  # the session cookie is marked Secure (behind HTTPS)
    # 0: X-Forwarded-For is never read (a client cannot forge its address); N: N reverse proxies in front name it.
    TRUSTED_PROXY_HOPS: Int = Field(0, ge=0)
    SESSION_IDLE_TIMEOUT_S: Seconds = Field(1800.0, ge=0)  # a session unused this long ends (0: never idle out)
    SESSION_LIFETIME_S: Seconds = Field(43200.0, gt=0)  # a session ends this long after its login, used or not
    # Login throttling (panel/security/lockout.py): a lock per account and address, one per address, and an
    # account-wide slowdown of the addresses that failed (never a new one) that never locks the account.
    LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS: Int = 5  # failures of one account from one address before a lock
    LOGIN_MAX_FAILURES_PER_ADDRESS: Int = 20  # failures from one address before a lock
    LOGIN_SLOW_AFTER_FAILURES_PER_ACCOUNT: Int = 10  # failures of one account before each attempt waits
    LOGIN_SLOW_MAX_DELAY_S: Seconds = 60.0  # the longest of those waits
    LOGIN_WINDOW_S: Seconds = 900.0  # the window failures are counted in
    # Alerts.
    ALERT_WEBHOOK_URL: str = ""  # POSTed a JSON alert; empty: no webhook
    ALERT_WEBHOOK_TIMEOUT_S: Seconds = 5.0  # the webhook's timeout
    ALERT_SMTP_HOST: str = ""  # mail server for e-mail alerts; empty: no e-mail
    ALERT_SMTP_PORT: Int = 25  # its port
    ALERT_SMTP_USER: str = ""  # login, when the server wants one
    ALERT_SMTP_PASSWORD: str = ""  # password of that login
    ALERT_SMTP_TLS: str = ""  # "starttls" or "ssl"; empty: neither
    ALERT_SMTP_TIMEOUT_S: Seconds = 10.0  # the mail server's timeout
    ALERT_EMAIL_FROM: str = ""  # sender; empty: celery-panel@<host>
    ALERT_EMAIL_TO: str = ""  # comma-separated recipients
    ALERT_MIN_INTERVAL_S: Seconds = 300.0  # the same alert is sent at most this often
    ALERT_BEAT_MISS_MARGIN_S: Seconds = 120.0  # a scheduled run this far overdue counts as missed by Beat
    ALERT_FAILURES_THRESHOLD: Int = 10  # failed runs within the window that raise an alert (0: never)
    ALERT_FAILURES_WINDOW_S: Seconds = 600.0  # that window
    ALERT_CHECK_INTERVAL_S: Seconds = 10.0  # how often the alert checks run
    # Limits on what the panel accepts: a request body (413 past it), a worker's pool size.
    MAX_CONTENT_LENGTH: Int = 1024 * 1024  # bytes of a request body
    WORKER_POOL_MAX: Int = 32  # the total pool size pool-grow and autoscale may reach
    # A run sent later waits unacknowledged in its worker; Redis gives it to another after its visibility timeout
    # (1 h) and RabbitMQ closes the channel after its consumer_timeout (30 min): keep a countdown or eta below both.
    SEND_LATER_MAX_S: Seconds = 1500.0  # how far ahead a countdown or eta may start a run
    BULK_MAX_RUNS: Int = 10000  # runs one bulk action may touch; a larger set is refused with how to narrow it

    @model_validator(mode="before")
    @classmethod
    def _broker_url_fallback(cls, data):
        """The older BROKER_URL stands in for CELERY_BROKER_URL when that is not set at all."""
        if isinstance(data, dict) and "CELERY_BROKER_URL" not in data and data.get("BROKER_URL"):
            data = {**data, "CELERY_BROKER_URL": data["BROKER_URL"]}
        return data

    def instance_folder(self):
        return _instance_folder(self.PANEL_INSTANCE_PATH)


def read_env(env_file=None):
    """The raw merged mapping (every key, typed or not): `.env` under the process environment, which wins."""
    path = Path(env_file) if env_file else ROOT / ".env"
    merged = {k: v for k, v in dotenv_values(path).items() if v is not None} if path.is_file() else {}
    merged.update(os.environ)
    if "CELERY_BROKER_URL" not in merged and merged.get("BROKER_URL"):
        merged["CELERY_BROKER_URL"] = merged["BROKER_URL"]
    return merged


def _problem(error):
    key = ".".join(str(part) for part in error["loc"]) or "settings"
    return key, (error["msg"] if error["type"] == "setting" else f"{error['msg']}, got {error['input']!r}")


def read_settings(env_file=None):
    """The typed settings, without side effects; a value that does not fit raises SettingsError naming its key."""
    path = Path(env_file) if env_file else ROOT / ".env"
    try:
        return Settings(_env_file=path)
    except ValidationError as exc:
        raise SettingsError([_problem(error) for error in exc.errors()]) from None


def _instance_folder(value):
    return Path(value or DEFAULT_INSTANCE).resolve()


def instance_path(env):
    """The folder for this panel's database, logs, pid files and locks."""
    return _instance_folder(env.get("PANEL_INSTANCE_PATH"))


def _secret_key(folder):
    """A secret kept in the instance folder so sessions survive restarts."""
    key_file = folder / "secret_key"
    if key_file.is_file():
        return key_file.read_text().strip()
    key = secrets.token_hex(32)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def is_redis(url):
    """A Redis broker URL (redis://, rediss:// or a unix socket)."""
    return url.startswith(REDIS_SCHEMES)


def default_result_backend(broker, database):
    """Results go to the broker when it is Redis; on any other broker (RabbitMQ keeps no results) to the panel's
    own database, through Celery's SQLAlchemy backend, so the pages and the command-line tools can read them."""
    return broker if is_redis(broker) else f"db+{database}"


def load_settings(env_file=None):
    """All settings as a flat dict of Flask config keys (ints, floats for the *_S keys, bools, strings)."""
    settings = read_settings(env_file)
    folder = settings.instance_folder()
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    (folder / "run").mkdir(parents=True, exist_ok=True)
    values = settings.model_dump()
    database = settings.DATABASE_URL or f"sqlite:///{folder / 'panel.db'}"
    values.update(
        INSTANCE_PATH=str(folder),
        SECRET_KEY=settings.SECRET_KEY or _secret_key(folder),
        SQLALCHEMY_DATABASE_URI=database,
        CELERY_RESULT_BACKEND=settings.CELERY_RESULT_BACKEND or default_result_backend(settings.CELERY_BROKER_URL,
                                                                                          database),
        # Where each came from: "panel" (set for the panel), "project" (project_first) or "default".
        BROKER_FROM="panel" if "CELERY_BROKER_URL" in settings.model_fields_set else "default",
        RESULT_BACKEND_FROM="panel" if settings.CELERY_RESULT_BACKEND else "default",
    )
    return values


def project_first(values, project):
    """The broker and result backend by precedence: the panel's own setting when it was given, else the attached
    project's (`project`: its settings, URLs the panel can use or None), else the code default; the keys to change."""
    changes = {}
    if values.get("BROKER_FROM") != "panel" and project.get("broker_url"):
        changes.update(CELERY_BROKER_URL=project["broker_url"], BROKER_FROM="project")
    if values.get("RESULT_BACKEND_FROM") != "panel":
        if project.get("result_backend"):
            changes.update(CELERY_RESULT_BACKEND=project["result_backend"], RESULT_BACKEND_FROM="project")
        elif changes:  # the default follows the broker it derives from
            changes["CELERY_RESULT_BACKEND"] = default_result_backend(changes["CELERY_BROKER_URL"],
                                                                      values["SQLALCHEMY_DATABASE_URI"])
    return changes
