#!/usr/bin/env bash
# Start Celery Beat for this panel: in the background (default) or in place with --foreground.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/celery_env.sh

if [[ "${1:-}" == "--foreground" ]]; then
  exec "$CELERY" -A celery_app beat --loglevel "${BEAT_LOGLEVEL:-info}"
fi

start_in_background beat "Celery Beat" 2
