"""docs/deployment.md and gunicorn.conf.py: the examples parse and agree with the panel's process control."""
import configparser
import re
import runpy
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from panel.broker import remote
from panel.config import ROOT, Settings, read_settings
from panel.errors import PanelError
from panel.fleet.hosts import exposed
from panel.host import processes
from panel.host.processes import BEAT, KINDS, WORKER
from panel.host.supervisord import ACTION_TIMEOUT_S, Supervisord as SupervisordClient
from panel.target import EMBEDDED_BEAT_READY
from tests.helpers import api_client, end_with_family, free_port, wait_for
from tests.supervisord_harness import CONF, SUPERVISORD

DOC = ROOT / "docs" / "deployment.md"
DEPLOY_ROOT = "/srv/celery-panel"  # where the examples put the project
UNITS = ("celery-panel.service", "celery-worker.service", "celery-beat.service")
SCRIPTS = {WORKER: "start_celery_worker.sh", BEAT: "start_celery_beat.sh"}
SUPERVISOR_FILES = {"celery-panel.conf", "celery.conf", "supervisord.conf", "rpc.conf"}
DEFAULT_STOP_GRACE_S = 10
DEFAULTS = {name: field.default for name, field in Settings.model_fields.items()}
READY_WAIT_S = 90  # a worker's start on two shared cores, with a CI run beside it


def doc_blocks():
    """The doc's configuration blocks by file name (their first line is a comment naming the file)."""
    found = {}
    for block in re.findall(r"```ini\n(.*?)```", DOC.read_text(), re.S):
        name = block.splitlines()[0].lstrip("#; ").rsplit("/", 1)[-1]
        found[name] = block
    return found


def env_example():
    """The panel's .env of choice B: the ```sh block whose first line names it."""
    for block in re.findall(r"```sh\n(.*?)```", DOC.read_text(), re.S):
        if block.startswith(f"# {DEPLOY_ROOT}/.env"):
            return block
    raise AssertionError("no .env example in the doc")


def parse(text):
    parser = configparser.ConfigParser(interpolation=None, strict=True, comment_prefixes=("#", ";"))
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string(text)
    return parser


def unit(name):
    return parse(doc_blocks()[name])["Service"]


def env_of(setting):
    """`Environment=A=1 B=2` (systemd) or `environment=A="1",B="2"` (Supervisor) as a dict."""
    pairs = shlex.split(setting.replace(",", " "))
    return dict(pair.split("=", 1) for pair in pairs)


def gunicorn_settings(monkeypatch, **env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_gunicorn_config_takes_host_port_and_workers_from_the_environment(monkeypatch):
    conf = gunicorn_settings(monkeypatch, PANEL_HOST="127.0.0.1", PANEL_PORT="5123", PANEL_WORKERS="5")
    assert conf["bind"] == ["127.0.0.1:5123"] and conf["workers"] == 5
    assert conf["worker_class"] == "panel.web.server.PanelWorker" and conf["threads"] >= 2
    assert conf["logger_class"] == "panel.web.server.AccessLog"
    assert conf["wsgi_app"] == "app:create_app()" and conf["chdir"] == str(ROOT)
    assert gunicorn_settings(monkeypatch, PANEL_HOST="::1")["bind"] == ["[::1]:5123"]


def test_gunicorn_timeouts_let_a_stop_finish(monkeypatch):
    conf = gunicorn_settings(monkeypatch, STOP_GRACE_S="10", CONTROL_LOCK_WAIT_S="60", START_TIMEOUT_S="30")
    assert conf["graceful_timeout"] >= 10 + 5  # grace, then SIGKILL and its wait
    assert conf["timeout"] >= 60 + 10 + 5 + 30


def test_the_doc_holds_three_units_the_supervisor_programs_and_their_rpc_interfaces_on_loopback():
    assert set(doc_blocks()) == set(UNITS) | SUPERVISOR_FILES
    rpc = parse(doc_blocks()["rpc.conf"])["inet_http_server"]
    assert rpc["port"].split(";")[0].strip().startswith("127.0.0.1:") and rpc["username"] and rpc["password"]


def test_the_unix_socket_is_the_default_supervisor_url_and_open_to_the_panels_group_only():
    sock = parse(doc_blocks()["supervisord.conf"])["unix_http_server"]
    assert DEFAULTS["SUPERVISOR_URL"] == f"unix://{sock['file']}"
    mode = int(sock["chmod"], 8)
    assert mode & stat.S_IRWXG == stat.S_IRWXG and mode & stat.S_IRWXO == 0  # the group may connect, others not
    assert sock["chown"].split(":")[1] == unit("celery-panel.service")["Group"]
    assert "username" not in sock  # the panel's unix:// URL carries no credentials


def test_the_panels_env_example_is_valid_settings_and_draws_no_plain_http_warning(tmp_path):
    (tmp_path / "doc.env").write_text(env_example())
    settings = read_settings(tmp_path / "doc.env")
    assert settings.PROCESS_MANAGER == "supervisor" and settings.SUPERVISOR_URL == DEFAULTS["SUPERVISOR_URL"]
    assert settings.SUPERVISOR_PROGRAMS == DEFAULTS["SUPERVISOR_PROGRAMS"] and len(settings.SUPERVISORS) >= 2
    assert exposed(settings.SUPERVISORS) == []  # every other host through a tunnel on loopback
    ports = [url.rsplit(":", 1)[1] for url in settings.SUPERVISORS.values()]
    assert len(set(ports)) == len(ports)  # a tunnel of its own per host


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed here")
def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    for name, block in doc_blocks().items():
        if name in UNITS:  # the project's real folder, so verify can check that the commands exist
            (tmp_path / name).write_text(block.replace(DEPLOY_ROOT, str(ROOT)))
    out = subprocess.run(["systemd-analyze", "verify", "--man=no", *(str(tmp_path / n) for n in UNITS)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "ignoring" not in out.stderr, out.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_worker_and_beat_units_run_the_start_script_in_the_foreground_beside_the_panel(kind, monkeypatch):
    panel, celery = unit("celery-panel.service"), unit(f"celery-{kind}.service")
    assert celery["ExecStart"] == f"{DEPLOY_ROOT}/{SCRIPTS[kind]} --foreground"
    for key in ("WorkingDirectory", "User", "Group"):
        assert celery[key] == panel[key], key
    assert celery["WorkingDirectory"] == DEPLOY_ROOT
    assert env_of(celery["Environment"])["PANEL_INSTANCE_PATH"] == env_of(panel["Environment"])["PANEL_INSTANCE_PATH"]
    assert celery["Restart"] == "on-failure"  # `always` would undo every stop through the panel
    assert f"panel.host.processes {kind}" in celery["ExecCondition"]
    assert int(celery["TimeoutStopSec"]) >= DEFAULT_STOP_GRACE_S + 5
    graceful = gunicorn_settings(monkeypatch)["graceful_timeout"]
    assert int(panel["TimeoutStopSec"]) > graceful and panel["KillMode"] == "process"


def test_the_panels_supervisor_program_matches_its_unit():
    panel, service = parse(doc_blocks()["celery-panel.conf"])["program:celery-panel"], unit("celery-panel.service")
    assert panel["command"] == service["ExecStart"] and panel["directory"] == service["WorkingDirectory"]
    assert panel["user"] == service["User"] and env_of(panel["environment"]) == env_of(service["Environment"])
    assert panel["stopasgroup"] == panel["killasgroup"] == "false"  # the worker and Beat it started outlive it
    assert set(parse(doc_blocks()["celery-panel.conf"]).sections()) == {"program:celery-panel"}  # choice A: no Celery


@pytest.mark.parametrize("kind", KINDS)
def test_choice_b_programs_run_the_start_scripts_under_the_names_the_panel_asks_for(kind):
    program = parse(doc_blocks()["celery.conf"])[f"program:{DEFAULTS['SUPERVISOR_PROGRAMS'][kind]}"]
    service, panel = unit(f"celery-{kind}.service"), unit("celery-panel.service")
    assert program["command"] == service["ExecStart"] == f"{DEPLOY_ROOT}/{SCRIPTS[kind]} --foreground"
    assert program["directory"] == service["WorkingDirectory"] and program["user"] == panel["User"]
    assert env_of(program["environment"]) == env_of(panel["Environment"])
    assert program["autorestart"] == "true"  # Supervisor restarts a crash; a stop through it holds anyway
    assert program["stopsignal"] == "TERM" and (program["stopasgroup"], program["killasgroup"]) == ("false", "true")
    assert DEFAULT_STOP_GRACE_S <= int(program["stopwaitsecs"]) <= ACTION_TIMEOUT_S - 10  # the panel waits 60 s
    assert int(program["startsecs"]) < DEFAULTS["START_TIMEOUT_S"]
    assert program["redirect_stderr"] == "true" and program["stdout_logfile"].endswith(f"celery-{kind}.log")


def ready(app, kind, log):
    """Started up, as the panel judges it: the worker answers a ping, Beat has logged its loaded schedule."""
    if kind == WORKER:
        sup = app.extensions["supervisor"]
        return remote.ping_worker(app.extensions["celery"], sup.nodename, timeout_s=0.5)
    return EMBEDDED_BEAT_READY in log.read_text(errors="replace")


@pytest.mark.parametrize("kind", KINDS)
def test_the_units_command_is_ours_and_a_stop_from_the_panel_exits_zero(kind, make_app):
    """Run the unit's command as systemd would; the panel must find it, and its stop must not look like a failure."""
    app = make_app(STOP_GRACE_S=10.0)  # production's grace: a warm shutdown takes 2-4 s on a loaded machine
    service = unit(f"celery-{kind}.service")
    instance = env_of(service["Environment"])["PANEL_INSTANCE_PATH"]
    env = app.extensions["supervisor"].child_env()  # broker, database: in production they come from .env
    env.update({k: v.replace(instance, app.instance_path) for k, v in env_of(service["Environment"]).items()})
    argv = shlex.split(service["ExecStart"].replace(DEPLOY_ROOT, str(ROOT)))
    log = Path(app.instance_path) / "logs" / f"{kind}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, cwd=service["WorkingDirectory"].replace(DEPLOY_ROOT, str(ROOT)), env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        found = wait_for(lambda: processes.scan(app.instance_path)[kind], 30, f"the unit's {kind} in the table")
        assert [r.pid for r in found] == [proc.pid]  # the script execs: the unit's main PID is Celery's
        wait_for(lambda: ready(app, kind, log), 30, f"the {kind} to start up")
        killed, survivors = app.extensions["supervisor"].stop((kind,))
        assert killed[kind] == 1 and survivors == []
        assert proc.wait(timeout=30) == 0  # Restart=on-failure / autorestart=unexpected leave it stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def doc_supervisord(app, folder, port):
    """A real supervisord running the doc's celery.conf, with the doc's RPC credentials on a free loopback port."""
    # this checkout for /srv/celery-panel, the app's instance, no user= (the tests run as one user), logs in folder
    rpc = parse(doc_blocks()["rpc.conf"])["inet_http_server"]
    programs = doc_blocks()["celery.conf"].replace(f"{DEPLOY_ROOT}/instance", app.instance_path)
    programs = re.sub(r"^user=.*\n", "", programs.replace(DEPLOY_ROOT, str(ROOT)), flags=re.M)
    programs = re.sub(r"^stdout_logfile=.*/", f"stdout_logfile={folder}/", programs, flags=re.M)
    conf = CONF.format(folder=folder, port=port, user=rpc["username"], password=rpc["password"]) + "\n" + programs
    (folder / "supervisord.conf").write_text(conf)
    env = app.extensions["supervisor"].child_env()  # broker, database, app: in production they come from .env
    proc = subprocess.Popen([SUPERVISORD, "-c", str(folder / "supervisord.conf")], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://{rpc['username']}:{rpc['password']}@127.0.0.1:{port}"


def stop_supervisord(proc):
    """Finalizer: SIGTERM to supervisord by PID (it stops its programs), then SIGKILL for anything left."""
    end_with_family(proc, 40)


def running_pid(client, program):
    info = client.program(program)
    return info["pid"] if info["state"] == "RUNNING" else None


def test_choice_b_supervisord_runs_the_docs_programs_and_the_panel_stops_and_starts_them(make_app, tmp_path):
    """The doc's celery.conf under a real supervisord: the panel shows Supervisor's PIDs, a stop holds, a start."""
    port, names = free_port(), DEFAULTS["SUPERVISOR_PROGRAMS"]
    rpc = parse(doc_blocks()["rpc.conf"])["inet_http_server"]
    app = make_app(PROCESS_MANAGER="supervisor", SUPERVISOR_URL=f"http://{rpc['username']}:{rpc['password']}@127.0.0.1:"
                   f"{port}", WORKER_NODENAME="deploy-doc@%h", WORKER_CONCURRENCY=1)
    proc, url = doc_supervisord(app, tmp_path, port)
    client = SupervisordClient("doc", url)
    try:
        pids = {kind: wait_for(lambda k=kind: _quiet(running_pid, client, names[k]), READY_WAIT_S,
                               f"{names[kind]} RUNNING under supervisord") for kind in KINDS}
        viewer, operator = api_client(app, "viewer"), api_client(app, "operator")
        status = viewer.get("/scheduler/celery-status/").get_json()
        assert status["manager"] == "supervisor" and status["status"] == "running", status
        for kind in KINDS:
            assert (status[kind]["state"], status[kind]["pids"]) == ("RUNNING", [pids[kind]])
        node = app.extensions["supervisor"].nodename
        wait_for(lambda: any(node in line for line in viewer.get("/api/logs/worker?lines=200").get_json()["lines"]),
                 30, "the worker's banner in the log supervisord keeps")
        stopped = operator.post("/scheduler/stop-celery/")
        body = stopped.get_json()
        assert stopped.status_code == 200 and (body["workers_killed"], body["beats_killed"]) == (1, 1), body
        assert [h["ok"] for h in body["hosts"]] == [True]  # this host, the pane's only one
        assert {client.program(names[kind])["state"] for kind in KINDS} == {"STOPPED"}  # autorestart=true: it holds
        after = viewer.get("/scheduler/celery-status/").get_json()
        assert (after["worker"]["state"], after["worker"]["active"]) == ("STOPPED", False)
        started = operator.post("/scheduler/start-celery/")
        body = started.get_json()
        assert started.status_code == 200 and "started by Supervisor" in body["message"], body
        assert body["worker_pids"] == [running_pid(client, names[WORKER])] != [pids[WORKER]]
        assert viewer.get("/scheduler/celery-status/").get_json()["worker"]["state"] == "RUNNING"
    finally:
        stop_supervisord(proc)


def _quiet(call, *args):
    """`call(*args)`, or None while supervisord is not answering yet."""
    try:
        return call(*args)
    except PanelError:
        return None
