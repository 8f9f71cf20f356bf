"""The JSON API fuzzed from its own OpenAPI document: no 500 and no traceback in any answer."""
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import api_client
from tests.helpers import free_port

EXAMPLES_PER_OPERATION = 30


def _documented_types(case):
    """The media types the document gives for this operation's success (JSON unless it says otherwise)."""
    content = case.operation.definition.raw["responses"]["200"].get("content", {})
    return tuple(content) or ("application/json",)


def _check(case, token):
    for headers in ({"Authorization": f"Bearer {token}"}, {}):
        resp = case.call(headers=headers)
        where = f"{case.method} {case.formatted_path} -> {resp.status_code}"
        assert resp.status_code < 500 or resp.status_code == 503, where
        assert "Traceback" not in resp.text and 'File "' not in resp.text, where
        content_type = next((v for k, v in resp.headers.items() if k.lower() == "content-type"), "")
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        allowed = _documented_types(case) if resp.status_code < 400 else ("application/json",)  # errors: always JSON
        assert content_type.startswith(allowed), where


def test_no_answer_is_a_500_or_a_traceback(make_app):
    # A dead broker: controls answer 503 at once instead of starting real processes hundreds of times.
    app = make_app(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    api_client(app, "admin")
    token = app.extensions["test_tokens"]["admin"]
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app, headers={"Authorization": f"Bearer {token}"})
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8  # every documented operation but the document itself
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            _check(case, token)
        fuzz()
