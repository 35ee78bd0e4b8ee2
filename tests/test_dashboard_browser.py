"""The dashboard in a real browser: Playwright driving Debian's Chromium (``/usr/bin/chromium``,
headless) against a gateway served by uvicorn, after real traffic through it (the mock
provider, with metadata). It signs in with the admin key, reads the totals and the charts,
filters the log table by a metadata field, opens a request, and checks that record content
(a metadata value that is an HTML payload) is shown as text. Screenshots are saved under
``$PYTEST_ARTIFACTS/dashboard`` (default: ``test-artifacts/dashboard`` in the repository).

Without Chromium the tests are skipped locally and fail under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import portkey_ai
import pytest

from tests.conftest import DEADLINE, RunningGateway, ThreadedServer, server_file
from tests.fake_upstream import FakeUpstream
from tests.planted import ADMIN_KEY

CHROMIUM = Path("/usr/bin/chromium")
XSS = '<img src=x onerror="window.__xss=1">'
ARTIFACTS = Path(
    os.environ.get("PYTEST_ARTIFACTS") or Path(__file__).parent.parent / "test-artifacts"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab (its own session storage) whose console errors fail the test: a
    Content-Security-Policy violation is reported there."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(DEADLINE * 1000)
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.console_errors = errors  # a test that expects a refused call clears them
    yield tab
    context.close()
    assert not errors, errors


@pytest.fixture
def gw(tmp_path: Path, fake: FakeUpstream) -> Iterator[RunningGateway]:
    from portkey_mw import Gateway

    store = {"url": f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"}
    gateway = Gateway(config_file=server_file(tmp_path, fake, store=store))
    with ThreadedServer(gateway) as server:
        yield RunningGateway("mounted", server.url, server.url, app=gateway)


def shot(page: Any, name: str) -> None:
    folder = ARTIFACTS / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def chat(gw: RunningGateway, metadata: dict[str, str], model: str = "mock-small") -> None:
    answer = httpx.post(
        f"{gw.base_url}/chat/completions",
        headers={"x-portkey-provider": "mock", "x-portkey-metadata": json.dumps(metadata)},
        json={"model": model, "messages": [{"role": "user", "content": "hello"}]},
        timeout=DEADLINE,
    )
    assert answer.status_code == 200, answer.text


def logged(gw: RunningGateway, count: int) -> None:
    """Wait until the log store holds ``count`` records (they are written in batches)."""
    end = time.monotonic() + DEADLINE
    while True:
        answer = httpx.get(
            f"{gw.base_url}/logs", headers={"x-portkey-api-key": ADMIN_KEY}, timeout=DEADLINE
        )
        assert answer.status_code == 200, answer.text
        if answer.json()["total"] >= count:
            return
        assert time.monotonic() < end, f"only {answer.json()['total']} of {count} logged"
        time.sleep(0.05)


def sign_in(page: Any, gw: RunningGateway, hash_: str = "") -> None:
    page.goto(f"{gw.root}/dashboard{hash_}")
    page.fill("#key", ADMIN_KEY)
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector("#nav:not([hidden])")


def rows(page: Any) -> Any:
    return page.locator("table[data-table=logs] tbody tr")


def test_the_dashboard_shows_the_traffic_filters_it_and_opens_a_request(
    gw: RunningGateway, page: Any
) -> None:
    for _ in range(3):
        chat(gw, {"team": "alpha"})
    chat(gw, {"team": "beta"}, model="mock-large")
    chat(gw, {"team": "beta", "note": XSS}, model="mock-large")
    logged(gw, 5)

    sign_in(page, gw)
    requests = page.locator("[data-total=requests] .value")
    requests.wait_for()
    assert requests.text_content() == "5"
    # the requests chart: one column per bucket, adding up to the traffic
    bars = page.locator("svg[data-chart=requests] rect.bar")
    assert sum(float(v) for v in bars.evaluate_all("b => b.map(e => e.dataset.value)")) == 5
    tooltip = page.locator("svg[data-chart=requests] rect.bar title").last.text_content()
    assert tooltip.endswith(": 5") or ": " in tooltip
    # latency percentiles by model name both models
    by_model = page.locator("table[data-table=latency-model] tbody tr")
    assert sorted(by_model.locator("td:first-child").all_text_contents()) == [
        "mock-large",
        "mock-small",
    ]
    shot(page, "overview")

    page.click("#nav a[data-view=logs]")
    rows(page).first.wait_for()
    assert rows(page).count() == 5
    # the HTML payload is text: no element was made from it, nothing ran
    assert page.locator("table[data-table=logs]").get_by_text(f"note={XSS}").count() == 1
    assert page.locator("#view img").count() == 0
    assert page.evaluate("window.__xss") is None
    shot(page, "logs")

    page.fill("[data-filter=metadata-key]", "team")
    page.fill("[data-filter=metadata-value]", "alpha")
    page.click("form[data-form=log-filters] button[type=submit]")
    page.wait_for_selector("h3[data-count='3']")
    assert rows(page).count() == 3
    assert set(rows(page).locator(".tags").all_text_contents()) == {"team=alpha"}
    shot(page, "logs-filtered")

    opened = rows(page).first.get_attribute("data-id")
    rows(page).first.click()
    page.locator(f"[data-detail='{opened}']").wait_for()
    record = httpx.get(
        f"{gw.base_url}/logs/{opened}", headers={"x-portkey-api-key": ADMIN_KEY}, timeout=DEADLINE
    ).json()
    if "attempts" in record:  # every record has its attempt trail (issue 13's record)
        attempts = page.locator("table[data-table=attempts] tbody tr")
        assert attempts.count() == len(record["attempts"]) >= 1
        assert "mock" in attempts.first.text_content()
    else:
        page.get_by_text("This record has no attempt trail.").wait_for()
    assert page.locator("[data-detail]").get_by_text("team=alpha").count() == 0
    assert page.get_by_text("team=alpha").count() == 1  # the metadata section
    shot(page, "detail")

    page.click("#nav a[data-view=costs]")
    page.locator("table[data-table=cost-provider] tbody tr").first.wait_for()
    assert page.locator("table[data-table=cost-provider] td:first-child").all_text_contents() == [
        "mock"
    ]
    tags = page.locator("table[data-table=cost-metadata] td:first-child").all_text_contents()
    assert set(tags) >= {"alpha", "beta"} or set(tags) >= {XSS}
    shot(page, "costs")

    portkey_ai.Portkey(api_key=ADMIN_KEY, base_url=gw.base_url).api_keys.create(
        name="team-alpha",
        type="organisation",
        sub_type="service",
        scopes=["completions.write"],
        usage_limits={"type": "tokens", "credit_limit": 1000},
    )
    page.click("#nav a[data-view=budgets]")
    page.wait_for_selector("#view[data-view=budgets]")
    budget = page.locator("table[data-table=budgets] tbody tr")
    assert budget.count() == 1
    assert "team-alpha" in budget.text_content()
    assert "0 tokens of 1,000 tokens" in budget.text_content()
    shot(page, "budgets")
    assert page.evaluate("window.__xss") is None


def test_the_payload_is_text_in_the_detail_view(gw: RunningGateway, page: Any) -> None:
    chat(gw, {"note": XSS})
    logged(gw, 1)
    sign_in(page, gw, "#logs")
    rows(page).first.click()
    page.locator("[data-detail]").wait_for()
    assert page.get_by_text(f"note={XSS}").count() == 1
    assert page.locator("#view img").count() == 0
    assert page.evaluate("window.__xss") is None


def test_an_empty_store_says_so(gw: RunningGateway, page: Any) -> None:
    sign_in(page, gw)
    page.get_by_text("No requests logged yet").wait_for()
    page.click("#nav a[data-view=logs]")
    page.wait_for_selector("#view[data-view=logs]")
    page.get_by_text("No requests logged yet").wait_for()
    shot(page, "empty")


def test_a_wrong_key_is_refused_on_the_sign_in_form(gw: RunningGateway, page: Any) -> None:
    page.goto(f"{gw.root}/dashboard")
    page.fill("#key", "pk-not-a-key")
    page.click("#sign-in button[type=submit]")
    page.locator("#sign-in-error").get_by_text("refused the key").wait_for()
    assert page.locator("#nav").is_hidden()
    # the browser reports the 401 in the console; nothing else may be there
    assert all("401" in e for e in page.console_errors), page.console_errors
    page.console_errors.clear()


def admin_call(gw: RunningGateway, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.request(
        method,
        f"{gw.base_url}{path}",
        json=body,
        headers={"x-portkey-api-key": ADMIN_KEY},
        timeout=DEADLINE,
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_the_prompts_page_shows_an_ab_splits_versions_side_by_side(
    gw: RunningGateway, page: Any
) -> None:
    made = admin_call(
        gw,
        "POST",
        "/prompts",
        {"name": "greeter", "string": "One: hi {{u}}", "provider": "mock", "model": "m"},
    )
    slug = made["slug"]
    admin_call(gw, "PUT", f"/prompts/{slug}", {"string": "Two: hello {{u}}"})
    split = {"versions": [{"version": 1, "weight": 70}, {"version": 2, "weight": 30}]}
    admin_call(gw, "PUT", f"/prompts/{slug}/labels/production", split)
    sent = {1: 0, 2: 0}
    for n in range(30):
        answer = httpx.post(
            f"{gw.base_url}/prompts/{slug}@production/completions",
            json={"variables": {"u": f"user-{n}"}, "user": f"user-{n}"},
            timeout=DEADLINE,
        )
        assert answer.status_code == 200, answer.text
        sent[1 if "One" in answer.json()["choices"][0]["message"]["content"] else 2] += 1
    assert sent[1] and sent[2], sent
    logged(gw, 30)

    sign_in(page, gw, "#prompts")
    row = page.locator(f"table[data-table=prompts] tbody tr[data-slug='{slug}']")
    row.wait_for()
    assert row.locator("td[data-labels]").text_content() == "production: v1 70% · v2 30%"
    assert row.locator("td").last.text_content() == "30"
    shot(page, "prompts")

    row.click()
    versions = page.locator("table[data-table=prompt-versions] tbody tr")
    versions.first.wait_for()
    shown = {
        int(versions.nth(i).get_attribute("data-version")): versions.nth(i)
        .locator("td[data-field=requests]")
        .text_content()
        for i in range(versions.count())
    }
    assert shown == {1: str(sent[1]), 2: str(sent[2])}
    deployed = page.locator("table[data-table=prompt-versions] tr[data-version] td:nth-child(2)")
    assert deployed.all_text_contents() == ["production 30%", "published, production 70%"]
    bars = page.locator("svg[data-chart=prompt-version-requests] rect.bar")
    assert sorted(
        int(float(v)) for v in bars.evaluate_all("b => b.map(e => e.dataset.value)")
    ) == sorted(sent.values())
    # narrowed to the label: the same calls (every one came through it)
    page.select_option("[data-filter=prompt-label]", "production")
    page.wait_for_function("location.hash.includes('label=production')")
    page.locator("table[data-table=prompt-versions] tbody tr").first.wait_for()
    assert page.locator("tr[data-version='1'] td[data-field=requests]").text_content() == str(
        sent[1]
    )
    shot(page, "prompt-versions")
