"""`GET /` leads to the dashboard; the dashboard's times show the year when it is not the current one."""

from __future__ import annotations

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
