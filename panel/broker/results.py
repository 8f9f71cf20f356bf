"""The result backend seam: what the project's result store kept about a run, wherever it keeps it.

One store per kind of backend, chosen by the project's result backend URL (`store_of`): a key-value store read
through Celery (Redis and the rest, `store_kv.py`), Celery's SQLAlchemy table and django-celery-results' table
read with SQL (`store_sql.py`), or none at all (`rpc://` sends each result to its caller and keeps nothing).
Every store gives a run's meta in one shape: task_id, status, result (decoded: a value, or an exception for a
failure), traceback, date_done (an aware datetime), and name, args, kwargs, worker, retries, queue when the
project stores extended results (else None).
"""
import time

from models import iso
from panel.broker import store_kv, store_sql
from panel.errors import ResultsNotKept

RPC_SCHEMES = ("rpc://", "rpc")
DJANGO_DB = "django-db"
RPC_WHY = ("the project's result backend is rpc://: each result goes back to the process that sent the task "
           "and is kept nowhere, so nothing can be read back (after a restart, on a run's page, for a retry's "
           "arguments); a store such as Redis or a database keeps them")


class NoStore:
    """rpc:// (and no backend at all): nothing is kept, and every read says why instead of failing."""

    kind = "rpc"
    listable = False

    def __init__(self, url):
        self.url = url or "(none)"

    def get(self, task_id):
        raise ResultsNotKept(RPC_WHY)

    def ended_since(self, since):
        return []

    def forget(self, task_id):
        return False

    def check(self):
        return {"ok": True, "kind": self.kind, "note": f"keeps no results: {RPC_WHY}"}


def loadable(url):
    """The result backend the panel's own Celery app is given: django-db is a backend only a Django process can load
    (the panel reads its table instead), so the panel's app gets none for it."""
    return None if (url or "").startswith(DJANGO_DB) else url


def settings_of(celery):
    """(the project's result backend URL, RESULTS_DATABASE_URL) as the panel was configured."""
    config = getattr(getattr(celery, "flask_app", None), "config", None) or {}
    url = config.get("CELERY_RESULT_BACKEND") or celery.conf.result_backend or ""
    return str(url), config.get("RESULTS_DATABASE_URL") or ""


def open_store(celery, url, results_database_url=""):
    """The store for a result backend URL (the SQL ones open their own read engine)."""
    if not url or url.startswith(RPC_SCHEMES):
        return NoStore(url)
    if url.startswith(DJANGO_DB):
        return store_sql.DjangoTable(results_database_url)
    if url.startswith("db+"):
        return store_sql.CeleryTable(url[3:], celery, url)
    return store_kv.KeyValue(celery, url)


def store_of(celery):
    """The store of this Celery app's project, opened once per backend URL."""
    url, database = settings_of(celery)
    cached = getattr(celery, "_panel_result_store", None)
    if cached is None or cached[0] != (url, database):
        cached = ((url, database), open_store(celery, url, database))
        celery._panel_result_store = cached
    return cached[1]


def keeps_results(celery):
    """Whether the project's result backend keeps anything to read (False on rpc:// and with none at all)."""
    return not isinstance(store_of(celery), NoStore)


def meta(celery, task_id):
    """The store's meta of one task, or None when it knows nothing of it (raises ResultsNotKept on rpc://)."""
    return store_of(celery).get(task_id)


def finished_results(celery, task_ids):
    """What the result backend stored for runs that ended (SUCCESS or FAILURE), by task id; none on rpc://."""
    store = store_of(celery)
    if isinstance(store, NoStore):
        return {}
    found = {}
    for task_id in task_ids:
        one = store.get(task_id)
        if one and one.get("status") in ("SUCCESS", "FAILURE"):
            found[task_id] = one
    return found


def state(celery, task_id):
    """The backend's word on one task: its state (PENDING also means "unknown"), its result and meta as text, and
    `kept` false with `why` when the backend keeps nothing (rpc://)."""
    try:
        one = store_of(celery).get(task_id)
    except ResultsNotKept as exc:
        return {"state": "PENDING", "result": None, "kept": False, "why": str(exc)}
    if one is None:
        return {"state": "PENDING", "result": None, "kept": True}
    result = one.get("result")
    return {"state": one["status"], "result": None if result is None else repr(result), "kept": True}


def stored(celery, task_id):
    """Everything the backend keeps of one task (state, result, traceback, date_done; name and args when the app
    stores extended results), or None when it knows nothing of it (raises ResultsNotKept on rpc://)."""
    one = store_of(celery).get(task_id)
    if one is None or one.get("status") in (None, "PENDING"):
        return None
    result = one.get("result")
    args = one.get("args") if one.get("args") is not None else one.get("argsrepr")
    kwargs = one.get("kwargs") if one.get("kwargs") is not None else one.get("kwargsrepr")
    return {"state": one["status"], "result": None if result is None else repr(result),
            "traceback": one.get("traceback"), "date_done": iso(one.get("date_done")),
            "name": one.get("name"), "args": args, "kwargs": kwargs, "worker": one.get("worker")}


def forget(celery, task_id):
    """Drop the stored result, so nothing reads it as pending for ever; False when the store cannot (read only,
    or none)."""
    return store_of(celery).forget(task_id)


def ended_since(celery, since):
    """Every run the result backend keeps as ended at or after `since` (an aware datetime), as its meta.

    Redis (SCAN of its task keys) and the SQL tables can be listed; rpc:// and other key-value stores give
    nothing."""
    return store_of(celery).ended_since(since)


def check(celery, url=None, results_database_url=None):
    """The result backend as celery-check and the health view show it: its kind, reachable (with latency), and
    what the panel cannot do with it or what to set."""
    own_url, own_database = settings_of(celery)
    database = own_database if results_database_url is None else results_database_url
    same = (url is None or url == own_url) and database == own_database
    store = store_of(celery) if same else open_store(celery, url, database)
    started = time.perf_counter()
    try:
        answer = store.check()
    except Exception as exc:  # every driver raises its own kind; the message says what
        answer = {"ok": False, "kind": store.kind, "error": f"{type(exc).__name__}: {exc}"[:500]}
    if answer["ok"] and "latency_ms" not in answer and store.kind != "rpc":
        answer["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    if not same and getattr(store, "_engine", None) is not None:
        store._engine.dispose()
    return dict(answer, listable=store.listable)
