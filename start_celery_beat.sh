#!/usr/bin/env bash
# Start Celery Beat for this panel: in the background (default) or in place with --foreground.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/celery_env.sh

if [[ "${1:-}" == "--foreground" ]]; then
  exec "$CELERY" -A celery_app beat --loglevel "${BEAT_LOGLEVEL:-info}"
fi

if pids=$("$PYTHON" -m panel.processes beat); then
  echo "Celery Beat is already running (PID $pids); not starting a second one." >&2
  exit 1
fi
log="$INSTANCE/logs/beat.log"
setsid "$0" --foreground >>"$log" 2>&1 </dev/null &
pid=$!
sleep 2
if kill -0 "$pid" 2>/dev/null; then
  echo "Celery Beat started in the background (PID $pid); log: $log"
else
  echo "Celery Beat failed to start; last lines of $log:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
