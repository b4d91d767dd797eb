"""The console in a real browser (Debian's Chromium driven by Playwright), against a real
`switchyard serve` with a mock upstream: sign in, create a key, use it with the official
OpenAI SDK, find the request in Generations and in the charts, revoke the key and see it
refused; the playground streams an answer with its cost. Forms are used through their
labels and the keyboard. Screenshots are kept as test artifacts (the path is printed).

Chromium is Debian's package (`make test` installs it when missing): this machine cannot
download a browser, so Playwright is pointed at /usr/bin/chromium. A missing browser
fails the test; it is never skipped.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.http import request
from tests.fixtures.mock_openai import MockOpenAI

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SWITCHYARD_ARTIFACTS", ROOT / "tmp" / "artifacts")) / "console"
MODEL = "mock/echo"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, str]]:
    mock = MockOpenAI().start()
    config = tmp_path_factory.mktemp("console") / "switchyard.yaml"
    config.write_text(
        f"""
providers:
  mock: {{kind: openai, base_url: "{mock.base_url}", api_key: upstream-secret}}
models:
  - id: {MODEL}
    endpoints:
      - {{provider: mock, model: echo, pricing: {{prompt: 0.000001, completion: 0.000002}}}}
"""
    )
    gateway = start_gateway(config, tmp_path_factory.mktemp("console-data"))
    try:
        yield gateway, (gateway.data_dir / "admin-key").read_text().strip()
    finally:
        gateway.stop()
        mock.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is missing: `make test` installs it (apt-get)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, console: tuple[Gateway, str]) -> Iterator[Page]:
    gateway, _ = console
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=gateway.http_url)
    opened = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # CSP violations and script errors land here. The browser also logs every
        # refused request; the test makes one on purpose (a wrong key: 401).
        if message.type == "error" and "status of 401" not in message.text:
            problems.append(message.text)

    opened.on("console", on_console)
    opened.on("pageerror", lambda error: problems.append(str(error)))
    yield opened
    context.close()
    assert problems == [], problems


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def sign_in(page: Page, gateway: Gateway, key: str) -> None:
    page.goto(gateway.http_url + "/ui")
    field = page.get_by_label("API key")
    expect(field).to_be_focused()  # the sign-in form takes the keyboard at once
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()


def every_control_is_labelled(page: Page) -> None:
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter((c) => !c.labels?.length && !c.getAttribute('aria-label'))
            .map((c) => c.name || c.outerHTML)"""
    )
    assert unlabelled == []


def test_sign_in_create_use_see_revoke(page: Page, console: tuple[Gateway, str]) -> None:
    gateway, admin = console
    print(f"artifacts: {ARTIFACTS}")

    # A wrong key is refused in words; the right one signs in with the keyboard alone.
    page.goto(gateway.http_url + "/ui")
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.press("Shift+Tab")  # before the form, only the skip link
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_label("API key").fill("sk-sy-wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That key is not valid.")
    shot(page, "01-sign-in-refused")
    sign_in(page, gateway, admin)
    assert page.evaluate("() => Object.keys(sessionStorage)") == ["switchyard.key"]
    assert page.context.cookies() == []  # the key is never a cookie

    # Create a key with a policy; its secret is shown once, with a working copy button.
    page.get_by_role("link", name="Keys").click()
    every_control_is_labelled(page)
    page.get_by_label("Name").fill("browser-test")
    page.get_by_label("Credit limit (USD)").fill("1")
    page.get_by_label("Requests per minute").fill("100")
    page.get_by_label("Allowed models").fill("mock/*")
    page.get_by_role("button", name="Create key").click()
    secret_box = page.get_by_role("textbox", name="New key")
    expect(secret_box).to_be_visible()
    secret = secret_box.input_value()
    assert secret.startswith("sk-sy-")
    page.get_by_role("button", name="Copy key").click()
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    row = page.locator("tr", has_text="browser-test")
    expect(row).to_contain_text("active")
    expect(row).to_contain_text("mock/*")
    shot(page, "02-key-created")

    # Update its policy and add credits, each through a labelled form.
    page.get_by_role("button", name="Edit browser-test").click()
    editing = page.get_by_role("form", name="Edit browser-test")
    expect(editing.get_by_label("Name")).to_be_focused()
    editing.get_by_label("Tokens per minute").fill("5000")
    page.get_by_role("button", name="Save").click()
    expect(row).to_contain_text("100 · 5000 · —")
    page.get_by_role("button", name="Add credits to browser-test").click()
    page.get_by_label("Amount (USD)").fill("0.5")
    page.keyboard.press("Enter")
    expect(row).to_contain_text("/ $1.50")

    # Use it with the official SDK.
    client = openai.OpenAI(base_url=gateway.base_url, api_key=secret, max_retries=0)
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello console"}]
    )
    generation = reply.id
    assert reply.choices[0].message.content

    # The request is in Generations, with its details.
    page.get_by_role("link", name="Generations").click()
    every_control_is_labelled(page)
    page.get_by_label("Key", exact=True).select_option(label=f"browser-test ({secret[:12]}...)")
    deadline = time.monotonic() + 30
    found = page.locator(f'tr[data-id="{generation}"]')
    while not found.count():  # the ledger commits within moments; the page is re-asked
        assert time.monotonic() < deadline, "the generation never showed up"
        page.get_by_role("button", name="Filter").click()
        page.wait_for_timeout(300)
    expect(found).to_contain_text(MODEL)
    expect(found).to_contain_text("ok")
    found.get_by_role("button", name=f"Details of {generation}").click()
    details = page.get_by_role("region", name=f"Generation {generation}")
    expect(details).to_contain_text("mock")
    expect(details.locator("dt", has_text="Attempts").locator("+ dd")).to_have_text("1")
    expect(page.get_by_role("button", name="Close")).to_be_focused()
    shot(page, "03-generations")

    # ... and in the charts, narrowed to that key.
    page.get_by_role("link", name="Overview").click()
    every_control_is_labelled(page)
    page.get_by_label("Key", exact=True).select_option(label=f"browser-test ({secret[:12]}...)")
    page.get_by_label("Group by").select_option("model")
    page.get_by_role("button", name="Show").click()
    totals = page.get_by_role("group", name="Totals")
    expect(totals.locator(".stat", has_text="Requests")).to_contain_text("1")
    requests_chart = page.get_by_role("figure", name="Requests")
    expect(requests_chart.locator(f'path[data-series="{MODEL}"]')).to_have_count(1)
    requests_chart.get_by_text("Requests: data").click()  # the numbers behind the chart
    cells = requests_chart.locator("tbody td").all_inner_texts()
    assert cells.count("1") == 1 and set(cells) <= {"0", "1"}
    shot(page, "04-overview")

    # The key's own view: its usage only, and no admin page.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, gateway, secret)
    expect(page.get_by_role("link", name="Keys")).to_be_hidden()
    page.goto(gateway.http_url + "/ui/#/keys")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    expect(page.get_by_role("group", name="Totals").locator(".stat").first).to_contain_text("1")
    refused = request(
        "GET", gateway.base_url + "/keys", None, {"Authorization": f"Bearer {secret}"}
    )
    assert refused.status == 403
    shot(page, "05-own-view")

    # Revoke it as the admin; it is refused from then on (the key cache holds ~2 s).
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, gateway, admin)
    page.get_by_role("link", name="Keys").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke browser-test").click()
    expect(page.get_by_role("status")).to_have_text("Key browser-test revoked.")
    expect(page.locator("tr", has_text="browser-test")).to_have_count(0)  # listed no more
    shot(page, "06-key-revoked")
    deadline = time.monotonic() + 30
    while True:
        try:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
        except openai.AuthenticationError:
            break
        assert time.monotonic() < deadline, "the revoked key was still served"
        time.sleep(0.5)


def test_playground_streams_an_answer_with_its_cost(
    page: Page, console: tuple[Gateway, str]
) -> None:
    gateway, admin = console
    sign_in(page, gateway, admin)
    page.get_by_role("link", name="Playground").click()
    every_control_is_labelled(page)
    message = page.get_by_label("Message")
    expect(message).to_be_focused()  # the page hands the keyboard to the message box
    page.get_by_label("Model").select_option(MODEL)
    message.focus()
    page.keyboard.type("stream me something")
    page.keyboard.press("Control+Enter")  # sends without the mouse
    expect(page.get_by_label("Answer")).to_contain_text("stream me something")
    meta = page.locator(".meta")
    expect(meta).to_contain_text("cost $")
    expect(meta).to_contain_text("generation gen-")
    shot(page, "07-playground")
