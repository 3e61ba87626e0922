"""What a user does in the Airflow 3.3 UI, as Playwright steps (selectors checked against the real
UI): log in, fill a DAG's trigger form field by field and press Trigger, answer an approval where
Airflow shows it, read a run's note, open a run summary and check that nothing on it is dead.

Widgets of the trigger and approval forms (Airflow renders them from each ``Param``'s schema):
string -> ``input#element_<name>``; enum -> a select with a hidden ``input[name=element_<name>]``;
integer/number -> a number input whose ``+`` button is ``#number-input:element_<name>:inc``;
boolean -> a switch ``#switch:element_<name>``; array of strings -> ``textarea#element_<name>``
(one per line); object/other arrays -> a JSON code editor. The submit button is
``[data-testid=trigger-dag-submit]``; approval options are ``[data-testid=hitl-option-<option>]``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from tests.e2e.demo_stack import q

CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by scripts/setup.d/browser.sh
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--no-first-run",
)


@contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium driven by Playwright: the one browser launch of the browser tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield b
        finally:
            b.close()


def screenshots_dir(env_var: str, tmp_path_factory: Any, default: str) -> Path:
    """Where a browser test saves its pictures: ``$env_var`` (e.g. ``docs/screenshots`` to refresh
    the README's), else a fresh temp folder named ``default``."""
    out = os.environ.get(env_var)
    path = Path(out) if out else tmp_path_factory.mktemp(default)
    path.mkdir(parents=True, exist_ok=True)
    return path


# ms to wait for the API's answer to a click (a busy SQLite metadata DB can take a minute)
RESPONSE_TIMEOUT = 150_000
# options that approve, in order of preference; else the first option the task lists
APPROVING = ("Approve", "Approved", "Yes", "OK", "Accept", "Continue", "Proceed", "Reject flagged")


def shot(page: Any, path: Path, full_page: bool = False) -> None:
    """A screenshot, palette-quantised (the README's PNGs stay small)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)


def login(page: Any, url: str, user: str, password: str) -> None:
    page.goto(f"{url}/")
    page.wait_for_url("**/auth/login**")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/auth/login" not in u)
    page.wait_for_load_state("networkidle")


# ----------------------------------------------------------------------------------- trigger form
def open_trigger_form(page: Any, url: str, dag_id: str) -> Any:
    """Open the DAG's page and its Trigger dialog; returns the dialog."""
    page.goto(f"{url}/dags/{q(dag_id)}")
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("[data-testid=trigger-dag-submit]").wait_for()
    return dialog


def _type_of(schema: dict[str, Any]) -> set[str]:
    t = schema.get("type", "string")
    return set(t) if isinstance(t, list) else {t}


def set_field(scope: Any, name: str, value: Any, schema: dict[str, Any]) -> None:
    """Enter ``value`` into the form field of param ``name`` as a user would."""
    el = f"element_{name}"
    page = scope.page if hasattr(scope, "page") else scope
    switch = scope.locator(f'[id="switch:{el}"]')
    number = scope.locator(f'[id="number-input:{el}:inc"]')
    textarea = scope.locator(f'textarea[id="{el}"]')
    text = scope.locator(f'input[id="{el}"]')
    select = scope.locator(f'input[type=hidden][name="{el}"]')
    if switch.count():
        if (switch.get_attribute("data-state") == "checked") != bool(value):
            switch.click()
    elif number.count():
        box = scope.locator(f'[id="{number.get_attribute("aria-controls")}"]')
        box.fill("" if value is None else str(value))
        box.blur()
    elif textarea.count():
        items = value if isinstance(value, list) else ([] if value is None else [value])
        textarea.fill("\n".join(str(v) for v in items))
    elif text.count():
        text.fill("" if value is None else str(value))
    elif select.count():
        combo = select.locator("xpath=..").locator("[role=combobox]")
        combo.click()
        page.get_by_role("option", name=str(value), exact=True).click()
    else:  # a JSON code editor (objects, arrays of non-strings): replace its whole text
        editor = scope.locator(f'div[id="{el}"] .monaco-editor').first
        editor.click()
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(json.dumps(value))


def form_errors(dialog: Any) -> list[str]:
    """Fields the form marks invalid, with the message it shows under them."""
    out: list[str] = []
    for field in dialog.locator("[data-scope=field][data-part=root][data-invalid]").all():
        label = field.locator("label").first.inner_text().replace("*", "").strip()
        msg = field.locator("[data-part=error-text]")
        out.append(f"{label}: {msg.first.inner_text() if msg.count() else 'invalid'}")
    if not out:
        for inp in dialog.locator("[aria-invalid=true]").all():
            out.append(f"{inp.get_attribute('name') or inp.get_attribute('id')}: invalid")
    if not out:  # an untouched form marks nothing: name the required fields left empty
        for inp in dialog.locator("input[required], textarea[required]").all():
            name = (inp.get_attribute("name") or "").removeprefix("element_")
            if name and inp.get_attribute("type") != "checkbox" and not inp.input_value():
                out.append(f"{name}: required (red star) and empty, no default to keep")
    return out


def submit_trigger(page: Any, dialog: Any) -> tuple[int, dict[str, Any] | str]:
    """Press Trigger; returns the HTTP status and body of the UI's ``POST .../dagRuns``. (With
    "Unpause on trigger" checked the UI then sends ``PATCH /api/v2/dags/<id>``: stay on the page
    until the DAG shows unpaused, leaving earlier cancels it.)"""

    def posted(r: Any) -> bool:
        return r.request.method == "POST" and bool(re.search(r"/api/v2/dags/[^/]+/dagRuns$", r.url))

    with page.expect_response(posted, timeout=RESPONSE_TIMEOUT) as resp:
        dialog.locator("[data-testid=trigger-dag-submit]").click()
    r = resp.value
    try:
        return r.status, r.json()
    except Exception:  # noqa: BLE001 - report whatever came back
        return r.status, r.text()


# -------------------------------------------------------------------------------------- approvals
def approving_option(options: list[str]) -> str:
    return next((o for o in APPROVING if o in options), options[0])


def ti_required_actions_url(url: str, ti: dict[str, Any]) -> str:
    mapped = f"/mapped/{ti['map_index']}" if int(ti.get("map_index", -1)) >= 0 else ""
    return (
        f"{url}/dags/{q(ti['dag_id'])}/runs/{q(ti['dag_run_id'])}/tasks/{q(ti['task_id'])}"
        f"{mapped}/required_actions"
    )


def answer_approval(
    page: Any, scope: Any, option: str, keep: dict[str, Any] | None = None
) -> tuple[int, str]:
    """Click ``option`` in an approval form shown in ``scope`` (the TI's Required Action tab or the
    review drawer); fields in ``keep`` are set first (e.g. ``{"reject": ""}``: reject nothing).
    Returns the status and body of the UI's ``PATCH .../hitlDetails``."""
    button = scope.locator(f'[data-testid="hitl-option-{option}"]')
    button.wait_for()
    for name, value in (keep or {}).items():
        set_field(scope, name, value, {})
    if button.is_disabled():
        raise FormBlocked(form_errors(scope) or ["the option button is disabled"])
    with page.expect_response(
        lambda r: r.request.method == "PATCH" and "/hitlDetails" in r.url, timeout=RESPONSE_TIMEOUT
    ) as resp:
        button.click()
    return resp.value.status, resp.value.text()


class FormBlocked(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


# ------------------------------------------------------------------------------ run page, summary
def run_note(page: Any, url: str, dag_id: str, run_id: str) -> tuple[str, str | None]:
    """Open the run's page; returns its note text and the summary link in it (if any)."""
    page.goto(f"{url}/dags/{q(dag_id)}/runs/{q(run_id)}")
    edit = page.get_by_role("button", name="Edit note").first
    edit.wait_for()
    box = edit.locator("xpath=..")
    text = box.inner_text().strip()
    link = box.locator("a[href*='/artefacts/']")
    return text, (link.first.get_attribute("href") if link.count() else None)


def dead_links(ctx: Any, page_url: str, hrefs: list[str], origin: str) -> list[str]:
    """The links among ``hrefs`` (resolved against ``page_url``) that do not answer 200, fetched
    with the browser context (its login). Only local ones (``origin`` or loopback) are fetched."""
    dead: list[str] = []
    for href in dict.fromkeys(hrefs):
        if not href or href.startswith(("#", "mailto:", "javascript:", "data:")):
            continue
        absolute = urljoin(page_url, href)
        host = urlsplit(absolute).hostname or ""
        if not absolute.startswith(origin) and host not in ("127.0.0.1", "localhost"):
            continue
        r = ctx.request.get(absolute, max_redirects=5, timeout=60_000)
        if r.status != 200:
            dead.append(f"{href} -> HTTP {r.status}")
    return dead


def check_summary(page: Any, ctx: Any, href: str, origin: str) -> list[str]:
    """Open a run summary page; returns its problems (status, missing ``#outcome``, dead links,
    images that do not load)."""
    problems: list[str] = []
    resp = page.goto(href)
    if resp is None or resp.status != 200:
        return [f"summary {href} -> HTTP {resp.status if resp else '?'}"]
    if page.locator("#outcome").count() == 0:
        problems.append(f"summary {href} has no #outcome element")
    hrefs = page.eval_on_selector_all(
        "a[href], img[src], link[href], script[src], source[src]",
        "els => els.map(e => e.getAttribute('href') || e.getAttribute('src'))",
    )
    problems += [f"dead link on {href}: {d}" for d in dead_links(ctx, page.url, hrefs, origin)]
    broken = page.eval_on_selector_all(
        "img", "imgs => imgs.filter(i => i.complete && i.naturalWidth === 0).map(i => i.src)"
    )
    problems += [f"image does not load on {href}: {src}" for src in broken]
    return problems
