# Shared by the start scripts: settings from the environment, then .env (the environment wins).
# shellcheck shell=bash
if [[ -f .env ]]; then
  while IFS='=' read -r key value; do
    [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    value="${value%\"}"; value="${value#\"}"; value="${value%\'}"; value="${value#\'}"
    [[ -n "${!key+x}" ]] || export "$key=$value"
  done < .env
fi
PYTHON="${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || command -v python3 )}"
PANEL_ROOT="$(pwd -P)"
# The app to run (panel/target.py): unset, the embedded demo in this folder with this folder's celery.
APP="${CELERY_APP:-celery_app}"
WORKDIR="$(cd "${CELERY_WORKDIR:-$PANEL_ROOT}" && pwd -P)"
CELERY="${CELERY_BIN:-${CELERY:-$( [[ -x .venv/bin/celery ]] && echo "$PWD/.venv/bin/celery" || command -v celery )}}"
INSTANCE="$(mkdir -p "${PANEL_INSTANCE_PATH:-$PWD/instance}" && cd "${PANEL_INSTANCE_PATH:-$PWD/instance}" && pwd -P)"
mkdir -p "$INSTANCE/logs"

# Start this script's process in the background (it re-runs itself with --foreground), refusing a
# second copy; report the PID and log, or the log's last lines when it dies while settling.
start_in_background() {
  local kind="$1" label="$2" settle_s="$3" pids pid log
  if pids=$("$PYTHON" -m panel.host.processes "$kind"); then
    echo "$label is already running (PID $pids); not starting a second one." >&2
    exit 1
  fi
  log="$INSTANCE/logs/$kind.log"
  setsid "$0" --foreground >>"$log" 2>&1 </dev/null &
  pid=$!
  sleep "$settle_s"
  if kill -0 "$pid" 2>/dev/null; then
    echo "$label started in the background (PID $pid); log: $log"
  else
    echo "$label failed to start; last lines of $log:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
}
