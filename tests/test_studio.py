"""`conceptlab studio`: its pages in headless Chromium on the tiny backend, and the engine pieces behind them
(path confinement, uploads, the job runner, requests equal to the command line's) without a browser."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest
from PIL import Image

from conceptlab.cli import studio_requests as argv_of
from conceptlab.cli.studio_app import StudioSettings, build, launch
from conceptlab.cli.studio_requests import command_request
from conceptlab.engine.concept.file import load_concept
from conceptlab.engine.errors import UsageError
from conceptlab.engine.evaluation.request import EvaluateRequest
from conceptlab.engine.imagine.request import ImagineRequest
from conceptlab.engine.studio.library import read_library
from conceptlab.engine.studio.paths import confined
from conceptlab.engine.studio.uploads import MAX_UPLOAD_IMAGES, import_uploads
from conceptlab.engine.training.request import CreateRequest, EvolveRequest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
WAIT_MS = 30_000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def root(tmp_path_factory, concept_family) -> Path:
    """The studio's library: copies of the shared family's a and b run folders (the family itself stays intact)."""
    root = tmp_path_factory.mktemp("studio") / "runs"
    for name in ("a", "b"):
        shutil.copytree(concept_family[name].parent, root / name)
    return root


@pytest.fixture(scope="module")
def server(root):
    demo, studio = build(StudioSettings(root, port=_free_port(), model="tiny"))
    launch(demo, studio.settings, block=False)
    yield f"http://127.0.0.1:{studio.settings.port}", studio
    demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server):
    url, _studio = server
    opened = browser.new_page(viewport={"width": 1280, "height": 900})
    opened.goto(url)
    opened.wait_for_selector("#create-start", timeout=WAIT_MS)
    yield opened
    opened.close()


def _fill(page, element_id: str, value) -> None:
    page.locator(f"#{element_id} input, #{element_id} textarea").first.fill(str(value))


def _status(page, element_id: str) -> dict[str, str]:
    job = page.locator(f"#{element_id} .job")
    if job.count() == 0:
        return {}
    return {"status": job.get_attribute("data-status") or "", "step": job.get_attribute("data-step") or "0"}


def _wait_status(page, element_id: str, wanted: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _status(page, element_id).get("status") == wanted:
            return
        page.wait_for_timeout(100)
    pytest.fail(f"#{element_id} never showed {wanted}: {page.locator(f'#{element_id}').inner_text()}")


def _tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def _create_form(page, name: str, *, neg: str, adaptive: bool, steps: int, every: int) -> None:
    _fill(page, "create-neg", neg)
    _fill(page, "create-steps", steps)
    _fill(page, "create-every", every)
    _fill(page, "create-image-steps", 2)
    _fill(page, "create-name", name)
    checkbox = page.locator("#create-adaptive input")
    if checkbox.is_checked() != adaptive:
        checkbox.click()


def test_create_shows_renders_and_negatives_while_it_runs(page, server, root):
    _url, studio = server
    _create_form(page, "live", neg="", adaptive=True, steps=40, every=10)
    page.click("#create-start")
    seen = []
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        status = _status(page, "create-status").get("status")
        renders = page.locator("#create-renders img").count()
        chips = page.locator("#create-negatives .chip").count()
        seen.append((status, renders, chips))
        if status == "done":
            break
        page.wait_for_timeout(100)
    assert any(status == "running" and renders > 0 for status, renders, _ in seen), seen
    assert any(status == "running" and chips > 0 for status, _, chips in seen), seen
    assert page.locator("#create-negatives .chip .meta").first.inner_text().startswith("step ")
    job = studio.runner.latest("create")
    assert job.status == "done" and (root / "live" / "new-pet.safetensors").is_file()
    assert len(job.negatives) == page.locator("#create-negatives .chip").count() > 0
