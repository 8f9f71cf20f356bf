"""A real supervisord of its own for tests: temp dir, free loopback port, its own password, the sample project's
worker (and Beat) as its programs, stopped by PID at the end."""
import os
import subprocess
from pathlib import Path

from panel.host.supervisord import Supervisord as SupervisordClient
from tests.helpers import CELERY, PROJECT, end_with_family, free_port

SUPERVISORD = str(Path(CELERY).with_name("supervisord"))
PASSWORDS = {"alpha": "alpha-S3cret-pw", "beta": "beta-S3cret-pw"}
PROGRAMS = {"worker": "celery-worker", "beat": "celery-beat"}

CONF = """\
[supervisord]
logfile={folder}/supervisord.log
pidfile={folder}/supervisord.pid
childlogdir={folder}
directory={folder}
nodaemon=true

[inet_http_server]
port=127.0.0.1:{port}
username={user}
password={password}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
"""
PROGRAM = """
[program:{name}]
command={command}
directory={project}
autostart=true
autorestart=true
startsecs=1
stopwaitsecs=10
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={folder}/{name}.log
"""


class SupervisordHost:
    """A supervisord of its own (temp dir, free loopback port, own password), as one host of a fleet."""

    def __init__(self, folder, name, broker_url, programs, socket=None, env=None, port=None, extra=""):
        """`env`: the programs' environment beyond the broker (supervisord passes its own on to them); `extra`:
        lines added to every program's section."""
        folder.mkdir(parents=True, exist_ok=True)
        self.name, self.folder, self.port = name, folder, port or free_port()
        self.user, self.password = f"{name}-admin", PASSWORDS.get(name, f"{name}-S3cret-pw")
        conf = CONF.format(folder=folder, port=self.port, user=self.user, password=self.password)
        if socket:  # beside the TCP port, as a host's own supervisorctl reaches it
            conf += f"\n[unix_http_server]\nfile={socket}\nchmod=0700\n"
        for program, command in programs.items():
            conf += PROGRAM.format(name=program, command=command, project=PROJECT, folder=folder) + extra
        (folder / "supervisord.conf").write_text(conf)
        env = {**os.environ, "CELERY_BROKER_URL": broker_url, "CELERY_RESULT_BACKEND": broker_url, "PROJ_TICK_S": "60",
               **(env or {})}
        self.proc = subprocess.Popen([SUPERVISORD, "-c", str(folder / "supervisord.conf")], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://{self.user}:{self.password}@127.0.0.1:{self.port}"
        self.client = SupervisordClient(name, self.url)

    def running(self, program):
        """The program's PID once supervisord calls it RUNNING."""
        try:
            info = self.client.program(program)
        except Exception:
            return None
        return info["pid"] if info["state"] == "RUNNING" else None

    def stop(self):
        """SIGTERM: supervisord stops its programs, then exits; whatever is left after is killed by PID."""
        end_with_family(self.proc, 40)


def worker_command(node):
    return f"{CELERY} -A proj worker -n {node} -P solo -l info --without-mingle --without-gossip"


def beat_command(folder):
    return f"{CELERY} -A proj beat -s {folder}/beat-schedule --pidfile={folder}/beat.pid -l info"
