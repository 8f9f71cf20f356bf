"""Which Celery app this panel runs and recognises: its own embedded crawl app, or the user's own project.

The project is attached by settings and never imported: its worker and Beat run its own `celery`
executable in its own folder (the start scripts read the same settings), and the panel knows them
only by their command line, working folder and instance tag.
"""
import shlex
from dataclasses import dataclass
from pathlib import Path

from panel.config import ROOT

EMBEDDED_APP = "celery_app"
# What each Beat logs once its schedule is loaded: the panel's DatabaseScheduler, or Celery's own service.
EMBEDDED_BEAT_READY = "DatabaseScheduler: schedule loaded"
PROJECT_BEAT_READY = "beat: Starting..."
# The panel's own tasks (its run-log clean-up): with a project attached no worker knows them, so the panel runs them.
HOUSEKEEPING_TASKS = ("cleanup_results",)
SETTINGS = ("CELERY_APP", "CELERY_WORKDIR", "CELERY_BIN", "CELERY_WORKER_ARGS", "CELERY_BEAT_ARGS")


def _default_bin():
    own = ROOT / ".venv" / "bin" / "celery"
    return str(own) if own.exists() else "celery"


@dataclass(frozen=True)
class Target:
    """The `-A` value, the folder its processes run in, the `celery` they run, and extra arguments."""

    app: str
    workdir: str
    celery_bin: str
    worker_args: tuple = ()
    beat_args: tuple = ()

    @classmethod
    def of(cls, settings):
        """From settings or an environment; nothing set means the embedded app in the panel's folder."""
        app = (settings.get("CELERY_APP") or "").strip() or EMBEDDED_APP
        workdir = (settings.get("CELERY_WORKDIR") or "").strip() or str(ROOT)
        return cls(app=app, workdir=str(Path(workdir).resolve()),
                   celery_bin=(settings.get("CELERY_BIN") or "").strip() or _default_bin(),
                   worker_args=tuple(shlex.split(settings.get("CELERY_WORKER_ARGS") or "")),
                   beat_args=tuple(shlex.split(settings.get("CELERY_BEAT_ARGS") or "")))

    @property
    def embedded(self):
        return self.app == EMBEDDED_APP and Path(self.workdir) == ROOT

    @property
    def beat_ready_line(self):
        return EMBEDDED_BEAT_READY if self.embedded else PROJECT_BEAT_READY


EMBEDDED = Target(app=EMBEDDED_APP, workdir=str(ROOT), celery_bin=_default_bin())
