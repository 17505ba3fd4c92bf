"""GET /ui in a real browser (Debian's chromium, driven by Playwright) over real replicas.

Every state the page is tested in is also saved as a screenshot under the pytest temp dir
(``ui-screenshots``), to look at.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli import main as streamflow
from model_server.schemas import EXAMPLE_CUSTOMER
from tests.integration.procs import Process

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")

CHROMIUM = "/usr/bin/chromium"  # Debian's package (make tools installs it); no browser download
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 400, "height": 800}
UPDATE_S = 3.0  # the page refreshes every second; a change must show within this

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} not found: `make tools` installs Debian's chromium (as root)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ui-screenshots")


class StatusPage:
    """One tab on a gateway's /ui that records every console error and uncaught exception."""

    def __init__(self, browser: Any, url: str, shots: Path, viewport: dict[str, int]) -> None:
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.shots = shots
        self.page.goto(f"{url}/ui")
        self.page.wait_for_selector("#versions-table tbody tr")
        # Gone if the page reloads: a change must show in the same document.
        self.page.evaluate("window.sameDocument = true")

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text()

    def until(self, selector: str, expected: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + UPDATE_S
        while True:
            shown = self.text(selector)
            if expected(shown):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: {selector} shows {shown!r} after {UPDATE_S} s")
            time.sleep(0.1)

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        assert self.page.evaluate("window.sameDocument === true"), "the page reloaded"
        # A part the page could not draw is reported there, not in the console.
        assert self.text("#connection").startswith("✔ live"), self.text("#connection")
        self.context.close()
        assert self.errors == [], self.errors


@pytest.fixture
def open_page(browser: Any, shots: Path) -> Iterator[Callable[..., StatusPage]]:
    opened: list[StatusPage] = []

    def open_(url: str, viewport: dict[str, int] = WIDE) -> StatusPage:
        page = StatusPage(browser, url, shots, viewport)
        opened.append(page)
        return page

    yield open_
    for page in opened:
        page.close()


def url_of(proc: Process) -> str:
    return f"http://{proc.address}"


def traffic(url: str, count: int, customers: list[dict[str, Any]] | None = None) -> None:
    """``count`` predictions, one at a time (sync: Playwright's sync API owns this thread's
    event loop, so asyncio.run cannot run here)."""
    with httpx.Client(timeout=10) as client:
        for i in range(count):
            customer = customers[i] if customers else EXAMPLE_CUSTOMER
            response = client.post(f"{url}/predict", json=customer)
            assert response.status_code == 200, response.text


def weight_cell(version: str) -> str:
    return f'#versions-table tr[data-version="{version}"] [data-field="configured_percent"]'


def test_the_page_shows_the_routing_in_effect_and_follows_set_weights(
    start_gateway: Callable[..., tuple[Process, Path]], open_page: Callable[..., StatusPage]
) -> None:
    gw, routing_file = start_gateway(weights={"v2.3.1": 90, "v2.4.0": 10})
    traffic(url_of(gw), 200)
    page = open_page(url_of(gw))
    routing = httpx.get(f"{url_of(gw)}/routing").json()
    for version, weight in routing["weights"].items():
        assert page.text(weight_cell(version)) == f"{weight} %"
    assert page.text('[data-field="revision"]') == routing["revision"]
    assert "nothing here changes routing" in page.text(".readonly")
    page.until(weight_cell("v2.3.1"), lambda t: t == "90 %", "configured share")
    page.until(
        '#versions-table tr[data-version="v2.3.1"] [data-field="rps"]',
        lambda t: t not in ("–", "0.00"),
        "requests/s once traffic was served",
    )
    page.screenshot("1-canary-90-10")

    assert streamflow(["set-weights", "v2.4.0=50", "--file", str(routing_file)]) == 0
    page.until(weight_cell("v2.4.0"), lambda t: t == "50 %", "the new weight")
    assert page.text(weight_cell("v2.3.1")) == "50 %"
    page.until('[data-field="weights"]', lambda t: t == "v2.3.1 50 % · v2.4.0 50 %", "weights")
    revision = httpx.get(f"{url_of(gw)}/routing").json()["revision"]
    assert revision != routing["revision"]
    page.until('[data-field="revision"]', lambda t: t == revision, "the new revision")
    page.screenshot("2-after-set-weights-50")


def test_an_invalid_edit_shows_its_error_in_red_with_key_and_line(
    start_gateway: Callable[..., tuple[Process, Path]], open_page: Callable[..., StatusPage]
) -> None:
    gw, routing_file = start_gateway(weights={"v2.3.1": 90, "v2.4.0": 10})
    page = open_page(url_of(gw))
    assert not page.page.locator("#reload-error").is_visible()
    text = routing_file.read_text().replace("v2.4.0: 10}", "v2.4.0: 8}")
    routing_file.write_text(text)
    shown = page.until("#reload-error", lambda t: "canary.weights" in t, "the reload error")
    assert re.search(r"sum to 98, must be 100 \(line \d+\)", shown), shown
    assert "NOT in effect" in shown
    colour = page.page.locator("#reload-error").evaluate("e => getComputedStyle(e).color")
    assert colour == "rgb(179, 38, 30)"  # the page's red
    assert page.text(weight_cell("v2.4.0")) == "10 %"  # the last good config still serves
    page.screenshot("3-reload-error")


def test_the_page_fits_a_narrow_window(
    start_gateway: Callable[..., tuple[Process, Path]], open_page: Callable[..., StatusPage]
) -> None:
    gw, _ = start_gateway(weights={"v2.3.1": 90, "v2.4.0": 10})
    traffic(url_of(gw), 50)
    page = open_page(url_of(gw), NARROW)
    page.until(weight_cell("v2.4.0"), lambda t: t == "10 %", "configured share")
    # Wide tables scroll inside their own box; the page itself never scrolls sideways.
    width = page.page.evaluate("document.documentElement.scrollWidth")
    assert width <= NARROW["width"], f"the page is {width} px wide in a 400 px window"
    page.screenshot("4-narrow-400px")


PLAN = {
    "candidate": "v2.4.0",
    "strategy": "canary",
    "steps": [5, 25, 50, 100],
    "interval": "1m",
    "thresholds": {"error_rate": 0.01, "p99_ratio": 1.5},
}


def test_a_rollout_plan_and_its_decisions_are_shown(
    start_gateway: Callable[..., tuple[Process, Path]], open_page: Callable[..., StatusPage]
) -> None:
    # The page's two hooks driven directly, for the plan's wording at every step (the test
    # below takes the real path through routing.yaml and the controller's log).
    gw, _ = start_gateway(weights={"v2.3.1": 75, "v2.4.0": 25})
    page = open_page(url_of(gw))
    assert "No rollout plan" in page.text("#rollout-plan")
    assert "No rollout decisions" in page.text("#rollout-log")
    shown = page.page.evaluate(
        """([plan, routing, log]) => {
            renderRolloutPlan(plan, routing);
            renderRolloutLog(log);
            return [document.querySelector("#rollout-plan").innerText,
                    document.querySelector("#rollout-log").innerText];
        }""",
        [
            PLAN,
            {"weights": {"v2.3.1": 75, "v2.4.0": 25}},
            [
                {"at": "10:00:00", "verdict": "advance", "reason": "error_rate 0.002 <= 0.01"},
                {"at": "10:01:00", "verdict": "hold", "reason": "120 of 300 requests"},
            ],
        ],
    )
    plan, log = shown
    assert "step 2 of 4: 25 %" in plan
    assert "50 % after 1m if the checks pass" in plan
    assert log.index("hold") < log.index("advance")  # newest first
    assert "120 of 300 requests" in log
    page.screenshot("5-rollout-plan")
    at_last = page.page.evaluate(
        """(plan) => { renderRolloutPlan(plan, {weights: {"v2.4.0": 100}});
                      return document.querySelector("#rollout-plan").innerText; }""",
        PLAN,
    )
    assert "step 4 of 4" in at_last and "promote" in at_last


def test_a_live_rollout_shows_its_plan_and_the_bake_from_the_files(
    start_gateway: Callable[..., tuple[Process, Path]], open_page: Callable[..., StatusPage]
) -> None:
    # The real path: routing.yaml's rollout section through /routing, the controller's log
    # (written as the controller writes it) through /stats.
    from rollout.log import DecisionLog, default_log_path

    gw, routing = start_gateway(weights={"v2.3.1": 100, "v2.4.0": 0})
    page = open_page(url_of(gw))
    assert "No rollout plan" in page.text("#rollout-plan")
    routing.write_text(
        routing.read_text()
        + "rollout: {candidate: v2.4.0, steps: [10, 100], interval: 30s,\n"
        + "          shadow_bake: {percent: 50, duration: 10s}}\n"
    )
    log = DecisionLog(default_log_path(routing))
    bake = {"by": "controller", "step": -1, "weight": 0, "phase": "shadow_bake"}
    log.append({**bake, "action": "start", "reason": "rollout of v2.4.0 begins with a bake"})
    log.append({**bake, "verdict": "WAITING_FOR_SAMPLES", "action": "hold",
                "reason": "90 shadow comparisons; 300 before any verdict"})  # fmt: skip
    plan = page.until("#rollout-plan", lambda text: "10 %" in text, "the plan from routing.yaml")
    assert "100 %" in plan
    shown = page.until("#rollout-log", lambda text: "90 shadow" in text, "the controller's log")
    assert "shadow bake" in shown and "step -1" not in shown
    page.screenshot("5-rollout-bake")

    # A step halted at its horizon: at the top of the page and in a red box, with its evidence.
    step = {"by": "controller", "step": 0, "weight": 10, "phase": "step"}
    check = {"name": "tier_mix", "status": "INCONCLUSIVE", "value": 0.11, "threshold": 0.1,
             "detail": "11.0% of customers in another tier (between 6.0% and 16.0%)"}  # fmt: skip
    log.append({**step, "verdict": "HALTED", "action": "halt", "checks": [check],
                "reason": "step 0 (10%) reached its horizon after 600s undecided"})  # fmt: skip
    banner = page.until("#halted-banner", lambda text: "halted" in text, "the halt banner")
    assert "step 1 (10%)" in banner  # counted from 1, as everywhere a person reads it
    box = page.text("#rollout-halted")
    assert "ROLLOUT HALTED" in box and "resume --accept" in box and "abort" in box
    assert "between 6.0% and 16.0%" in page.text("#rollout-log")
    page.screenshot("5-rollout-halted")


def shadow_customers(count: int) -> list[dict[str, Any]]:
    """Customers spread over the feature space, so the two versions sometimes disagree."""
    contracts = ["month-to-month", "one-year", "two-year"]
    services = ["dsl", "fiber_optic", "none"]
    return [
        {
            **EXAMPLE_CUSTOMER,
            "tenure": (i * 7) % 72,
            "monthly_charges": 20.0 + (i * 13) % 100,
            "total_charges": 20.0 + (i * 37) % 5000,
            "contract_type": contracts[i % 3],
            "internet_service": services[(i // 3) % 3],
            "num_support_tickets": i % 6,
        }
        for i in range(count)
    ]


def test_with_shadowing_on_the_agreement_shown_equals_the_shadow_report(
    start_gateway: Callable[..., tuple[Process, Path]], open_page: Callable[..., StatusPage]
) -> None:
    gw, _ = start_gateway(
        weights={"v2.3.1": 100, "v2.4.0": 0}, shadow={"version": "v2.4.0", "percent": 100}
    )
    sent = 120
    traffic(url_of(gw), sent, shadow_customers(sent))

    def report() -> dict[str, Any]:
        return httpx.get(f"{url_of(gw)}/shadow").json()

    deadline = time.monotonic() + 10
    while report()["pairs"][0]["compared"] < sent:  # copies finish after the client's answer
        assert time.monotonic() < deadline, report()
        time.sleep(0.2)
    pair = report()["pairs"][0]
    page = open_page(url_of(gw))
    pair_box = '[data-pair="v2.3.1-v2.4.0"]'
    agreement = f"{pair['tier_agreement']['percent']:.2f} %"
    page.until(f'{pair_box} [data-field="tier_agreement"]', lambda t: t == agreement, "agreement")
    for client, row in pair["tier_agreement"]["confusion"].items():
        for theirs, count in row.items():
            assert page.text(f'{pair_box} [data-cell="{client}-{theirs}"]') == str(count)
    psi = pair["psi"]
    assert page.text(f'{pair_box} [data-field="psi"]') == f"{psi['value']:.4f} ({psi['reading']})"
    assert page.text(f'{pair_box} [data-field="compared"]').startswith(f"{sent} requests")
    page.screenshot("6-shadow-on")


def test_the_quality_section_reads_quality_and_says_when_the_log_is_off(
    start_gateway: Callable[..., tuple[Process, Path]],
    open_page: Callable[..., StatusPage],
    tmp_path: Path,
) -> None:
    gw, _ = start_gateway(weights={"v2.3.1": 50, "v2.4.0": 50})
    page = open_page(url_of(gw))
    page.until('[data-field="quality_off"]', lambda t: "prediction log is off" in t, "off")

    token = "page-token"
    settings = {"prediction_log": 1, "data_dir": tmp_path / "data", "outcomes_token": token}
    gw, _ = start_gateway(weights={"v2.3.1": 50, "v2.4.0": 50}, settings=settings)
    url = url_of(gw)
    customers = shadow_customers(200)
    outcomes = []
    with httpx.Client(timeout=10) as client:
        for i, customer in enumerate(customers):
            answer = client.post(f"{url}/predict", json=customer)
            assert answer.status_code == 200, answer.text
            outcomes.append(
                {
                    "request_id": answer.headers["X-Request-Id"],
                    "churned": answer.json()["churn_probability"] > 0.3 or i % 7 == 0,
                    "observed_at": time.time(),
                }
            )
        time.sleep(0.5)  # one flush interval and more
        posted = client.post(
            f"{url}/outcomes", json=outcomes, headers={"Authorization": f"Bearer {token}"}
        )
        assert posted.status_code == 200, posted.text
        assert posted.json()["labelled"] == 200
    report = httpx.get(f"{url}/quality", timeout=30).json()
    assert report["comparison"]["unpaired"] is not None, report  # both versions served
    for viewport, name in ((WIDE, "9-quality"), (NARROW, "10-quality-400px")):
        page = open_page(url, viewport)
        for version, numbers in report["versions"].items():
            cell = f'#quality-table tr[data-version="{version}"] td:nth-child(2)'
            page.until(cell, lambda t, n=numbers: t == str(n["labelled"]), f"{version} labelled")
        assert page.page.locator("#reliability svg polyline").count() == len(report["versions"])
        assert "unpaired" in page.text('[data-field="quality_unpaired"]')
        width = page.page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], f"the page is {width} px wide"
        assert not page.errors, page.errors
        page.screenshot(name)


def until_or_say(page: StatusPage, *args: Any, url: str) -> str:
    try:
        return page.until(*args)
    except AssertionError as exc:
        shadow = httpx.get(f"{url}/shadow").json()
        raise AssertionError(f"{exc}; /shadow: {shadow}") from None


def too_wide(page: StatusPage) -> list[str]:
    """The elements reaching past the window's right edge (outside a scrolling box)."""
    return page.page.evaluate(
        """() => [...document.querySelectorAll("body *")]
            .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1
                    && !e.closest(".scroll"))
            .slice(0, 8)
            .map((e) => `${e.tagName}#${e.id}.${e.className} ${e.getBoundingClientRect().right}`)"""
    )


def test_the_verdict_line_in_every_state_at_both_widths(
    start_gateway: Callable[..., tuple[Process, Path]], open_page: Callable[..., StatusPage]
) -> None:
    """No plan, shadowing, a rollout in progress, rolled back, promoted: the page's first line
    says each in the gateway's words (the same /stats gives `streamflow status`), a finished
    rollout keeps its verdict, rollouts are divided, and 400 px never scrolls sideways."""
    from rollout.log import DecisionLog, default_log_path

    gw, routing = start_gateway(
        weights={"v2.3.1": 100, "v2.4.0": 0}, shadow={"version": "v2.4.0", "percent": 0}
    )
    url = url_of(gw)
    wide, narrow = open_page(url, WIDE), open_page(url, NARROW)
    shipped = routing.read_text()

    def shown(state: str, name: str, expect: Callable[[str], bool] = lambda _: True) -> str:
        words = ""
        for page in (wide, narrow):
            words = until_or_say(
                page,
                "#verdict",
                lambda text, p=page: (
                    p.page.locator("#verdict").get_attribute("data-state") == state and expect(text)
                ),
                f"the verdict in state {state}",
                url=url,
            )
            width = page.page.evaluate("document.documentElement.scrollWidth")
            assert width <= page.page.viewport_size["width"], (name, width, too_wide(page))
        wide.screenshot(f"verdict-{name}-1280")
        narrow.screenshot(f"verdict-{name}-400")
        # The gateway's own words, which `streamflow status` prints first.
        said = httpx.get(f"{url}/stats").json()["verdict"]["text"]
        # The same sentence (its numbers may move between two reads: a countdown, late rows).
        numbers = re.compile(r"\d+(\.\d+)?")
        assert numbers.sub("N", words.strip()) == numbers.sub("N", said), (words, said)
        return words

    said = shown("no_plan", "1-no-plan")
    assert said.startswith("no rollout: v2.3.1 100%")

    routing.write_text(shipped.replace("percent: 0}", "percent: 100}"))
    wide.until('[data-field="shadow"]', lambda t: "100" in t, "the shadow at 100%")
    traffic(url, 400, shadow_customers(400))
    # Judged once the comparison has the rows a bake needs: agreement and PSI against its bar.
    said = shown(
        "shadowing",
        "2-shadowing",
        lambda text: "a bake requires" in text or "a bake allows" in text,
    )
    assert "v2.4.0 shadowed at 100%" in said and "a bake" in said
    # Each version's offline quality from its replica's /metadata, and the candidate (the
    # shadowed v2.4.0) scored lower than stable on its holdout.
    offline = wide.text('[data-field="offline_AUC"]')
    assert re.search(r"v2\.3\.1 0\.\d{4} \(data streamflow-synthetic-", offline), offline
    warned = wide.until('[data-field="_offline"]', lambda t: "below stable" in t, "the warning")
    assert "v2.4.0's holdout AUC" in warned

    routing.write_text(
        shipped.replace("{v2.3.1: 100, v2.4.0: 0}", "{v2.3.1: 50, v2.4.0: 50}")
        + "rollout: {candidate: v2.4.0, steps: [10, 50, 100], interval: 30s}\n"
    )
    log = DecisionLog(default_log_path(routing))
    now = time.time()
    first = {"by": "controller", "plan": "aaaa11112222", "candidate": "v2.4.0", "phase": "step"}
    check = {"name": "error_rate", "status": "PASS", "detail": "0 errors in 410 vs 0 in 402"}
    log.append({**first, "step": 0, "weight": 10, "action": "start", "reason": "begins",
                "step_started": now - 50})  # fmt: skip
    log.append({**first, "step": 1, "weight": 50, "from_weight": 10, "action": "advance",
                "verdict": "PASS", "reason": "passed 10% for 30s", "step_started": now - 15,
                "checks": [check]})  # fmt: skip
    log.append({**first, "step": 1, "weight": 50, "action": "hold", "verdict": "PASS",
                "reason": "every check passed", "step_started": now - 15,
                "checks": [check]})  # fmt: skip
    said = shown("in_progress", "3-in-progress")
    assert re.match(r"v2\.4\.0 at 50% \(step 2 of 3\), every check passing, next step in", said)
    assert "step 2 (50%)" in wide.text("#rollout-log")  # the log counts as the plan does

    failed = {"name": "error_rate", "status": "FAIL", "detail": "12 errors in 80 vs 0 in 400"}
    log.append({**first, "step": 1, "weight": 50, "action": "rollback", "verdict": "FAIL",
                "reason": "failed 2 checks in a row", "checks": [failed]})  # fmt: skip
    routing.write_text(shipped)  # the controller removes the plan as it rolls back
    said = shown("rolled_back", "4-rolled-back")
    assert said.startswith("v2.4.0 rolled back at 50%: error rate")
    plan_box = wide.until("#rollout-plan", lambda t: "Last rollout" in t, "the last verdict")
    assert "rolled back at 50%" in plan_box
    assert "12 errors in 80" in wide.text("#rollout-log")  # its evidence stays

    # As the controller promotes: the candidate stable at 100, the plan gone.
    routing.write_text(
        shipped.replace("stable: v2.3.1", "stable: v2.4.0").replace(
            "{v2.3.1: 100, v2.4.0: 0}", "{v2.3.1: 0, v2.4.0: 100}"
        )
    )
    second = {**first, "plan": "bbbb33334444"}
    log.append({**second, "step": 0, "weight": 100, "action": "start", "reason": "begins"})
    log.append({**second, "step": 0, "weight": 100, "action": "promote", "verdict": "PASS",
                "reason": "v2.4.0 is now stable", "checks": [check]})  # fmt: skip
    said = shown("promoted", "5-promoted")
    assert said.startswith("v2.4.0 promoted: stable since")
    log_text = wide.text("#rollout-log")
    assert "latest rollout bbbb33334444" in log_text and "earlier rollout aaaa11112222" in log_text


def test_killing_a_replica_turns_its_row_unhealthy(
    start_gateway: Callable[..., tuple[Process, Path]],
    open_page: Callable[..., StatusPage],
    replicas: dict[str, Process],
) -> None:
    # Last in the module: the killed replica stays down for the rest of it.
    gw, _ = start_gateway(weights={"v2.3.1": 90, "v2.4.0": 10})
    page = open_page(url_of(gw))
    row = '#replicas-table tr[data-replica="http://model-v2-4-0-a:8000"] [data-field="state"]'
    assert page.text(row) == "✔ healthy"
    page.screenshot("7-all-healthy")
    victim = replicas["model-v2-4-0-a"]
    victim.signal(signal.SIGKILL)
    assert victim.popen is not None
    victim.popen.wait(5)
    page.until(row, lambda t: t == "✖ unhealthy", "the killed replica's health")
    other = '#replicas-table tr[data-replica="http://model-v2-3-1-a:8000"] [data-field="state"]'
    assert page.text(other) == "✔ healthy"
    page.screenshot("8-replica-killed")
