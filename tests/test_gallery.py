"""`conceptlab gallery`: finding concepts, the family graph's layout, the page's HTML, and the page in Chromium."""

import itertools
import json
import shutil
from pathlib import Path

import pytest
import torch

from conceptlab.engine.concept.file import Concept, load_concept, save_concept
from conceptlab.engine.concept.lineage import lineage_record, parent_record
from conceptlab.engine.errors import UsageError
from conceptlab.engine.gallery.layout import boxes_overlap
from conceptlab.engine.gallery.scan import find_concepts, gallery_graph, write_gallery

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _concept(token: str, seed: int, parents: tuple[tuple[Concept, float], ...] = (), **metadata) -> Concept:
    vector = torch.randn(8, generator=torch.Generator().manual_seed(seed))
    kind = "evolve" if parents else "create"
    record = {"kind": kind, "category": "pet", "negatives": [], **metadata}
    if parents:
        record["parents"] = [parent_record(parent, weight, f"{parent.token}.safetensors") for parent, weight in parents]
        record["lineage"] = [lineage_record(parent) for parent, _ in parents]
    unsaved = Concept(token, vector, record)
    return Concept(token, vector, {**record, "token": token, "sha256": unsaved.sha256})  # as a loaded file has


# Unit tests: no model needed.


def test_tokens_and_words_are_escaped_in_the_page(tmp_path):
    concept = _concept(
        "<pet>", 0, negatives=[{"word": "<b>cat</b>", "step": 3, "source": "oracle"}], initializer='x" onload="y'
    )
    save_concept(concept, tmp_path / "runs" / "pet.safetensors")
    index = write_gallery(find_concepts(tmp_path / "runs").concepts, tmp_path / "site", force=False)
    page = index.read_text(encoding="utf-8")
    assert "&lt;pet&gt;" in page and "<pet>" not in page
    assert "&lt;b&gt;cat&lt;/b&gt;" in page and "<b>cat" not in page
    assert "x&quot; onload=&quot;y" in page and 'onload="y' not in page


def test_a_mix_card_shows_its_words_and_weights(tmp_path):
    mix = _concept(
        "<lobster-turtle>", 3, kind="mix", category=None, positives=["lobster", "turtle"], weights=[0.6, 0.4]
    )
    save_concept(mix, tmp_path / "runs" / "mix.safetensors")
    page = write_gallery(find_concepts(tmp_path / "runs").concepts, tmp_path / "site", force=False).read_text()
    assert "<dt>positives</dt><dd>lobster 0.600, turtle 0.400</dd>" in page
    assert '<span class="badge mix">mix</span>' in page


def test_the_same_concept_copied_twice_shows_once_with_both_paths(tmp_path):
    concept = _concept("<pet>", 1)
    save_concept(concept, tmp_path / "runs" / "a" / "pet.safetensors")
    save_concept(concept, tmp_path / "runs" / "copies" / "pet-copy.safetensors")
    save_concept(_concept("<pet>", 2), tmp_path / "runs" / "b" / "pet.safetensors")
    scan = find_concepts(tmp_path / "runs")
    assert len(scan.concepts) == 2
    (twice,) = [c for c in scan.concepts if c.sha256 == concept.sha256]
    assert sorted(path.parent.name for path in twice.paths) == ["a", "copies"]


def test_evaluation_renders_are_shown_on_their_concepts_card(tmp_path):
    from PIL import Image

    from conceptlab.engine.io.images import save_renders

    scored, other = _concept("<pet>", 1), _concept("<pet>", 2)
    runs = tmp_path / "runs"
    save_concept(scored, runs / "concepts" / "a" / "pet.safetensors")
    save_concept(other, runs / "concepts" / "b" / "pet.safetensors")
    images = [Image.new("RGB", (8, 8), (40 * i, 0, 0)) for i in range(6)]
    save_renders(images, runs / "images" / "a", {"concept": scored.sha256, "count": 6})
    scan = find_concepts(runs)
    pictures = {c.sha256: c.pictures for c in scan.concepts}
    assert [p.name for p in pictures[scored.sha256].evaluated] == ["0000.png", "0001.png", "0002.png", "0003.png"]
    assert pictures[other.sha256].evaluated == ()
    page = write_gallery(scan.concepts, tmp_path / "site", force=False).read_text()
    assert page.count('<figure class="evaluated">') == 4


def test_files_that_are_not_concepts_are_skipped_with_a_reason(tmp_path):
    runs = tmp_path / "runs"
    save_concept(_concept("<pet>", 1), runs / "pet.safetensors")
    save_concept(_concept("<pet>", 2), runs / "checkpoints" / "step-0010.safetensors")
    (runs / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(2)}, runs / "model.safetensors")
    scan = find_concepts(runs)
    assert [c.paths[0].name for c in scan.concepts] == ["pet.safetensors"]
    reasons = {skipped.path.name: skipped.reason for skipped in scan.skipped}
    assert set(reasons) == {"junk.safetensors", "model.safetensors"}
    assert "no conceptlab metadata" in reasons["model.safetensors"]


def test_metrics_rows_are_matched_by_token_then_by_negatives(tmp_path):
    runs = tmp_path / "runs"
    cat = _concept("<pet>", 1, negatives=[{"word": "cat", "step": 0, "source": "given"}])
    dog = _concept("<pet>", 2, negatives=[{"word": "dog", "step": 0, "source": "given"}])
    save_concept(cat, runs / "cat" / "pet.safetensors")
    save_concept(dog, runs / "dog" / "pet.safetensors")

    def row(name, negatives, mean):
        summary = {"mean": mean, "std": 0.01, "n": 2}
        return {"method": "conceptlab", "name": name, "category": "pet", "negatives": negatives,
                "metrics": {"positive": summary}, "parents": {}}  # fmt: skip

    rows = [row("<pet>", ["dog"], 0.31), row("<pet>", ["cat"], 0.22), row("<other>", ["cat"], 0.5)]
    (runs / "metrics.json").write_text(json.dumps({"clip": "tiny", "rows": rows}))
    scan = find_concepts(runs)
    by_sha = {concept.sha256: concept.metrics["metrics"]["positive"]["mean"] for concept in scan.concepts}
    assert by_sha == {cat.sha256: 0.22, dog.sha256: 0.31}
    assert scan.unmatched_rows == ["<other> (metrics.json)"]


def test_metrics_rows_with_a_sha256_name_their_concept_exactly(tmp_path):
    runs = tmp_path / "runs"
    twins = [_concept("<pet>", seed, negatives=[{"word": "cat", "step": 0, "source": "given"}]) for seed in (1, 2)]
    for index, twin in enumerate(twins):
        save_concept(twin, runs / f"seed{index}" / "pet.safetensors")
    summary = {"mean": 0.4, "std": 0.01, "n": 2}
    row = {"method": "conceptlab", "sha256": twins[1].sha256, "name": "<pet>", "category": "pet",
           "negatives": ["cat"], "metrics": {"positive": summary}, "parents": {}}  # fmt: skip
    (runs / "metrics.json").write_text(json.dumps({"clip": "tiny", "rows": [row]}))
    scan = find_concepts(runs)
    assert {c.sha256: bool(c.metrics) for c in scan.concepts} == {twins[0].sha256: False, twins[1].sha256: True}
    assert scan.unmatched_rows == []


def test_family_layout_has_no_overlaps_and_parents_left_of_children():
    first = [_concept(f"<g0-{i}>", i) for i in range(5)]
    second = [_concept(f"<g1-{i}>", 10 + i, ((first[i], 0.5), (first[(i + 1) % 5], 0.5))) for i in range(5)]
    third = [_concept("<g2-0>", 20, ((second[0], 0.7), (first[3], 0.3))), _concept("<g2-1>", 21, ((second[4], 1.0),))]
    from conceptlab.engine.gallery.model import GalleryConcept

    shown = [GalleryConcept(c.token, c.sha256, c.metadata, [Path("x")]) for c in [*second[1:], *third]]
    graph = gallery_graph(shown)
    assert len(graph.nodes) == 12 and len({node.sha256 for node in graph.nodes}) == 12
    assert not [pair for pair in itertools.combinations(graph.nodes, 2) if boxes_overlap(*pair)]
    for edge in graph.edges:
        assert graph.node(edge.parent).x + graph.node(edge.parent).width < graph.node(edge.child).x
    assert all(n.x + n.width <= graph.width and n.y + n.height <= graph.height for n in graph.nodes)
    assert {n.token for n in graph.nodes if not n.in_gallery} == {"<g0-0>", "<g0-1>", "<g0-2>", "<g0-3>", "<g0-4>",
                                                                  "<g1-0>"}  # fmt: skip
    assert graph.node(third[0].sha256).generation == 2


def test_an_edge_that_skips_a_generation_takes_a_lane_clear_of_every_node():
    first = [_concept(f"<g0-{i}>", i) for i in range(3)]
    second = [_concept(f"<g1-{i}>", 10 + i, ((first[i], 0.5), (first[i + 1], 0.5))) for i in range(2)]
    grandchild = _concept("<g2>", 20, ((second[0], 0.5), (second[1], 0.25), (first[0], 0.25)))
    from conceptlab.engine.gallery.model import GalleryConcept

    graph = gallery_graph([GalleryConcept(grandchild.token, grandchild.sha256, grandchild.metadata, [Path("x")])])
    (long_edge,) = [edge for edge in graph.edges if edge.parent == first[0].sha256 and edge.child == grandchild.sha256]
    assert len(long_edge.route) == 4  # parent, the lane's two ends in generation 1, child
    (lane_start, lane_end) = long_edge.route[1:3]
    assert lane_start[1] == lane_end[1] and lane_end[0] > lane_start[0]
    for node in graph.nodes:
        crosses_column = node.x < lane_end[0] and lane_start[0] < node.x + node.width
        assert not (crosses_column and node.y <= lane_start[1] <= node.y + node.height), node.token
    short = [edge for edge in graph.edges if edge is not long_edge]
    assert len(short) == 6 and all(len(edge.route) == 2 for edge in short)


def test_write_gallery_refuses_a_non_empty_folder_without_force(tmp_path):
    save_concept(_concept("<pet>", 1), tmp_path / "runs" / "pet.safetensors")
    concepts = find_concepts(tmp_path / "runs").concepts
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match=r"already exists.*--force"):
        write_gallery(concepts, tmp_path / "site", force=False)
    assert write_gallery(concepts, tmp_path / "site", force=True).is_file()
    assert (tmp_path / "site" / "notes.txt").read_text() == "mine"


# End to end: real concepts on the tiny backend, the page opened in Chromium.


@pytest.fixture(scope="module")
def family_site(tmp_path_factory, concept_family):
    """The session's family laid out as runs: the adaptive parent a in DIR, the parent b outside DIR, their evolved
    child in DIR, its metrics, a copy of a, junk; the gallery of DIR."""
    from conceptlab.cli.app import main

    root = tmp_path_factory.mktemp("gallery")
    runs, outside = root / "runs", root / "outside"
    for name, folder in (("a", runs / "a"), ("b", outside / "b"), ("child", runs / "child")):
        shutil.copytree(concept_family[name].parent, folder)
    a, b = runs / "a" / "new-pet.safetensors", outside / "b" / "new-pet.safetensors"
    child = runs / "child" / concept_family["child"].name
    shutil.copy(concept_family["metrics"], runs / "metrics.json")
    (runs / "copies").mkdir()
    shutil.copy(a, runs / "copies" / "a-again.safetensors")
    (runs / "junk.safetensors").write_bytes(b"\x00" * 64)
    site = root / "site"
    assert main(["gallery", str(runs), "--out", str(site)]) == 0
    concepts = {name: load_concept(path) for name, path in (("a", a), ("b", b), ("child", child))}
    return {"runs": runs, "site": site, "concepts": concepts}


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium from the system (Debian's package); `make browser` installs it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (or apt-get install chromium) to test the gallery.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, family_site):
    opened = browser.new_page(viewport={"width": 1400, "height": 900})
    opened.goto((family_site["site"] / "index.html").as_uri())
    opened.wait_for_load_state("load")
    yield opened
    opened.close()


def test_page_shows_every_concept_with_its_images_loaded(page, family_site):
    concepts = family_site["concepts"]
    for name in ("a", "child"):
        card = page.locator(f'article.card[data-sha256="{concepts[name].sha256}"]')
        assert card.locator("h3.token").inner_text() == concepts[name].token
        assert card.locator("h3.token").is_visible()
    assert page.locator("article.card").count() == 2  # the copy shows once; b is not in DIR
    widths = page.evaluate("() => [...document.images].map(image => image.naturalWidth)")
    assert len(widths) >= 8 and all(width > 0 for width in widths)
    card_a = page.locator(f'article.card[data-sha256="{concepts["a"].sha256}"]')
    assert card_a.locator("figure.strip img").count() == 1 and card_a.locator("figure.render img").count() == 2
    assert "a-again.safetensors" in card_a.inner_text()


def test_page_shows_negatives_with_step_and_source_and_metrics(page, family_site):
    concepts = family_site["concepts"]
    recorded = concepts["a"].metadata["negatives"]
    assert {entry["source"] for entry in recorded} == {"given", "oracle"}
    chips = page.locator(f'article.card[data-sha256="{concepts["a"].sha256}"] li.chip').all_inner_texts()
    assert len(chips) == len(recorded)
    for chip, entry in zip(chips, recorded, strict=True):
        source = "adaptive" if entry["source"] == "oracle" else entry["source"]
        assert entry["word"] in chip and f"step {entry['step']}" in chip and source in chip
    child_card = page.locator(f'article.card[data-sha256="{concepts["child"].sha256}"]')
    row = json.loads((family_site["runs"] / "metrics.json").read_text())["rows"][0]
    positive = child_card.locator('tr[data-metric="positive"]').inner_text()
    assert f"{row['metrics']['positive']['mean']:.3f}" in positive
    assert child_card.locator('tr[data-metric="parent"]').count() == 1


def test_graph_has_one_node_per_lineage_member_and_weighted_edges(page, family_site):
    concepts = family_site["concepts"]
    nodes = page.eval_on_selector_all("svg.family g.node", "nodes => nodes.map(n => n.dataset.sha256)")
    assert sorted(nodes) == sorted(concept.sha256 for concept in concepts.values())
    edges = page.eval_on_selector_all(
        "svg.family path.edge", "paths => paths.map(p => [p.dataset.parent, p.dataset.child])"
    )
    child = concepts["child"].sha256
    assert sorted(edges) == sorted([[concepts["a"].sha256, child], [concepts["b"].sha256, child]])
    assert sorted(page.locator("svg.family text.weight").all_text_contents()) == ["0.25", "0.75"]
    missing = page.locator(f'svg.family g.node[data-sha256="{concepts["b"].sha256}"]')
    assert "missing" in missing.get_attribute("class") and "not in DIR" in missing.text_content()


def test_a_graph_node_links_to_its_card(page, family_site):
    sha = family_site["concepts"]["a"].sha256
    page.locator(f'svg.family g.node[data-sha256="{sha}"]').click()
    card = page.locator("article.card:target")
    assert card.get_attribute("data-sha256") == sha
    assert page.url.endswith(f"#concept-{sha[:16]}") and card.is_visible()


def test_screenshot_of_the_page(page, family_site, tmp_path):
    shot = family_site["site"].parent / "gallery.png"
    page.screenshot(path=str(shot), full_page=True)
    from PIL import Image

    with Image.open(shot) as image:
        assert image.width == 1400 and image.height > 900
        assert len(image.convert("RGB").resize((64, 64)).getcolors(64 * 64)) > 100  # not a blank page
    assert shot.stat().st_size > 50_000


def test_cli_refuses_missing_empty_and_occupied_folders(family_site, tmp_path, run_cli):
    code, _, err = run_cli("gallery", tmp_path / "nowhere", "--out", tmp_path / "site")
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("gallery", tmp_path / "empty", "--out", tmp_path / "site")
    assert code == 2 and "No concept files" in err
    code, _, err = run_cli("gallery", family_site["runs"], "--out", family_site["site"])
    assert code == 2 and "already exists" in err and "--force" in err


def test_cli_reports_skipped_files_and_counts(family_site, tmp_path, run_cli):
    code, out, err = run_cli("gallery", family_site["runs"], "--out", tmp_path / "site")
    assert code == 0
    assert "2 concept(s), 1 with metrics, 1 skipped" in out and "junk.safetensors" in err
    assert "checkpoints" not in err


def test_pictures_are_the_last_renders_strip_plot_and_sample_grids_with_thumbnails(tmp_path):
    from PIL import Image

    runs = tmp_path / "runs"
    save_concept(_concept("<pet>", 1), runs / "pet" / "pet.safetensors")
    save_concept(_concept("<loose>", 2), runs / "loose.safetensors")  # its folder is DIR itself: no pictures
    names = ["images/step-0010-seed-42.png", "images/step-0020-seed-42.png", "images/step-0020-seed-500.png"]
    names += ["images/strip.png", "samples/a-plush-toy-pet-grid.png"]
    for name in names:
        (runs / "pet" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), "teal").save(runs / "pet" / name)
    Image.new("RGB", (1200, 600), "white").save(runs / "pet" / "similarities.png")
    by_token = {concept.token: concept for concept in find_concepts(runs).concepts}
    pictures = by_token["<pet>"].pictures
    assert [path.name for path in pictures.latest] == ["step-0020-seed-42.png", "step-0020-seed-500.png"]
    assert pictures.strip.name == "strip.png" and pictures.similarities.name == "similarities.png"
    assert [path.name for path in pictures.grids] == ["a-plush-toy-pet-grid.png"]
    assert by_token["<loose>"].pictures.all() == []
    site = tmp_path / "site"
    page = write_gallery(list(by_token.values()), site, force=False).read_text(encoding="utf-8")
    (full,) = [path for path in site.glob("images/*/*similarities.png") if "thumb" not in path.name]
    (thumbnail,) = site.glob("images/*/*thumb-similarities.png")
    assert Image.open(full).size == (1200, 600) and Image.open(thumbnail).size == (480, 240)
    full, thumbnail = (path.relative_to(site).as_posix() for path in (full, thumbnail))
    assert f'<a href="{full}"><img src="{thumbnail}"' in page


def test_hostile_metrics_json_and_metadata_run_no_script_in_chromium(browser, tmp_path):
    from test_hostile_output import HTML_PAYLOADS, hostile_gallery

    index = hostile_gallery(tmp_path, HTML_PAYLOADS)
    opened = browser.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    opened.goto(index.as_uri())
    opened.wait_for_load_state("load")
    opened.wait_for_timeout(300)  # an onerror fires after the failed load of its image
    injected = opened.evaluate(
        "() => document.querySelectorAll('script, iframe, img, [onerror], [onload], a[href^=\"javascript\"]').length"
    )
    cards = opened.locator("article.card").count()
    categories = opened.locator("span.category").all_inner_texts()
    opened.close()
    assert dialogs == [] and injected == 0
    assert cards == len(HTML_PAYLOADS) and sorted(categories) == sorted(HTML_PAYLOADS)  # shown as typed
