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
CELERY="${CELERY:-$( [[ -x .venv/bin/celery ]] && echo .venv/bin/celery || command -v celery )}"
INSTANCE="${PANEL_INSTANCE_PATH:-$PWD/instance}"
mkdir -p "$INSTANCE/logs"
