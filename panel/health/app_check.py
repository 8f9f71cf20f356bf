"""What the panel found of the Celery app it runs, without importing it: the app, its Celery, the broker and
result backend, and the task types its workers register (`flask --app app celery-check`)."""
import os
import subprocess

from sqlalchemy import create_engine, text

from panel.broker import connection, remote
from panel.errors import BrokerDown
from panel.health.checks import check_broker
from panel.target import Target

RUN_TIMEOUT_S = 30.0   # `celery -A app report` imports the project in its own process: a Django app takes a while
TAIL_CHARS = 1500


def _run(argv, target, env):
    """(ok, output) of one command of the project's own celery, run in its folder."""
    try:
        out = subprocess.run(argv, cwd=target.workdir, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return out.returncode == 0, (out.stdout + out.stderr).strip()


def project(target, env):
    """The app as its own celery sees it: the folder and executable exist, its Celery version, whether it loads."""
    facts = {"app": target.app, "workdir": target.workdir, "celery_bin": target.celery_bin,
             "embedded": target.embedded, "workdir_exists": os.path.isdir(target.workdir)}
    if not facts["workdir_exists"]:
        return dict(facts, celery_version=None, loads=False, error=f"no such folder: {target.workdir}")
    ok, out = _run([target.celery_bin, "--version"], target, env)
    facts["celery_version"] = out.splitlines()[0] if ok and out else None
    if not ok:
        return dict(facts, loads=False, error=f"{target.celery_bin} --version failed: {out[-TAIL_CHARS:]}")
    ok, out = _run([target.celery_bin, "-A", target.app, "report"], target, env)
    return dict(facts, loads=ok, error=None if ok else out[-TAIL_CHARS:])


def check_backend(url, timeout_s=connection.CONNECT_TIMEOUT_S):
    """The result backend reachable, with latency; a backend of another kind is named, not guessed at."""
    if url.startswith(connection.REDIS_SCHEMES):
        return check_broker(url)
    if url.startswith("db+"):
        try:
            engine = create_engine(url[3:], connect_args={} if url.startswith("db+sqlite") else
                                   {"connect_timeout": int(timeout_s)})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            return {"ok": True}
        except Exception as exc:  # every driver raises its own kind
            return {"ok": False, "error": f"result backend unreachable: {type(exc).__name__}: {exc}"[:500]}
    try:
        connection.ping(url, timeout_s)
        return {"ok": True}
    except BrokerDown as exc:
        return {"ok": False, "error": str(exc).replace("broker", "result backend", 1)}


def task_types(celery, timeout_s=remote.TIMEOUT_S):
    """{worker: [task types]} from every worker that answers on the broker."""
    names = remote.answering(celery, timeout_s=timeout_s)
    replies = remote.ask(celery, names, "registered", timeout_s=timeout_s)
    return {worker: sorted(n for n in (types or []) if not n.startswith("celery."))
            for worker, types in replies.items()}


def check(config, celery, env):
    """Every fact, each on its own: one part down never hides the others."""
    target = Target.of(config)
    broker = check_broker(config["CELERY_BROKER_URL"])
    return {"project": project(target, env), "broker": broker,
            "backend": check_backend(config["CELERY_RESULT_BACKEND"]),
            "workers": task_types(celery) if broker["ok"] else {}}
