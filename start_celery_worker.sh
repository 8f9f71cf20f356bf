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

start_in_background worker "The Celery worker" 3
