#!/usr/bin/env bash
# Start Celery Beat of the configured app (the embedded demo, or CELERY_APP in CELERY_WORKDIR):
# in the background (default) or in place with --foreground.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/celery_env.sh

if [[ "${1:-}" == "--foreground" ]]; then
  cd "$WORKDIR"
  if [[ "$APP" == celery_app && "$WORKDIR" == "$PANEL_ROOT" ]]; then
    exec "$CELERY" -A celery_app beat --loglevel "${BEAT_LOGLEVEL:-info}"
  fi
  # Your project's Beat keeps its own schedule with its own scheduler (e.g. CELERY_BEAT_ARGS="-S django");
  # the default file scheduler keeps its state in the panel's instance folder, not in your project.
  # shellcheck disable=SC2086 # CELERY_BEAT_ARGS is a list of arguments, split on purpose
  exec "$CELERY" -A "$APP" beat --loglevel "${BEAT_LOGLEVEL:-info}" \
    --schedule "$INSTANCE/run/celerybeat-schedule" ${CELERY_BEAT_ARGS:-}
fi

start_in_background beat "Celery Beat" 2
