"""`conceptlab studio`: its pages in headless Chromium on the tiny backend, and the engine pieces behind them
(path confinement, uploads, the job runner, requests equal to the command line's) without a browser."""

from __future__ import annotations

import shlex
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
    launch(demo, studio.settings)
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


def _cli_request(command: str, monkeypatch, run_cli):
    """The request `conceptlab ...` builds from the command line the page shows, caught before anything runs."""
    from conceptlab.cli import create, evaluate, evolve, imagine
    from conceptlab.engine.errors import ConceptLabError

    caught = []

    def catch(request, *_args, **_kwargs):
        caught.append(request)
        raise ConceptLabError("caught")

    for module, name in ((create, "train_with_progress"), (evolve, "train_with_progress")):
        monkeypatch.setattr(module, name, catch)
    monkeypatch.setattr(imagine, "imagine", catch)
    monkeypatch.setattr(evaluate, "evaluate", catch)
    words = shlex.split(command)
    assert words[0] == "conceptlab"
    run_cli(*words[1:])
    monkeypatch.undo()
    assert len(caught) == 1, command
    return caught[0]


def test_stop_then_resume_gives_the_bytes_of_an_uninterrupted_run(
    browser, page, server, root, tmp_path, monkeypatch, run_cli
):
    url, studio = server
    _create_form(page, "stopped", neg="cat", adaptive=False, steps=150, every=50)
    page.click("#create-start")
    page.close()  # the tab that started the job goes away; the job goes on, and a page opened later shows it
    page = browser.new_page()
    page.goto(url)
    page.wait_for_selector("#create-status .job", timeout=WAIT_MS)
    deadline = time.monotonic() + 30
    while int(_status(page, "create-status").get("step", 0)) < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    page.click("#create-stop")
    _wait_status(page, "create-status", "stopped")
    stopped = studio.runner.latest("create")
    assert 0 < stopped.step < 150 and (root / "stopped" / "checkpoints" / "state.safetensors").is_file()
    assert not (root / "stopped" / "new-pet.safetensors").exists()
    assert isinstance(stopped.request, CreateRequest)
    assert stopped.request == _cli_request(stopped.command, monkeypatch, run_cli)
    page.click("#create-resume")
    _wait_status(page, "create-status", "done", timeout=60)
    page.close()
    resumed = studio.runner.latest("resume")
    assert [record["step"] for record in resumed.losses] == list(range(1, 151))  # its chart holds the whole run
    reference = tmp_path / "reference"
    assert run_cli(*shlex.split(stopped.command)[1:-1], str(reference))[0] == 0
    made, expected = (
        load_concept(root / "stopped" / "new-pet.safetensors"),
        load_concept(reference / "new-pet.safetensors"),
    )
    assert made.vector.numpy().tobytes() == expected.vector.numpy().tobytes()
    assert {k: v for k, v in made.metadata.items() if k != "created"} == {
        k: v for k, v in expected.metadata.items() if k != "created"
    }
    assert (root / "stopped" / "log.jsonl").read_bytes() == (reference / "log.jsonl").read_bytes()


def test_imagine_then_a_concept_from_the_chosen_image_joins_the_library(page, server, root, monkeypatch, run_cli):
    from conceptlab.engine.imagine import run

    _url, studio = server
    write_png = run.write_png

    def slow_write(path, image):  # a slower machine: each image stays alone on the page for a while
        write_png(path, image)
        time.sleep(0.0 if path.name == run.GRID else 1.0)

    monkeypatch.setattr(run, "write_png", slow_write)
    _tab(page, "Imagine")
    _fill(page, "imagine-n", 2)
    _fill(page, "imagine-name", "imagined")
    page.click("#imagine-start")
    counts = []
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        status = _status(page, "imagine-status").get("status")
        counts.append((status, page.locator("#imagine-images img").count()))
        if status == "done" and counts[-1][1] == 2:
            break
        page.wait_for_timeout(100)
    assert ("running", 1) in counts, counts  # one by one, not both at the end
    assert counts[-1] == ("done", 2), counts
    assert page.locator("#imagine-images figure").first.locator(".chip").count() > 0
    job = studio.runner.latest("imagine")
    assert isinstance(job.request, ImagineRequest) and job.request == _cli_request(job.command, monkeypatch, run_cli)
    page.locator("#imagine-pick label").first.click()
    _fill(page, "concept-steps", 20)
    _fill(page, "concept-name", "from-imagined")
    page.click("#imagine-concept")
    _wait_status(page, "concept-status", "done", timeout=60)
    child_path = next((root / "from-imagined").glob("*.safetensors"))
    child = load_concept(child_path)
    assert [parent["token"] for parent in child.metadata["parents"]] == ["from-imagined-picked"]
    assert sorted(path.name for path in (root / "from-imagined-picked").iterdir()) == ["0.png"]
    _tab(page, "Library")
    page.click("#library-refresh")
    node = page.locator(f'#library-family g.node[data-sha256="{child.sha256}"]')
    node.wait_for(timeout=WAIT_MS)
    assert page.locator(f'#library-family path.edge[data-child="{child.sha256}"]').count() == 1


def test_evolve_two_library_concepts_with_their_weights(page, server, root, concept_family, monkeypatch, run_cli):
    _url, studio = server
    _tab(page, "Evolve")
    for name in ("a/new-pet.safetensors", "b/new-pet.safetensors"):
        page.locator("#parents label", has_text=name).click()
    assert page.get_by_label("a/new-pet.safetensors", exact=True).count() >= 1
    _fill(page, "evolve-steps", 20)
    _fill(page, "evolve-per-parent", 2)
    _fill(page, "evolve-name", "bred")
    page.click("#evolve-start")
    _wait_status(page, "evolve-status", "done", timeout=60)
    job = studio.runner.latest("evolve")
    assert isinstance(job.request, EvolveRequest) and job.request == _cli_request(job.command, monkeypatch, run_cli)
    child = load_concept(next((root / "bred").glob("*.safetensors")))
    parents = {parent["sha256"]: parent["weight"] for parent in child.metadata["parents"]}
    a, b = (load_concept(concept_family[name]) for name in "ab")
    assert parents == {a.sha256: 0.5, b.sha256: 0.5}


def test_compare_two_concepts_reads_the_evaluation_table(page, server, monkeypatch, run_cli):
    _url, studio = server
    _tab(page, "Compare")
    for name in ("a/new-pet.safetensors", "b/new-pet.safetensors"):
        page.locator("#compare-concepts label", has_text=name).click()
    _fill(page, "compare-n", 2)
    page.click("#compare-start")
    _wait_status(page, "compare-status", "done", timeout=60)
    page.locator("#compare-table table.metrics").wait_for(timeout=WAIT_MS)
    rows = page.locator("#compare-table tr:has(th.row)")
    assert rows.count() == 2
    job = studio.runner.latest("compare")
    assert isinstance(job.request, EvaluateRequest) and job.request == _cli_request(job.command, monkeypatch, run_cli)
    positive = [row.metrics.metrics["positive"].mean for row in job.result.rows]
    shown = [float(cell.split("±")[0]) for cell in rows.locator('td[data-metric="positive"]').all_inner_texts()]
    assert shown == pytest.approx(positive, abs=5e-4)
    assert page.locator("#compare-chart img").count() == 1


def test_a_restarted_server_finds_the_library_intact(browser, server, root):
    before = read_library(root).concept_names()
    assert {"a/new-pet.safetensors", "live/new-pet.safetensors", "stopped/new-pet.safetensors"} <= set(before)
    demo, restarted = build(StudioSettings(root, port=_free_port(), model="tiny"))
    launch(demo, restarted.settings)
    try:
        page = browser.new_page()
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"http://127.0.0.1:{restarted.settings.port}")
        _tab(page, "Library")
        summary = page.locator("#library-summary")
        summary.wait_for(timeout=WAIT_MS)
        page.wait_for_function(
            "n => document.querySelector('#library-summary').innerText.startsWith(n + ' concept')", arg=len(before)
        )
        card = page.locator("#library-card article.card")
        card.wait_for(timeout=WAIT_MS)
        assert page.locator("#library-snippet").inner_text().count("load_into") >= 1
        assert requested and all(url.startswith(("http://127.0.0.1:", "data:", "blob:")) for url in requested)
        page.close()
    finally:
        demo.close()


def test_a_crafted_request_naming_a_path_outside_the_root_is_refused(server, root, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    url, studio = server
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "escape").symlink_to(outside, target_is_directory=True)
    for name in ("../x", "/etc", str(outside), "escape/run", ""):
        with pytest.raises(UsageError):
            confined(root, name)
    client = Client(url, verbose=False)
    refused = client.predict(
        "../outside-run", "pet", "cat", False, "", 20, 0, 10, False, False, 0, "tiny", api_name="/create"
    )
    assert 'data-status="refused"' in refused and "outside" in refused
    with pytest.raises(AppError, match="not in the list of choices"):  # only names from the server's listing
        client.predict(["/etc/passwd"], 2, 0, "", api_name="/compare")
    for crafted in (["../studio0/runs/a/new-pet.safetensors"], ["escape/../../x.safetensors"], [str(outside)]):
        assert 'data-status="refused"' in studio.compare(crafted, 2, 0)  # the handler behind it refuses too
    assert 'data-status="refused"' in studio.sample("../a/new-pet.safetensors", "a {}", 1, 0)
    assert not any(outside.iterdir()) and not (root.parent / "outside-run").exists()
    (root / "escape").unlink()


def test_uploaded_photos_are_bounded_and_become_an_image_set(root, tmp_path):
    photos = []
    for index in range(2):
        photos.append(tmp_path / f"p{index}.png")
        Image.new("RGB", (16, 16), (index * 90, 30, 60)).save(photos[-1])
    folder = import_uploads(root, "my lizard", photos)
    assert folder == (root / "uploads" / "my-lizard").resolve()
    assert "uploads/my-lizard" in read_library(root).image_set_names()
    assert "compare" not in read_library(root).image_set_names()  # an evaluation's chart is no image set
    (tmp_path / "notes.png").write_text("<script>")
    with pytest.raises(UsageError, match=r"notes\.png is not a readable image"):
        import_uploads(root, "bad", [tmp_path / "notes.png"])
    with pytest.raises(UsageError, match=f"at most {MAX_UPLOAD_IMAGES}"):
        import_uploads(root, "many", photos * (MAX_UPLOAD_IMAGES // 2 + 1))
    with pytest.raises(UsageError, match="already exists"):
        import_uploads(root, "my-lizard", photos)


def test_the_host_beyond_loopback_needs_a_login_and_gradio_missing_says_how(run_cli, monkeypatch, tmp_path):
    code, _out, err = run_cli("studio", "--host", "0.0.0.0")
    assert code == 2 and "--auth" in err and len(err.strip().splitlines()) == 1
    code, _out, err = run_cli("studio", "--auth", "nopassword")
    assert code == 2 and "USER:PASS" in err
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    code, _out, err = run_cli("studio", "--root", str(tmp_path))
    assert code == 2 and "pip install 'conceptlab[studio]'" in err


def test_text_from_files_reaches_the_page_escaped(root):
    from conceptlab.cli.studio_app import file_url
    from conceptlab.engine.studio.cards import concept_card

    concept = read_library(root).concepts[0]
    hostile = type(concept)("<script>x</script>", concept.sha256, {**concept.metadata, "category": "<b>pet"}, [])
    html = concept_card(hostile, file_url)
    assert "<script>x" not in html and "&lt;script&gt;x" in html and "&lt;b&gt;pet" in html
    assert argv_of.command_line(["create", "--category", "a b"]) == "conceptlab create --category 'a b'"
    assert command_request(argv_of.resume_argv(root, "stopped")).run_dir == root.resolve() / "stopped"
    scored = command_request(argv_of.evaluate_argv(root, "c", [], ["a/images"], category="pet", n=2))
    assert (scored.images, scored.category, scored.concepts, scored.count) == ((root / "a" / "images",), "pet", (), 2)


PAGES = ("Create", "Imagine", "Evolve", "Library", "Compare")


def test_screenshots_of_each_page(page, tmp_path):
    """Each page after the flows above, as docs/studio.md shows them (CONCEPTLAB_STUDIO_SHOTS=docs/images writes
    them there; palette PNGs, small)."""
    import os

    folder = Path(os.environ.get("CONCEPTLAB_STUDIO_SHOTS") or tmp_path)
    for name in PAGES:
        _tab(page, name)
        page.wait_for_timeout(1000)  # a tick of the timer, and the library's images
        shot = folder / f"studio-{name.lower()}.png"
        page.screenshot(path=str(shot), full_page=name == "Library")  # its card is below the family graph
        with Image.open(shot) as image:
            assert len(image.convert("RGB").resize((64, 64)).getcolors(64 * 64)) > 50, name  # not a blank page
            image.convert("RGB").quantize(colors=64).save(shot, optimize=True)
        assert shot.stat().st_size < 160_000


def test_the_job_runner_runs_one_job_at_a_time_and_stop_cancels_a_waiting_one():
    import threading

    from conceptlab.engine.studio.jobs import Job, JobRunner

    runner, gate = JobRunner(), threading.Event()
    first = runner.submit(Job("create", None, None), lambda job: gate.wait(10) and "first")
    second = runner.submit(Job("create", None, None), lambda job: "second")
    third = runner.submit(Job("evolve", None, None), lambda job: 1 / 0)
    deadline = time.monotonic() + 10
    while first.status != "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (first.status, second.status, third.status) == ("running", "queued", "queued")
    assert (runner.ahead_of(second), runner.ahead_of(third)) == (1, 2)
    runner.stop(second)
    gate.set()
    assert runner.wait(third, 10)
    assert (first.status, first.result, second.status, second.result) == ("done", "first", "cancelled", None)
    assert third.status == "failed" and third.error.startswith("internal error: ZeroDivisionError")
    assert runner.latest("create") is second and runner.latest("evolve") is third
