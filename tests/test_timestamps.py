"""One timestamp form leaves the panel: models.iso, ISO 8601 in UTC with Z. Pure: no app, no database."""
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from models import iso

ROOT = Path(__file__).resolve().parent.parent
SKIPPED = (".venv", "tests", "migrations", "node_modules")
# `x.isoformat() + "Z"`, `f"{x.isoformat()}Z"`, `x.strftime("...Z")`: a timestamp built by hand
HAND_MADE = re.compile(r"""isoformat\([^)]*\)\s*(\+\s*["']Z|\}Z)|strftime\([^)]*Z["']""")


def test_a_naive_time_is_utc_and_keeps_the_form_the_api_always_had():
    assert iso(datetime(2026, 11, 21, 10, 0, 5, 123456)) == "2026-11-21T10:00:05.123456Z"
    assert iso(datetime(2026, 11, 21, 10, 0, 5)) == "2026-11-21T10:00:05Z"


def test_an_aware_time_is_converted_to_utc_first():
    paris = timezone(timedelta(hours=1))
    assert iso(datetime(2026, 11, 21, 11, 0, 5, 500, tzinfo=paris)) == "2026-11-21T10:00:05.000500Z"
    assert iso(datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)) == "2026-11-21T10:00:00Z"


def test_none_stays_none():
    assert iso(None) is None


def test_a_shorter_form_for_people_to_read():
    at = datetime(2026, 11, 21, 10, 0, 5, 123456)
    assert iso(at, "seconds") == "2026-11-21T10:00:05Z"
    assert iso(at, "minutes") == "2026-11-21T10:00Z"


def test_no_module_but_models_builds_a_timestamp_by_hand():
    sources = [p for pattern in ("*.py", "*.html") for p in ROOT.rglob(pattern)
               if p.relative_to(ROOT).parts[0] not in SKIPPED and "__pycache__" not in p.parts]
    assert sources
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
             for p in sources if p.name != "models.py" or p.parent != ROOT
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if HAND_MADE.search(line)]
    assert not found, "use models.iso:\n" + "\n".join(found)
