"""The worker card's two counters come from two sources and need not add up (the worker's own processed since its
start; the ends the panel saw in its events): each says what it counts, on the list, the detail and in the API."""
from playwright.sync_api import expect

from models import WorkerNode, db, utcnow
from tests.helpers import ARTIFACTS, UI_WAIT_MS, api_client

NAME = "counted@somewhere"


def _a_worker_seen_before_a_panel_restart(app):
    """A worker row as the monitor leaves it when the panel missed ends while it was down."""
    with app.app_context():
        db.session.add(WorkerNode(name=NAME, hostname="somewhere", pid=4242, online=True, first_seen_at=utcnow(),
                                  last_heartbeat_at=utcnow(), heartbeat_freq_s=600.0, sw_ver="5.4.0",
                                  sw_sys="Linux", processed=2160, succeeded=2023, failed=0))
        db.session.commit()
        db.session.remove()


def test_the_worker_card_labels_what_processed_and_succeeded_failed_each_count(app, logged_in):
    _a_worker_seen_before_a_panel_restart(app)
    page = logged_in(app, "watcher", "viewer", "/workers")
    expect(page.locator("#th-processed")).to_have_text("Processed (worker's count)")
    expect(page.locator("#th-ended")).to_have_text("Succeeded / failed (panel saw)")
    row = page.locator(f"#workers-body tr[data-worker='{NAME}']")
    expect(row).to_contain_text("2,160", timeout=UI_WAIT_MS)
    expect(row).to_contain_text("2,023 / 0")
    assert "since its process started" in row.locator("td", has_text="2,160").get_attribute("title")
    assert "while the panel was down" in row.locator("td", has_text="2,023 / 0").get_attribute("title")
    row.get_by_role("button", name=f"Details of {NAME}").click()
    facts = page.locator("#detail-facts")
    expect(facts).to_contain_text("2,160 — the worker's own count of tasks it started since its process started",
                                  timeout=UI_WAIT_MS)
    expect(facts).to_contain_text("2,023 / 0 — ends the panel saw in this worker process's task events")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "worker-counters.png"), full_page=True)


def test_the_api_document_says_what_each_worker_counter_counts(app):
    schema = api_client(app, "viewer").get("/api/openapi.json").get_json()["components"]["schemas"]
    worker = next(s for name, s in schema.items() if name.split(".")[-1] == "Worker")["properties"]
    assert "worker's own count" in worker["processed"]["description"]
    assert "panel's count" in worker["succeeded"]["description"] and "need not reach" in \
        worker["succeeded"]["description"]
