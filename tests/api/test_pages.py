"""The web pages in a real headless Chromium, against the real app served by uvicorn.

Each page is driven the way a person would use it, and what it shows is compared with what the
API answers for the same input. Every page is also opened at a phone's width. Screenshots of each
page at both widths go to tests/artifacts/screenshots (git-ignored; LEADML_PAGE_SCREENSHOTS picks
another folder), and the run lists them at the end.
"""

from __future__ import annotations

import csv
import json
import math
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import uvicorn

from api.keys import hash_key
from api.main import create_app
from conftest import TrainedModel
from leadml import demo
from leadml.settings import Settings

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1366, "height": 850}
PHONE = {"width": 390, "height": 844}
WIDTHS = {"desktop": DESKTOP, "phone": PHONE}
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
#: Playwright waits this long (ms) for anything on a page.
WAIT_MS = 20_000
N_LEADS = 40
SCORER_KEY = "pages-test-scorer-key"
#: What the pages show where there is nothing to show (an en dash).
NOTHING = "\u2013"


# --------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """The real app on a free loopback port, in a background thread; yields its base URL."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="pages-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            pytest.fail("the API server did not start; see its log above")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _settings(trained: TrainedModel, folder: Path, **access: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        tracking_uri=trained.tracking_uri,
        model_name=trained.model_name,
        model_uri=str(trained.export_dir),
        database_url=f"sqlite:///{folder / 'app.db'}",
        reload_interval_seconds=0,
        **access,
    )


def call(base_url: str, method: str, path: str, body: Any = None, key: str | None = None) -> Any:
    """The API's own answer (JSON), for comparison with what a page shows."""
    headers = {"Accept": "application/json"}
    data = None
    if isinstance(body, str):
        data, headers["Content-Type"] = body.encode(), "text/csv"
    elif body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    if key:
        headers["X-API-Key"] = key
    request = urllib.request.Request(base_url + path, data, headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def open_api(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("pages-open")
    # Anonymous callers on this machine, with the admin role a local demo grants them.
    with serve(_settings(trained, folder, allow_anonymous=True, anonymous_role="admin")) as url:
        yield url


@pytest.fixture(scope="module")
def keyed_api(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("pages-keyed")
    access = {"allow_anonymous": False, "api_keys": f"scorer:{hash_key(SCORER_KEY)}"}
    with serve(_settings(trained, folder, **access)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    with playwright_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Tab:
    """A page in a fresh browser context, with the script and console errors it raised
    (a refused Content-Security-Policy rule, a failed request and an uncaught error all count)."""

    page: Any
    errors: list[str]

    def assert_no_script_errors(self, *, answered: tuple[int, ...] = ()) -> None:
        """No error, except the browser's note on API answers with a status in `answered` that
        the test asked for (Chromium logs every 4xx answer to a fetch)."""
        expected = tuple(f"status of {status}" for status in answered)
        errors = [e for e in self.errors if not (expected and any(x in e for x in expected))]
        assert errors == [], f"script or console errors: {errors}"


def _open_tab(browser: Any, viewport: dict[str, int]) -> Iterator[Tab]:
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.on(
        "console",
        lambda message: (
            errors.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    yield Tab(page, errors)
    context.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    yield from _open_tab(browser, DESKTOP)


@pytest.fixture
def phone(browser: Any) -> Iterator[Tab]:
    yield from _open_tab(browser, PHONE)


@pytest.fixture(scope="module")
def screenshots(request: pytest.FixtureRequest) -> Iterator[Path]:
    chosen = os.environ.get("LEADML_PAGE_SCREENSHOTS")
    folder = Path(chosen) if chosen else SCREENSHOTS
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        taken = sorted(folder.glob("*.png"))
        reporter.write_line(f"\npage screenshots in {folder}:")
        for path in taken:
            reporter.write_line(f"  {path.name}")


def assert_fits_the_width(page: Any) -> None:
    """Nothing on the page scrolls sideways: the document is no wider than the window."""
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth,"
        " ...Array.from(document.querySelectorAll('.table-wrap'),"
        " w => w.scrollWidth - w.clientWidth)]"
    )
    document_width, window_width, *overflows = widths
    assert document_width <= window_width, f"the page is {document_width}px wide"
    assert all(extra <= 1 for extra in overflows), f"a table scrolls sideways by {overflows}"


@pytest.fixture(scope="module")
def new_leads() -> pd.DataFrame:
    """Leads the model never saw, as a CRM export of new leads (no outcome yet)."""
    return export_with_outcomes().drop(columns=[demo.TARGET])


def export_with_outcomes(n_leads: int = N_LEADS, seed: int = 11) -> pd.DataFrame:
    """A CRM export as leadml's demo makes it: the outcome column and the leaky status fields."""
    return demo.generate_leads(n_leads, seed=seed, start_id=500_000)


def _lead_record(frame: pd.DataFrame, row: int) -> dict[str, Any]:
    record = frame.iloc[row].to_dict()
    return {
        str(name): (None if isinstance(value, float) and math.isnan(value) else value)
        for name, value in record.items()
    }


def _json_ready(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}


# --------------------------------------------------------------------------- ranked leads


def _table_rows(page: Any) -> list[dict[str, str]]:
    cells: list[list[str]] = page.eval_on_selector_all(
        "#ranked tbody tr",
        "rows => rows.map(r => Array.from(r.cells, c => c.innerText.trim()))",
    )
    keys = ["rank", "lead_id", "score", "grade", "mql", "percentile", "for", "against"]
    return [dict(zip(keys, row, strict=True)) for row in cells]


def _upload(page: Any, path: Path) -> None:
    page.set_input_files("#csv-file", str(path))
    page.click("#rank-button")
    expect(page.locator("#batch-status")).to_contain_text("Ranked")


def test_ranked_leads_upload_rank_sort_filter_download(
    tab: Tab, open_api: str, tmp_path: Path, screenshots: Path
) -> None:
    page = tab.page
    export = export_with_outcomes()
    upload = tmp_path / "crm-export.csv"
    export.to_csv(upload, index=False)
    expected = call(open_api, "POST", "/v1/leads/score-batch", upload.read_text())
    grades = {band["grade"] for band in call(open_api, "GET", "/v1/model")["policy"]["grades"]}

    page.goto(open_api + "/")
    _upload(page, upload)
    # The export's outcome column is said to be ignored, once.
    expect(page.locator("#result-notes")).to_contain_text(f"'{demo.TARGET}'")
    assert page.inner_text("#result-notes").count(demo.TARGET) == 1

    rows = _table_rows(page)
    assert len(rows) == N_LEADS
    assert [r["rank"] for r in rows] == [str(i) for i in range(1, N_LEADS + 1)]
    scores = [int(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert [r["lead_id"] for r in rows] == [lead["lead_id"] for lead in expected["leads"]]
    assert {r["grade"] for r in rows} <= grades
    assert len({r["grade"] for r in rows}) > 1
    assert all(r["for"] != NOTHING or r["against"] != NOTHING for r in rows)
    assert any("raises the chance" in r["for"] for r in rows)
    versions = page.inner_text("#result-versions")
    assert f"model version {expected['model_version']}" in versions
    assert "default policy" in versions or f"policy v{expected['policy_version']}" in versions
    assert_fits_the_width(page)
    page.screenshot(path=str(screenshots / "ranked-desktop.png"), full_page=True)

    # Sorting: the lead id column, then the score column lowest first.
    page.click("#ranked th[data-key=lead_id] button")
    ids = [r["lead_id"] for r in _table_rows(page)]
    assert ids == sorted(ids)
    assert page.get_attribute("#ranked th[data-key=lead_id]", "aria-sort") == "ascending"
    page.click("#ranked th[data-key=score] button")
    page.click("#ranked th[data-key=score] button")
    low_first = [int(r["score"]) for r in _table_rows(page)]
    assert low_first == sorted(scores)

    # Filter: MQLs only, in the ranking order.
    page.click("#ranked th[data-key=rank] button")
    page.select_option("#filter-mql", "yes")
    mql_ids = [lead["lead_id"] for lead in expected["leads"] if lead["is_mql"]]
    assert 0 < len(mql_ids) < N_LEADS
    shown = _table_rows(page)
    assert [r["lead_id"] for r in shown] == mql_ids
    assert {r["mql"] for r in shown} == {"Yes"}

    # Download: the rows shown, in the order shown, with the lead's own columns kept.
    with page.expect_download() as download_info:
        page.click("#download")
    with open(download_info.value.path(), newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        lines = list(reader)
        header = reader.fieldnames or []
    assert header[0] == "rank"
    assert header[1 : 1 + len(export.columns)] == list(export.columns)
    for column in ("score", "probability", "grade", "is_mql", "reasons_for", "reasons_against"):
        assert column in header
    assert [line["lead_id"] for line in lines] == mql_ids
    by_id = {lead["lead_id"]: lead for lead in expected["leads"]}
    originals = export.set_index("lead_id")
    for line in lines:
        lead = by_id[line["lead_id"]]
        assert float(line["probability"]) == lead["probability"]
        assert line["is_mql"] == "yes"
        assert line["grade"] == lead["grade"]
        assert line["lead_source"] == str(originals.loc[line["lead_id"], "lead_source"])
        assert line[demo.TARGET] == str(originals.loc[line["lead_id"], demo.TARGET])
    tab.assert_no_script_errors()


def test_ranked_leads_paginate_search_and_filter(tab: Tab, open_api: str, tmp_path: Path) -> None:
    page = tab.page
    n_leads = 130
    export = export_with_outcomes(n_leads, seed=12)
    upload = tmp_path / "leads.csv"
    export.to_csv(upload, index=False)
    expected = call(open_api, "POST", "/v1/leads/score-batch", upload.read_text())["leads"]

    page.goto(open_api + "/")
    _upload(page, upload)
    page.select_option("#page-size", "25")
    assert [r["rank"] for r in _table_rows(page)] == [str(i) for i in range(1, 26)]
    expect(page.locator("#page-info")).to_contain_text("Page 1 of 6")
    assert page.is_disabled("#page-prev")
    page.click("#page-next")
    assert [r["rank"] for r in _table_rows(page)] == [str(i) for i in range(26, 51)]
    for _ in range(4):
        page.click("#page-next")
    last = _table_rows(page)
    assert [r["rank"] for r in last] == [str(i) for i in range(126, n_leads + 1)]
    assert page.is_disabled("#page-next")
    page.click("#page-first")
    expect(page.locator("#page-info")).to_contain_text("Page 1 of 6")

    # Search by id: part of an id finds the leads whose id holds it.
    wanted = expected[77]["lead_id"]
    page.fill("#search-id", wanted[-4:])
    found = [r["lead_id"] for r in _table_rows(page)]
    assert found == [lead["lead_id"] for lead in expected if wanted[-4:] in lead["lead_id"]]
    assert wanted in found
    page.fill("#search-id", "no-such-lead")
    expect(page.locator("#no-match")).to_be_visible()
    page.fill("#search-id", "")

    # Grade, then a categorical trait of the lead (its source), then both with the MQL flag.
    grade = expected[0]["grade"]
    page.select_option("#filter-grade", grade)
    page.select_option("#page-size", "250")
    of_grade = [lead["lead_id"] for lead in expected if lead["grade"] == grade]
    assert [r["lead_id"] for r in _table_rows(page)] == of_grade
    page.select_option("#filter-grade", "")
    page.select_option("#filter-trait", "lead_source")
    source_of = dict(zip(export["lead_id"], export["lead_source"].astype(str), strict=True))
    values = page.eval_on_selector_all("#filter-value option", "os => os.map(o => o.value)")
    source = source_of[expected[0]["lead_id"]]
    assert source in values
    page.select_option("#filter-value", source)
    from_source = [lead["lead_id"] for lead in expected if source_of[lead["lead_id"]] == source]
    assert [r["lead_id"] for r in _table_rows(page)] == from_source
    page.select_option("#filter-mql", "no")
    both = [
        lead["lead_id"]
        for lead in expected
        if source_of[lead["lead_id"]] == source and not lead["is_mql"]
    ]
    assert [r["lead_id"] for r in _table_rows(page)] == both
    expect(page.locator("#result-summary")).to_contain_text(f"{len(both)} match")
    page.click("#filters-clear")
    expect(page.locator("#result-summary")).not_to_contain_text("match")
    assert len(_table_rows(page)) == n_leads
    tab.assert_no_script_errors()


def test_ranked_leads_on_a_phone(
    phone: Tab, open_api: str, tmp_path: Path, screenshots: Path
) -> None:
    page = phone.page
    upload = tmp_path / "leads.csv"
    export_with_outcomes().to_csv(upload, index=False)
    page.goto(open_api + "/")
    assert_fits_the_width(page)
    page.screenshot(path=str(screenshots / "ranked-phone-empty.png"), full_page=True)
    _upload(page, upload)
    first = page.locator("#ranked tbody tr").first
    # Rank, id, score and grade show; the MQL flag and reasons wait for a tap.
    for cell in ("rank", "id", "score", "grade-cell"):
        assert first.locator(f"td.{cell}").is_visible(), cell
    assert first.locator("td.reasons-for").is_hidden()
    heights = page.eval_on_selector_all(
        "#ranked tbody tr", "rows => rows.map(r => r.getBoundingClientRect().height)"
    )
    assert max(heights) < 60, f"rows are up to {max(heights)}px high"
    assert_fits_the_width(page)
    page.screenshot(path=str(screenshots / "ranked-phone.png"), full_page=False)
    first.click()
    expect(first.locator("td.reasons-for")).to_be_visible()
    assert "Reasons for" in first.inner_text()
    assert first.get_attribute("aria-expanded") == "true"
    assert_fits_the_width(page)
    page.screenshot(path=str(screenshots / "ranked-phone-reasons.png"), full_page=False)
    first.click()
    expect(first.locator("td.reasons-for")).to_be_hidden()
    phone.assert_no_script_errors()


def test_ranked_leads_scores_a_large_upload_in_parts_with_progress(
    tab: Tab, open_api: str, tmp_path: Path, screenshots: Path
) -> None:
    page = tab.page
    n_leads = 20_000
    upload = tmp_path / "twenty-thousand.csv"
    export_with_outcomes(n_leads, seed=13).to_csv(upload, index=False)
    model = call(open_api, "GET", "/v1/model")
    assert model["max_batch_leads"] < n_leads  # one request could not take them

    page.goto(open_api + "/")
    expect(page.locator("#csv-template")).to_be_enabled()
    page.set_input_files("#csv-file", str(upload))
    page.click("#rank-button")
    bar = page.locator("#batch-progress")
    expect(bar).to_be_visible()
    seen: set[int] = set()
    screenshot_taken = False
    while page.is_visible("#batch-progress"):
        # The page answers while it scores: a script round trip and typing in a field work.
        done = page.evaluate(
            "() => { const b = document.getElementById('batch-progress');"
            " return b.hidden ? -1 : Number(b.value); }"
        )
        if done >= 0:
            seen.add(done)
            assert page.get_attribute("#batch-progress", "max") == str(n_leads)
        if 0 < done < n_leads and not screenshot_taken:
            page.fill("#csv-text", "typing while it scores")
            assert page.input_value("#csv-text") == "typing while it scores"
            page.screenshot(path=str(screenshots / "ranked-progress-desktop.png"))
            screenshot_taken = True
        page.wait_for_timeout(100)
    partial = sorted(x for x in seen if 0 < x < n_leads)
    assert len(partial) >= 3, f"the progress bar moved through {partial}"
    expect(page.locator("#batch-status")).to_have_text(f"Ranked {n_leads:,} leads.")
    expect(page.locator("#result-summary")).to_contain_text(f"{n_leads:,} leads scored")
    expect(page.locator("#page-info")).to_contain_text("Page 1 of 400")
    top = _table_rows(page)
    assert [r["rank"] for r in top] == [str(i) for i in range(1, 51)]
    # One ranking across the parts: the last page holds the lowest scores of all.
    page.select_option("#page-size", "250")
    for _ in range(3):
        page.click("#page-next")
    middle = _table_rows(page)
    assert int(middle[0]["rank"]) == 751
    assert int(top[-1]["score"]) >= int(middle[0]["score"])
    tab.assert_no_script_errors()


def test_ranked_leads_shows_the_apis_problems(tab: Tab, open_api: str) -> None:
    page = tab.page
    page.goto(open_api + "/")
    page.fill("#csv-text", "lead_id,lead_source,favourite_colour\nL1,Referral,blue\n")
    page.click("#rank-button")
    error = page.locator("#batch-error")
    expect(error).to_contain_text("favourite_colour")
    assert "Unknown column" in error.inner_text()
    assert page.is_hidden("#result")
    tab.assert_no_script_errors(answered=(422,))


# --------------------------------------------------------------------------- one lead


def _fill_lead(page: Any, model: dict[str, Any], record: dict[str, Any]) -> None:
    """Fill the generated form the way a person would, field by field."""
    page.fill("#f-id", str(record[model["id_field"]]))
    for index, spec in enumerate(model["fields"]):
        selector = f"#f-{index}"
        value = record.get(spec["name"])
        if value is None:
            continue
        if spec["role"] == "categorical" and value not in spec["known_categories"]:
            page.select_option(selector, "__other__")
            page.fill(f"{selector}-other", str(value))
        elif spec["role"] in ("categorical", "boolean"):
            page.select_option(selector, str(value))
        else:
            page.fill(selector, str(value))


def test_one_lead_form_is_generated_from_the_schema_and_scores_like_the_api(
    tab: Tab, open_api: str, new_leads: pd.DataFrame, screenshots: Path
) -> None:
    page = tab.page
    model = call(open_api, "GET", "/v1/model")
    page.goto(open_api + "/lead")
    page.wait_for_selector("#lead-fields .field")

    # One labelled control per field of the schema, required ones marked.
    names = page.eval_on_selector_all(
        "#lead-fields .field", "fields => fields.map(f => f.dataset.field)"
    )
    assert names == [model["id_field"], *(f["name"] for f in model["fields"])]
    spec_of = {f["name"]: (i, f) for i, f in enumerate(model["fields"])}
    index, source = spec_of["lead_source"]
    options = page.eval_on_selector_all(
        f"#f-{index} option", "options => options.map(o => o.value)"
    )
    assert options == ["", *source["known_categories"], "__other__"]
    assert len(source["known_categories"]) >= 5
    for name, (i, spec) in spec_of.items():
        label = page.locator(f"label[for='f-{i}']")
        assert label.count() == 1, name
        assert (label.locator(".required").count() == 1) == spec["required"], name
        kind = page.get_attribute(f"#f-{i}", "type")
        if spec["role"] == "numeric":
            assert kind == "number", name
        elif spec["role"] == "datetime":
            assert kind == "datetime-local", name

    # A lead whose lead source is a category the model never saw goes through "Other".
    record = _lead_record(new_leads, 0)
    record["lead_source"] = "Podcast"
    _fill_lead(page, model, record)
    page.click("#score-button")
    page.wait_for_selector("#result:not([hidden])")
    shown = float(page.get_attribute("#probability-value", "value") or "nan")
    body = {k: v for k, v in _json_ready(record).items() if k in _form_fields(model)}
    api = call(open_api, "POST", "/v1/leads/score", body)
    assert shown == api["probability"]
    assert page.inner_text("#score") == str(api["score"])
    assert page.inner_text("#grade") == api["grade"]
    assert page.inner_text("#is-mql > span:first-child") == ("Yes" if api["is_mql"] else "No")
    reasons = page.inner_text("#reasons-for") + page.inner_text("#reasons-against")
    for reason in api["reasons"]["for"] + api["reasons"]["against"]:
        assert reason["text"] in reasons
    page.screenshot(path=str(screenshots / "lead.png"), full_page=True)

    # Wrong values: the API's field-level problems appear next to their fields (a date too,
    # when the model reads one: the lead's creation time may be only a split time).
    time_index, _ = spec_of["time_on_site_sec"]
    dates = [name for name, (_, spec) in spec_of.items() if spec["role"] == "datetime"]
    page.fill(f"#f-{time_index}", "")
    if dates:
        date_index, _ = spec_of[dates[0]]
        page.fill(f"#f-{date_index}", "1500-01-01T10:00:00")
    page.click("#score-button")
    expect(page.locator(f"#f-{time_index}-error")).to_contain_text("required")
    assert page.get_attribute(f"#f-{time_index}", "aria-invalid") == "true"
    if dates:
        assert "1678" in page.inner_text(f"#f-{date_index}-error")
        assert page.get_attribute(f"#f-{date_index}", "aria-invalid") == "true"
    other_errors = [
        page.inner_text(f"#f-{i}-error")
        for name, (i, _) in spec_of.items()
        if name not in ("time_on_site_sec", *dates[:1])
    ]
    assert not any(other_errors)
    assert page.is_hidden("#result")
    tab.assert_no_script_errors(answered=(422,))


def _form_fields(model: dict[str, Any]) -> set[str]:
    return {model["id_field"], *(f["name"] for f in model["fields"])}


# --------------------------------------------------------------------------- the MQL line


def _share_text(share: float) -> str:
    return f"{share * 100:.1f} %"


def test_policy_page_previews_a_min_precision_policy_without_saving(
    tab: Tab, phone: Tab, open_api: str, screenshots: Path
) -> None:
    page = tab.page
    current = call(open_api, "GET", "/v1/mql-policy")
    page.goto(open_api + "/policy")
    expect(page.locator("#policy-sentence")).to_have_text(current["sentence"])
    assert page.inner_text("#policy-volume").startswith(
        _share_text(current["expected"]["mql_share"])
    )
    page.select_option("#sim-kind", "min_precision")
    page.fill("#sim-min_precision", "60 %")
    page.fill("#sim-leads_per_week", "1500")
    page.click("#simulate-button")
    page.wait_for_selector("#simulation:not([hidden])")
    body = {"kind": "min_precision", "min_precision": 0.6, "leads_per_week": 1500}
    expected = call(open_api, "POST", "/v1/mql-policy/simulate", body)
    proposed = expected["proposed"]
    expect(page.locator("#sim-sentence")).to_have_text(expected["sentence"])
    assert page.inner_text("#sim-moved-mql_share") == _share_text(proposed["mql_share"])
    assert page.inner_text("#sim-now-mql_share") == _share_text(expected["current"]["mql_share"])
    # MQLs a week and the expected conversion, each with its interval.
    weekly = page.inner_text("#sim-weekly")
    low, high = (share * 1500 for share in proposed["intervals"]["mql_share"])
    assert f"{round(low):,}" in weekly and f"{round(high):,}" in weekly
    precision = page.inner_text("#sim-precision")
    assert precision.startswith(_share_text(proposed["precision"]))
    assert "interval" in precision
    # The line's score is the score of the first lead that is an MQL: numpy's rounding.
    line_score = int(np.rint(proposed["cutoff"] * 100))
    assert f"MQLs score {line_score} and up" in page.inner_text("#sim-line")
    _charts_drawn(page, "sim-gains")
    assert page.locator("#sim-gains g.trace").count() == 4  # gains, random, now, previewed
    assert_fits_the_width(page)
    page.screenshot(path=str(screenshots / "policy-desktop.png"), full_page=True)
    # Nothing was saved.
    assert call(open_api, "GET", "/v1/mql-policy")["version"] == current["version"]

    phone.page.goto(open_api + "/policy")
    expect(phone.page.locator("#policy-sentence")).to_have_text(current["sentence"])
    phone.page.click("[data-shift='5']")
    phone.page.wait_for_selector("#simulation:not([hidden])")
    _charts_drawn(phone.page, "sim-gains")
    assert_fits_the_width(phone.page)
    phone.page.screenshot(path=str(screenshots / "policy-phone.png"), full_page=True)
    tab.assert_no_script_errors()
    phone.assert_no_script_errors()


@pytest.mark.parametrize(
    ("typed", "hint"),
    [("0.7", "looks like a share: enter 70"), ("170", "from 0 to 100"), ("lots", "such as 70")],
)
def test_policy_page_refuses_a_share_typed_into_a_percent_box(
    tab: Tab, open_api: str, typed: str, hint: str
) -> None:
    page = tab.page
    page.goto(open_api + "/policy")
    page.select_option("#sim-kind", "min_recall")
    page.fill("#sim-min_recall", typed)
    page.click("#simulate-button")
    expect(page.locator("#sim-min_recall-error")).to_contain_text(hint)
    assert page.get_attribute("#sim-min_recall", "aria-invalid") == "true"
    assert page.is_hidden("#simulation")
    page.fill("#sim-min_recall", "70")
    page.click("#simulate-button")
    page.wait_for_selector("#simulation:not([hidden])")
    assert page.inner_text("#sim-min_recall-error") == ""
    tab.assert_no_script_errors()


def test_policy_page_saves_with_confirmation_and_a_reason(
    tab: Tab, open_api: str, screenshots: Path
) -> None:
    page = tab.page
    before = call(open_api, "GET", "/v1/mql-policy")
    page.goto(open_api + "/policy")
    expect(page.locator("#policy-sentence")).to_have_text(before["sentence"])
    page.select_option("#sim-kind", "capacity")
    page.fill("#sim-per_week", "300")
    page.fill("#sim-leads_per_week", "1500")
    assert page.input_value("#sim-exploration_share") == "0 %"  # the share in force
    page.fill("#sim-exploration_share", "5 %")
    page.click("#simulate-button")
    page.wait_for_selector("#simulation:not([hidden])")
    expect(page.locator("#save-button")).to_be_enabled()
    page.click("#save-button")
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    change = page.inner_text("#confirm-change")
    expected = call(
        open_api,
        "POST",
        "/v1/mql-policy/simulate",
        {"kind": "capacity", "per_week": 300, "leads_per_week": 1500, "exploration_share": 0.05},
    )
    expect(page.locator("#sim-exploration")).to_have_text(expected["exploration"]["sentence"])
    assert _share_text(expected["current"]["cutoff"]) in change
    assert _share_text(expected["proposed"]["cutoff"]) in change
    assert _share_text(expected["proposed"]["mql_share"]) in change
    assert _share_text(expected["proposed"]["precision"]) in change
    page.screenshot(path=str(screenshots / "policy-confirm-desktop.png"))
    # No reason, no save.
    page.fill("#confirm-set_by", "Page test")
    page.click("#confirm-save")
    expect(page.locator("#confirm-reason-error")).to_contain_text("why")
    assert call(open_api, "GET", "/v1/mql-policy")["version"] == before["version"]
    # Cancel keeps everything as it was; confirming with a reason stores a version.
    page.click("#confirm-cancel")
    expect(dialog).to_be_hidden()
    assert call(open_api, "GET", "/v1/mql-policy")["version"] == before["version"]
    page.click("#save-button")
    page.fill("#confirm-set_by", "Page test")
    page.fill("#confirm-reason", "sales can work 300 a week")
    page.click("#confirm-save")
    expect(page.locator("#set-status")).to_contain_text("Stored as version")
    stored = call(open_api, "GET", "/v1/mql-policy")
    assert stored["kind"] == "capacity" and stored["version"] != before["version"]
    assert stored["exploration_share"] == 0.05
    expect(page.locator("#set-status")).to_have_text(f"Stored as version {stored['version']}.")
    expect(page.locator("#policy-sentence")).to_have_text(stored["sentence"])
    expect(page.locator("#history tbody")).to_contain_text("sales can work 300 a week")
    assert "Page test" in page.inner_text("#history tbody")
    tab.assert_no_script_errors()


# --------------------------------------------------------------------------- API keys


def test_pages_ask_for_a_key_once_when_the_api_needs_one(tab: Tab, keyed_api: str) -> None:
    page = tab.page
    with pytest.raises(urllib.error.HTTPError) as refused:
        call(keyed_api, "GET", "/v1/model")
    assert refused.value.code == 401

    response = page.goto(keyed_api + "/lead")
    assert response is not None and response.ok  # the page itself needs no key
    dialog = page.locator("#key-dialog")
    dialog.wait_for(state="visible")
    page.fill("#key-input", "not-the-key")
    page.click("#key-submit")
    expect(page.locator("#key-reason")).to_contain_text("refused")
    page.fill("#key-input", SCORER_KEY)
    page.click("#key-submit")
    page.wait_for_selector("#lead-fields select")
    assert dialog.is_hidden()

    # With a scorer key the policy page says why it cannot save, before any click; a new key
    # keeps what was typed.
    page.goto(keyed_api + "/policy")
    page.select_option("#sim-kind", "min_precision")
    page.fill("#sim-min_precision", "65")
    page.click("#simulate-button")
    page.wait_for_selector("#simulation:not([hidden])")
    expect(page.locator("#save-why")).to_contain_text("needs an admin key")
    assert page.is_disabled("#save-button")
    page.click("#key-button")
    page.fill("#key-input", SCORER_KEY)
    page.click("#key-submit")
    expect(page.locator("#save-why")).to_contain_text("scorer")
    assert page.input_value("#sim-min_precision") == "65"
    assert page.input_value("#sim-kind") == "min_precision"

    # The key is kept for the tab: another page works without asking again.
    page.goto(keyed_api + "/")
    expect(page.locator("#field-list")).to_contain_text("lead_source")
    assert dialog.is_hidden()
    assert page.is_visible("#key-button")
    tab.assert_no_script_errors(answered=(401,))


# --------------------------------------------------------------------------- the model page


def _charts_drawn(page: Any, *ids: str) -> None:
    """Each chart is drawn by plotly (its SVG holds plotted traces), not an empty box."""
    for chart in ids:
        expect(page.locator(f"#{chart}[data-drawn]")).to_have_count(1)
        assert page.locator(f"#{chart} svg.main-svg g.trace").count() >= 1, chart


def test_model_page_shows_the_version_metrics_charts_and_history(
    tab: Tab, phone: Tab, open_api: str, trained: TrainedModel, screenshots: Path
) -> None:
    report = call(open_api, "GET", "/v1/model/report")
    assert report["version"] == trained.version
    for page, width in ((tab.page, "desktop"), (phone.page, "phone")):
        page.goto(open_api + "/model")
        expect(page.locator("#fact-version")).to_have_text(trained.version)
        _charts_drawn(page, "gains-chart", "calibration-chart")
        assert_fits_the_width(page)
        page.screenshot(path=str(screenshots / f"model-{width}.png"), full_page=True)
    page = tab.page
    assert "champion" in page.inner_text("#fact-aliases")
    assert trained.model_name in page.inner_text("#model-sentence")
    # Every metric with its one-line meaning, as the API reports it.
    shown = page.eval_on_selector_all(
        "#metrics tbody tr", "rows => rows.map(r => [r.dataset.metric, r.cells[1].innerText])"
    )
    assert [name for name, _ in shown] == [m["name"] for m in report["metrics"]]
    roc = next(m for m in report["metrics"] if m["name"] == "roc_auc")
    assert dict(shown)["roc_auc"] == f"{roc['value']:.3f}"
    assert "coin toss" in page.inner_text("#metrics")
    # Drivers with direction; leaks left out with their evidence; the version in the history.
    drivers = page.inner_text("#drivers tbody")
    assert report["drivers"][0]["label"] in drivers
    assert "raise" in drivers
    columns = page.inner_text("#columns tbody")
    assert "sales_status" in columns and "gives the outcome away" in columns
    assert "Closed - Won" in columns
    expect(page.locator(f"#versions tbody tr[data-version='{trained.version}']")).to_be_visible()
    assert f"{roc['value']:.3f}" in page.inner_text("#versions tbody")
    tab.assert_no_script_errors()
    phone.assert_no_script_errors()


def test_the_charting_library_is_served_by_the_app(open_api: str) -> None:
    with urllib.request.urlopen(open_api + "/vendor/plotly.min.js", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/javascript")
        head = response.read(400).decode()
    assert "plotly.js" in head
    with urllib.request.urlopen(open_api + "/model", timeout=30) as response:
        html = response.read().decode()
    assert 'src="/vendor/plotly.min.js"' in html
    assert "://" not in html.split("<body")[0]  # nothing from another site in the head


# --------------------------------------------------------------------------- monitoring


def test_monitoring_page_shows_the_verdict_and_says_no_outcomes_are_recorded(
    tab: Tab, phone: Tab, open_api: str, tmp_path: Path, screenshots: Path
) -> None:
    # Scores in the ledger (the batch route records them), but no outcome reported yet.
    upload = tmp_path / "leads.csv"
    export_with_outcomes(60, seed=14).to_csv(upload, index=False)
    call(open_api, "POST", "/v1/leads/score-batch", upload.read_text())
    # The ledger writes behind the answers (earlier tests' uploads too): wait until it settles.
    deadline = time.monotonic() + 60
    report = call(open_api, "GET", "/v1/monitoring")
    while time.monotonic() < deadline:
        time.sleep(1.0)
        again = call(open_api, "GET", "/v1/monitoring")
        if again["scored"] == report["scored"] > 0:
            break
        report = again
    assert report["scored"] > 0
    for page, width in ((tab.page, "desktop"), (phone.page, "phone")):
        page.goto(open_api + "/monitoring")
        expect(page.locator("#verdict")).to_have_attribute("data-verdict", report["verdict"])
        expect(page.locator("#no-outcomes")).to_contain_text("No outcomes have been recorded")
        # Healthy on volume and drift is not the promise kept: the badge says which it is.
        assert report["promise_checked"] is False
        expect(page.locator("#verdict")).to_have_attribute("data-promise-checked", "false")
        if report["verdict"] == "healthy":
            expect(page.locator("#verdict .verdict-badge")).to_have_text("Healthy so far")
            expect(page.locator("#promise-unchecked")).to_contain_text("not checked yet")
        _charts_drawn(page, "grades-chart", "drift-chart")
        assert_fits_the_width(page)
        page.screenshot(path=str(screenshots / f"monitoring-{width}.png"), full_page=True)
    page = tab.page
    assert page.inner_text("#verdict-reason") == report["reason"]
    assert "unobserved" in page.inner_text("#groups tbody")
    assert len(report["findings"]) == page.locator("#findings li").count()
    unjudged = sum(not f["judged"] for f in report["findings"])
    assert unjudged > 0 and page.locator("#findings .verdict-unjudged").count() == unjudged
    tab.assert_no_script_errors()
    phone.assert_no_script_errors()
