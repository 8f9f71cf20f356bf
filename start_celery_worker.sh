#!/usr/bin/env bash
# Start the Celery worker for this panel: in the background (default) or in place with --foreground.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/celery_env.sh

if [[ "${1:-}" == "--foreground" ]]; then
  exec "$CELERY" -A celery_app worker \
    --loglevel "${WORKER_LOGLEVEL:-info}" \
    --concurrency "${WORKER_CONCURRENCY:-2}" \
    --pool "${WORKER_POOL:-prefork}" \
    --queues "${WORKER_QUEUES:-celery}" \
    --hostname "${WORKER_NODENAME:-worker@%h}" \
    --statedb "$INSTANCE/run/worker-%n.state"
fi

if pids=$("$PYTHON" -m panel.processes worker); then
  echo "The Celery worker is already running (PID $pids); not starting a second one." >&2
  exit 1
fi
log="$INSTANCE/logs/worker.log"
setsid "$0" --foreground >>"$log" 2>&1 </dev/null &
pid=$!
sleep 3
if kill -0 "$pid" 2>/dev/null; then
  echo "Celery worker started in the background (PID $pid); log: $log"
else
  echo "The Celery worker failed to start; last lines of $log:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
