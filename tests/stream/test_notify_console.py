"""The notifier's web console, in a real headless Chromium, against a running notifier
fed through the embedded broker: it shows the alerts and their groups, names the cause
of an inhibited one, silences one from its labels, acknowledges another, expires the
silence, and updates without a reload."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from detectors.base import Finding
from stream.lifecycle import Lifecycle
from stream.notify.console import render
from stream.worker.recent_series import RecentSeries, pending_alerts, series_body
from tests.connectors.notify_fakes import make_alert
from tests.connectors.notify_harness import API_TOKEN, config_for, publish, running, settings_for

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"


def test_the_page_loads_nothing_from_elsewhere() -> None:
    page = render()
    assert page.startswith("<!doctype html>")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    assert "innerHTML" not in page  # API text goes in as text, never as markup


def _finding(ts: float, observed: float) -> Finding:
    return Finding(
        "ewma", "latency.tpot_p99", {"model": "llama-8b"}, ts, 0.9, True, observed, 1.0, 0.6, 1.4
    )


def _worker_app() -> web.Application:
    """A worker's /api/pending and /api/series (the functions its pages call), holding one
    pending alert with its points, and points for the firing alert fpslow."""
    lc, rs = Lifecycle(), RecentSeries()
    findings = [_finding(1000.0 + i, 1.0 + 0.2 * i) for i in range(12)]
    lc.observe(findings, findings[-1].ts)
    rs.record(findings)
    slow = [
        {"ts": 900.0 + i, "observed": 0.9 + 0.1 * i, "expected": 0.9, "lower": 0.7, "upper": 1.1}
        for i in range(20)
    ]

    async def pending(request: web.Request) -> web.Response:
        return web.json_response(pending_alerts({0: lc}))

    async def series(request: web.Request) -> web.Response:
        fp = request.query.get("fingerprint", "")
        if fp == "fpslow":
            return web.json_response({"fingerprint": fp, "points": slow})
        status, body = series_body(rs, fp)
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_get("/api/pending", pending)
    app.router.add_get("/api/series", series)
    return app


@pytest.fixture
def notifier(embedded_broker: str, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A real notifier (consumer group, silences topic, API) on a thread of its own."""
    settings = settings_for(embedded_broker, tmp_path)
    config = config_for(
        [{"name": "console", "type": "console", "path": str(tmp_path / "console.log")}],
        {"receiver": "console"},
        # An XID error on a host explains that host's latency: the console names the cause.
        inhibit_rules=[
            {
                "source_matchers": ['alertname="gpu.xid"'],
                "target_matchers": ['alertname=~"latency.*"'],
                "equal": ["host"],
            }
        ],
    )
    started: list[str] = []
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        worker = web.AppRunner(_worker_app(), access_log=None)
        await worker.setup()
        await web.TCPSite(worker, "127.0.0.1", 0).start()
        worker_url = f"http://127.0.0.1:{worker.addresses[0][1]}"
        try:
            async with running(
                settings.model_copy(update={"worker_url": worker_url}), config
            ) as svc:
                started.append(svc.url)
                ready.set()
                await stop.wait()
        finally:
            await worker.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(60), "the notifier did not start"
    try:
        yield started[0], settings
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _until(check: Any, what: str, limit_s: float = 30.0) -> Any:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert binary and driver_path, "chromium and chromedriver: run scripts/deploy-check-deps.sh"
    options.binary_location = binary
    return webdriver.Chrome(service=Service(driver_path), options=options)


def test_console_in_a_real_browser(
    embedded_broker: str,
    notifier: tuple[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    url, settings = notifier
    alerts = [
        make_alert(alert_id="a-slow", fingerprint="fpslow", title="p99 latency up on llama-70b"),
        make_alert(
            alert_id="a-err",
            fingerprint="fperr",
            title="error rate up on llama-8b",
            labels={"model": "llama-8b", "gateway": "gw-us-1", "host": "node-2"},
        ),
    ]
    node9 = {"host": "node-9", "gateway": "gw-eu-1"}
    alerts += [
        make_alert(
            alert_id="a-xid",
            fingerprint="fpxid",
            title="gpu.xid on node-9",
            labels={"alertname": "gpu.xid", **node9},
        ),
        make_alert(
            alert_id="a-lat",
            fingerprint="fplat",
            title="latency.ttft_p99 on node-9",
            labels={"alertname": "latency.ttft_p99", "model": "llama-70b", **node9},
        ),
    ]
    publish(embedded_broker, settings.topic_alerts, alerts)
    _until(lambda: len(_get(f"{url}/api/alerts")) == 4, "the notifier to hold the 4 alerts")

    browser = _browser()
    try:
        browser.get(f"{url}/")

        def state(fp: str) -> str | None:
            try:  # a redraw may replace the row between finding and reading it
                rows = browser.find_elements(By.ID, f"alert-{fp}")
                return rows[0].get_attribute("data-state") if rows else None
            except StaleElementReferenceException:
                return None

        _until(lambda: state("fpslow") == "firing" and state("fperr") == "firing", "2 firing")
        # The pipeline's view: the latency alert on node-9 is held by the XID there.
        _until(lambda: state("fplat") == "inhibited", "the latency alert to show inhibited")
        assert state("fpxid") == "firing"
        cause = browser.find_element(By.CSS_SELECTOR, "#alert-fplat a.cause")
        assert cause.text == "gpu.xid" and cause.get_attribute("href").endswith("#alert-fpxid")
        assert "host=node-9" in browser.find_element(By.ID, "alert-fplat").text
        groups = browser.find_elements(By.CSS_SELECTOR, "#groups tr.group")
        assert len(groups) >= 3 and any("1 inhibited" in g.text for g in groups)
        row = browser.find_element(By.ID, "alert-fpslow")
        assert "observed 2.400 vs expected 0.9000" in row.text
        # From the worker (through the notifier): the pending alert, and charts of the
        # series it holds points for; none for an alert whose series it does not hold.
        pend = _until(
            lambda: browser.find_elements(By.CSS_SELECTOR, "#pending tr.alert"), "a pending row"
        )
        assert len(pend) == 1 and pend[0].get_attribute("data-state") == "pending"
        assert "latency.tpot_p99" in pend[0].text and "model=llama-8b" in pend[0].text
        assert pend[0].find_elements(By.CSS_SELECTOR, "svg.spark polyline.obs")
        spark = _until(
            lambda: browser.find_elements(By.CSS_SELECTOR, "#alert-fpslow svg.spark"), "a chart"
        )
        assert spark[0].find_elements(By.CSS_SELECTOR, "polygon.band")
        assert not browser.find_elements(By.CSS_SELECTOR, "#alert-fperr svg.spark")
        assert "EWMA z-score 6.1 over 5 min" in row.text  # the explanation
        # Live: an alert published now shows up without a reload (the mark survives).
        browser.execute_script("window.llmwatchTestMark = 1")
        late = make_alert(
            alert_id="a-late",
            fingerprint="fplate",
            title="error rate up on qwen-7b",
            labels={"model": "qwen-7b", "gateway": "gw-ap-1", "host": "node-5"},
        )
        publish(embedded_broker, settings.topic_alerts, [late])
        _until(lambda: state("fplate") == "firing", "the late alert to appear by itself")
        assert browser.execute_script("return window.llmwatchTestMark") == 1
        token = browser.find_element(By.ID, "token")
        token.send_keys(API_TOKEN)
        browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", token)

        # A silence prefilled from the alert's labels: it matches that alert only.
        form = browser.find_element(By.CSS_SELECTOR, "#alert-fpslow form.silence-form")
        prefilled = form.find_element(By.NAME, "matchers").get_attribute("value")
        assert 'model="llama-70b"' in prefilled and 'instance="fpslow"' in prefilled
        form.find_element(By.CSS_SELECTOR, "button").click()
        _until(lambda: state("fpslow") == "silenced", "the alert to show silenced")
        assert state("fperr") == "firing"
        silences = _get(f"{url}/api/silences")
        assert len(silences) == 1 and 'instance="fpslow"' in silences[0]["matchers"]

        ack = browser.find_element(By.CSS_SELECTOR, "#alert-fperr form.ack-form")
        ack.find_element(By.NAME, "ack-comment").send_keys("looking at node-2")
        ack.find_element(By.CSS_SELECTOR, "button").click()
        _until(lambda: state("fperr") == "acknowledged", "the alert to show acknowledged")
        assert "looking at node-2" in browser.find_element(By.ID, "alert-fperr").text
        # Kept under build/ (ignored by git; pytest's tmp dirs keep only the last 3 runs)
        # and named on the terminal even when the test passes, for the test log.
        shot = ARTIFACTS / "console.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        with capsys.disabled():
            print(f"\nconsole screenshot: {shot}")

        browser.find_element(By.CSS_SELECTOR, "tr.silence button.expire").click()
        _until(lambda: state("fpslow") == "firing", "the alert to fire again once expired")
        assert "cannot read" not in browser.find_element(By.ID, "status").text
    finally:
        browser.quit()
