"""What the panel found of the Celery app it runs, without importing it: the app, its Celery, the broker and
result backend, and the task types its workers register (`flask --app app celery-check`)."""
import os

from panel.broker import remote, results
from panel.cluster import project_conf
from panel.health.checks import check_broker
from panel.host import project_cli
from panel.target import Target

TAIL_CHARS = 1500


def project(target, env):
    """The app as its own celery sees it: the folder and executable exist, its Celery version, whether it loads."""
    facts = {"app": target.app, "workdir": target.workdir, "celery_bin": target.celery_bin,
             "embedded": target.embedded, "workdir_exists": os.path.isdir(target.workdir)}
    if not facts["workdir_exists"]:
        return dict(facts, celery_version=None, loads=False, error=f"no such folder: {target.workdir}")
    ok, out = project_cli.run(target, env, "--version")
    facts["celery_version"] = out.splitlines()[0] if ok and out else None
    if not ok:
        return dict(facts, loads=False, error=f"{target.celery_bin} --version failed: {out[-TAIL_CHARS:]}")
    ok, out = project_conf.report(target, env)
    return dict(facts, loads=ok, error=None if ok else out[-TAIL_CHARS:])


def check_backend(celery, url=None):
    """The result backend: its kind, reachable (with latency), what the panel cannot do with it or what to set."""
    return results.check(celery, url)


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
    facts = {"project": project(target, env), "broker": broker,
             "backend": check_backend(celery, config["CELERY_RESULT_BACKEND"]),
             "workers": task_types(celery) if broker["ok"] else {}}
    facts["settings"] = settings(config, target, celery, env, broker["ok"])
    return facts


def settings(config, target, celery, env, broker_ok):
    """The project's real settings (its workers', else its `celery report`) and each one that blinds the panel."""
    return project_conf.summary(project_conf.read(target, celery, env, ask_workers=broker_ok), config)
