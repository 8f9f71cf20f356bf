"""The attached project's real Celery settings, read without importing it: its running workers' `inspect conf`, else
`celery -A <app> report` run by the project's own celery; and which of them blind the panel, with the line to add."""
import ast
import re
import threading
import time

from kombu.utils.url import parse_url

from models import iso, utcnow
from panel.broker import remote
from panel.host import project_cli

MASK = "*" * 8  # what `inspect conf` and `celery report` print in place of a password
WORKERS_TTL_S = 30.0  # a worker's answer is cheap: asked again after this long
REPORT_TTL_S = 300.0  # `celery report` imports the project in a new process: run at most this often
CELERY_DEFAULTS = {"broker_url": None, "result_backend": None, "worker_send_task_events": False,
                   "task_send_sent_event": False, "result_extended": False, "task_ignore_result": False,
                   "task_track_started": False}
# Older names (and Django's CELERY_ namespace) of the same settings.
OLD_NAMES = {"celery_result_backend": "result_backend", "celery_ignore_result": "task_ignore_result",
             "celery_track_started": "task_track_started", "celery_send_events": "worker_send_task_events",
             "celeryd_send_events": "worker_send_task_events", "celery_send_task_sent_event": "task_send_sent_event"}
# setting, the value that blinds the panel, what the panel loses with it, the line to add to the project.
BLINDERS = (
    ("worker_send_task_events", False, "task events are off: the panel records no start, end, retry or worker of "
     "runs executed by a worker it did not start (the worker it starts gets -E)",
     "worker_send_task_events = True  (or start the worker with -E)"),
    ("task_send_sent_event", False, "sent events are off: a run appears only once a worker receives it, so a "
     "run still waiting in the queue is not listed", "task_send_sent_event = True"),
    ("result_extended", False, "result_extended is off: a run read back from the result backend (after a panel "
     "restart) has no task name, args, kwargs or worker, and cannot be retried", "result_extended = True"),
    ("task_ignore_result", True, "results are ignored: nothing is stored, so a run that ends while the panel is "
     "away has an unknown outcome, and no result or traceback can be read back", "task_ignore_result = False"),
    ("task_track_started", False, "task_track_started is off: the result backend never says STARTED, so a run "
     "whose start the panel missed reads queued until it ends", "task_track_started = True"),
)
FLAGS = tuple(blinder[0] for blinder in BLINDERS)
_REPORT_LINE = re.compile(r"^([A-Za-z_]\w*): (.*)$")
_lock = threading.Lock()
_answers = {}  # (target, environment, broker url) -> (expires at, answer)
_reports = {}  # (target, environment) -> (expires at, (ok, output))


def normal_name(key):
    """The Celery 4+ lowercase name of a setting given in any of its spellings."""
    name = key.lower()
    name = OLD_NAMES.get(name, name)
    if name.startswith("celery_") and name[7:] in CELERY_DEFAULTS:
        name = name[7:]
    return "broker_url" if name == "broker" else name


def wanted(conf):
    """The settings that matter to the panel, Celery's defaults filled in (conf lists only what the project set)."""
    found = {normal_name(k): v for k, v in (conf or {}).items() if isinstance(k, str)}
    return {name: found.get(name, default) for name, default in CELERY_DEFAULTS.items()}


def parse_report(text):
    """The settings `celery report` prints (one `key: repr` per line after the header) as a dict."""
    conf = {}
    for line in text.splitlines():
        match = _REPORT_LINE.match(line)
        if not match or normal_name(match[1]) not in CELERY_DEFAULTS:
            continue
        try:
            conf[match[1]] = ast.literal_eval(match[2])
        except (ValueError, SyntaxError):
            conf[match[1]] = match[2].strip("'\"")
    return conf


def _from_workers(celery, known, timeout_s):
    """{worker: its settings} of the workers that answer, -E on the command line of a local worker counted."""
    names = remote.answering(celery, known, timeout_s=timeout_s) if known else []
    names = names or remote.answering(celery, timeout_s=timeout_s)
    confs = {name: wanted(conf) for name, conf in remote.ask(celery, names, "conf", timeout_s=timeout_s).items()}
    silent = [name for name, conf in confs.items() if not conf["worker_send_task_events"]]
    for name, stats in remote.ask(celery, silent, "stats", timeout_s=timeout_s).items():
        if project_cli.started_with_events(name, (stats or {}).get("pid")):
            confs[name]["worker_send_task_events"] = True
    return confs


def _fingerprint(env):
    return hash(tuple(sorted((env or {}).items())))


def report(target, env):
    """(ok, output) of `celery -A <app> report` by the project's own celery, cached (REPORT_TTL_S)."""
    now, key = time.monotonic(), (target, _fingerprint(env))
    cached = _reports.get(key)
    if cached and cached[0] > now:
        return cached[1]
    answer = project_cli.report(target, env)
    _reports[key] = (now + (REPORT_TTL_S if answer[0] else WORKERS_TTL_S), answer)  # a failure is retried sooner
    return answer


def _merge(confs):
    """One view of several workers: a setting that blinds the panel on any of them counts, with their names."""
    first = next(iter(confs.values()))
    settings = dict(first)
    blind_on = {}
    for name, blind, _, _ in BLINDERS:
        blind_on[name] = sorted(worker for worker, conf in confs.items() if conf[name] == blind)
        if blind_on[name]:
            settings[name] = blind
    return settings, blind_on


def _read(target, celery, env, known, timeout_s, ask_workers):
    """(settings with their source, {setting: workers it blinds the panel on}): workers first, else the report."""
    if target.embedded:  # the embedded app's workers run the panel's own settings
        return {"source": "panel", "workers": [], "error": None, **wanted(dict(celery.conf))}, {}
    confs, error = {}, None if ask_workers else "workers not asked: the broker does not answer"
    try:
        confs = _from_workers(celery, known, timeout_s) if ask_workers else {}
    except Exception as exc:  # a broker that fails now: the report still answers
        error = f"workers not asked: {type(exc).__name__}: {exc}"
    if confs:
        settings, blind_on = _merge(confs)
        return {"source": "workers", "workers": sorted(confs), "error": None, **settings}, blind_on
    ok, out = report(target, env)
    if not ok:
        return {"source": "unread", "workers": [], **CELERY_DEFAULTS,
                "error": f"no worker answered and `celery -A {target.app} report` failed: {out[-500:]}"}, {}
    return {"source": "report", "workers": [], "error": error, **wanted(parse_report(out))}, {}


def read(target, celery, env, known=(), ask_workers=True, timeout_s=remote.TIMEOUT_S):
    """The project's settings with where they came from (its workers, its `celery report`, or the panel's own for
    the embedded app), cached for a short while."""
    key = (target, _fingerprint(env), celery.conf.broker_url)
    with _lock:
        now = time.monotonic()
        cached = _answers.get(key)
        if cached and cached[0] > now:
            return cached[1]
        conf, blind_on = _read(target, celery, env, tuple(known), timeout_s, ask_workers)
        conf["read_at"] = iso(utcnow())
        conf["blind_on"] = blind_on
        _answers[key] = (now + WORKERS_TTL_S, conf)
        return conf


def forget():
    """Drop what was cached (the next read asks again)."""
    with _lock:
        _answers.clear()
        _reports.clear()


def from_report(target, env):
    """The project's settings from `celery report` alone (before the panel has a broker to ask workers on), or
    None when the report fails."""
    ok, out = report(target, env)
    return wanted(parse_report(out)) if ok else None


def usable(url):
    """The URL as the panel can use it: unchanged when nothing was masked, the masked password dropped when the
    user is empty (Redis prints ':********@' with or without one), else None (a password the panel cannot read)."""
    if not url or MASK not in url:
        return url or None
    parts = parse_url(url)
    if parts.get("password") == MASK and not parts.get("userid"):
        return url.replace(f":{MASK}@", "", 1)
    return None


def _same_place(ours, theirs):
    """Whether two URLs name the same broker or store; a masked password is taken to match."""
    if ours == theirs:
        return True
    if "://" not in ours or "://" not in theirs:
        return False
    a, b = parse_url(ours), parse_url(theirs)
    local = ("localhost", "127.0.0.1", "::1")

    def key(parts):
        host = "127.0.0.1" if parts.get("hostname") in local else parts.get("hostname")
        vhost = parts.get("virtual_host") or ""
        vhost = (vhost.strip("/") or "0") if parts["transport"] == "redis" else (vhost or "/")
        return parts["transport"], host, parts.get("port"), parts.get("userid") or None, vhost
    passwords = {a.get("password"), b.get("password")}
    return key(a) == key(b) and (MASK in passwords or len(passwords) == 1)


def _mask(url):
    parts = parse_url(url) if url and "://" in url else {}
    return url.replace(f":{parts['password']}@", f":{MASK}@", 1) if parts.get("password") else url


def warnings(conf, broker_url, backend_url):
    """What blinds the panel: each project setting with what the panel loses and the line to add, and a broker or
    result backend that is not the project's."""
    found = []
    if conf["source"] not in ("workers", "report"):  # the embedded app runs the panel's own settings
        return found
    for name, blind, loses, line in BLINDERS:
        if conf[name] == blind:
            found.append({"setting": name, "value": blind, "line": line, "message": loses,
                          "workers": conf["blind_on"].get(name, [])})
    for name, ours, setting in (("broker_url", broker_url, "CELERY_BROKER_URL"),
                                ("result_backend", backend_url, "CELERY_RESULT_BACKEND")):
        theirs = conf.get(name)
        if theirs and ours and not _same_place(ours, theirs):
            hidden = " (its password is hidden from the panel)" if usable(theirs) is None else ""
            found.append({"setting": name, "value": theirs, "line": None, "workers": [],
                          "message": f"the panel uses {_mask(ours)} but the project's {name} is {theirs}: the panel "
                                     f"does not see what the project does there; set {setting} to the project's"
                                     f"{hidden}"})
    return found


def summary(conf, config):
    """What the health view and celery-check say of the project's settings, against the panel's `config`."""
    return {"source": conf["source"], "workers": conf["workers"], "read_at": conf["read_at"], "error": conf["error"],
            "broker_url": conf["broker_url"], "result_backend": conf["result_backend"],
            "broker_from": config.get("BROKER_FROM", "panel"),
            "result_backend_from": config.get("RESULT_BACKEND_FROM", "panel"),
            "settings": {name: conf[name] for name in FLAGS},
            "warnings": warnings(conf, config["CELERY_BROKER_URL"], config["CELERY_RESULT_BACKEND"])}
