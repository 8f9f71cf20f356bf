#!/usr/bin/env bash
# Start the Celery worker of the configured app (the embedded demo, or CELERY_APP in CELERY_WORKDIR):
# in the background (default) or in place with --foreground.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/celery_env.sh

if [[ "${1:-}" == "--foreground" ]]; then
  cd "$WORKDIR"
  # shellcheck disable=SC2086 # CELERY_WORKER_ARGS is a list of arguments, split on purpose
  exec "$CELERY" -A "$APP" worker \
    --loglevel "${WORKER_LOGLEVEL:-info}" \
    --concurrency "${WORKER_CONCURRENCY:-2}" \
    --pool "${WORKER_POOL:-prefork}" \
    --queues "${WORKER_QUEUES:-celery}" \
    --hostname "${WORKER_NODENAME:-worker@%h}" \
    --statedb "$INSTANCE/run/worker-%n.state" \
    --task-events \
    ${CELERY_WORKER_ARGS:-}
fi

start_in_background worker "The Celery worker" 3
