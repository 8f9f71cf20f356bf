"""docs/deployment.md and gunicorn.conf.py: the examples parse and agree with the panel's process control."""
import configparser
import re
import runpy
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from panel.broker import remote
from panel.config import ROOT
from panel.host import processes
from panel.host.processes import BEAT, KINDS, WORKER
from panel.target import EMBEDDED_BEAT_READY
from tests.helpers import wait_for

DOC = ROOT / "docs" / "deployment.md"
DEPLOY_ROOT = "/srv/celery-panel"  # where the examples put the project
UNITS = ("celery-panel.service", "celery-worker.service", "celery-beat.service")
SCRIPTS = {WORKER: "start_celery_worker.sh", BEAT: "start_celery_beat.sh"}
DEFAULT_STOP_GRACE_S = 10


def doc_blocks():
    """The doc's configuration blocks by file name (their first line is a comment naming the file)."""
    found = {}
    for block in re.findall(r"```ini\n(.*?)```", DOC.read_text(), re.S):
        name = block.splitlines()[0].lstrip("#; ").rsplit("/", 1)[-1]
        found[name] = block
    return found


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
    assert conf["worker_class"] == "gthread" and conf["threads"] >= 2
    assert conf["wsgi_app"] == "app:create_app()" and conf["chdir"] == str(ROOT)
    assert gunicorn_settings(monkeypatch, PANEL_HOST="::1")["bind"] == ["[::1]:5123"]


def test_gunicorn_timeouts_let_a_stop_finish(monkeypatch):
    conf = gunicorn_settings(monkeypatch, STOP_GRACE_S="10", CONTROL_LOCK_WAIT_S="60", START_TIMEOUT_S="30")
    assert conf["graceful_timeout"] >= 10 + 5  # grace, then SIGKILL and its wait
    assert conf["timeout"] >= 60 + 10 + 5 + 30


def test_the_doc_holds_three_units_a_supervisor_config_and_its_rpc_interface_on_loopback():
    assert set(doc_blocks()) == set(UNITS) | {"celery-panel.conf", "rpc.conf"}
    rpc = parse(doc_blocks()["rpc.conf"])["inet_http_server"]
    assert rpc["port"].split(";")[0].strip().startswith("127.0.0.1:") and rpc["username"] and rpc["password"]


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


def test_supervisor_config_matches_the_units():
    conf = parse(doc_blocks()["celery-panel.conf"])
    panel = conf["program:celery-panel"]
    assert panel["command"] == unit("celery-panel.service")["ExecStart"]
    for kind in KINDS:
        program, service = conf[f"program:celery-{kind}"], unit(f"celery-{kind}.service")
        assert program["command"] == service["ExecStart"]
        assert program["directory"] == service["WorkingDirectory"] == panel["directory"]
        assert program["user"] == service["User"] == panel["user"]
        assert env_of(program["environment"]) == env_of(service["Environment"]) == env_of(panel["environment"])
        assert program["autorestart"] == "unexpected" and program["exitcodes"] == "0"
        assert program["stopasgroup"] == "false" and program["killasgroup"] == "true"
        assert program["stdout_logfile"].endswith(f"/instance/logs/{kind}.log")


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
