"""`GET /` leads to the dashboard; the dashboard's times show the year when it is not the current one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib.resources import files

from tests.receiver.test_dashboard import browser  # noqa: F401  (fixture)


def test_root_leads_to_the_dashboard(client):
    answer = client.get("/", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard"
    assert client.get("/").url.path == "/dashboard"


def test_times_show_the_year_only_when_it_is_not_this_one(browser):  # noqa: F811
    script = files("receiver").joinpath("static/dashboard.js").read_text()
    this_year = datetime.now(UTC).year
    page = browser.new_page()
    try:
        page.set_content(f'<time id="old" datetime="2019-03-04T05:06:07Z">x</time>'
                         f'<time id="new" datetime="{this_year}-01-02T05:06:07Z">x</time><script>{script}</script>')
        old, new = page.inner_text("#old"), page.inner_text("#new")
    finally:
        page.close()
    assert "2019" in old
    assert str(this_year) not in new and new != "x"


def test_every_table_fits_1280_px_and_anomaly_times_are_times(start_web, r, browser):  # noqa: F811
    """Long ids wrap instead of pushing columns behind a scroll bar; epoch-ms fields of anomalies read as times."""
    from lockhook import keys
    from lockhook.commands.store import CommandStore
    from tests.support.config import API_TOKEN

    base = start_web()
    store = CommandStore(r)
    for i in range(4):
        store.register(f"a_very_long_device_identifier_for_the_warehouse_side_entrance_{i:04d}", "unlock",
                       "device_cloud", custom_id=f"req_wide_{i}_" + "x" * 40, schedule_expiry=False)
    r.lpush(keys.ANOMALIES, json.dumps({"at": 1795488369000, "kind": "stale_lock_event",
                                        "stale_occurred_at": 1795488359000, "device_id": "d" * 60}))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(base + "/")
        page.fill("#token", API_TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector("#commands h2")
        overflowing = page.evaluate("""Array.from(document.querySelectorAll('table'))
            .filter(t => t.scrollWidth > t.parentElement.clientWidth + 1).map(t => t.closest('section').id)""")
        anomalies = page.inner_text("#deliveries")
    finally:
        page.close()
    assert overflowing == []
    assert "stale_occurred_at=2026-11-24T02:45:59.000Z" in anomalies and "1795488359000" not in anomalies
