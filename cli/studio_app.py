"""The studio's pages (Gradio): layout and wiring only.

Each button turns its form into the argument list of the matching command, which `studio_requests` parses into the
very request that command builds, and hands it to the job runner (`conceptlab.engine.studio.jobs`); one timer reads
what the engine's callbacks have told the running job and updates the page. Every path the page names is a name
under `--root` from the server's own listing, confined again when it comes back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from conceptlab.cli import studio_requests as argv_of
from conceptlab.cli.output import stdout
from conceptlab.cli.studio_requests import command_line, command_request
from conceptlab.engine.adaptive.oracle import ORACLE_GROUP
from conceptlab.engine.errors import ConceptLabError
from conceptlab.engine.evaluation.metrics import METRIC_NAMES
from conceptlab.engine.gallery.html import escaped
from conceptlab.engine.models.doctor import doctor
from conceptlab.engine.models.plugins import names
from conceptlab.engine.studio import cards, work
from conceptlab.engine.studio.jobs import DONE, QUEUED, RUNNING, STOPPED, Job, JobRunner
from conceptlab.engine.studio.library import Library, read_library
from conceptlab.engine.studio.paths import relative_name, unused_name
from conceptlab.engine.studio.uploads import import_uploads

WEIGHT_SLIDERS = 4
"""Evolve's parents with a weight slider each (more parents share equal weights)."""
TICK_SECONDS = 0.5
LIBRARY_OUTPUTS = 6
"""What `Studio.library_view` fills: summary, family graph, concept list, interrupted runs, parents, compare list."""
RENDER_PREFIX = "step-"


@dataclass(frozen=True)
class StudioSettings:
    root: Path
    host: str = "127.0.0.1"
    port: int = 7860
    model: str | None = None
    login: tuple[str, str] | None = None


def file_url(path: Path) -> str:
    """The address the server gives a file under `--root` (Gradio serves only `allowed_paths`)."""
    return f"/gradio_api/file={Path(path).resolve()}"


def _doctor_lines() -> list[str]:
    report = doctor()
    devices = ", ".join(device.name for device in report.devices) or "cpu"
    return [f"doctor: torch {report.torch}, devices {devices}"]


def _job_html(job: Job | None, runner: JobRunner) -> str:
    """A job's status line for the page: what, where it is, its last loss, its error, its command line."""
    if job is None:
        return '<div class="job" data-status="none">no job yet</div>'
    parts = [f"job {job.number} · {job.kind} · {job.status}"]
    if job.status == QUEUED:
        parts.append(f"{runner.ahead_of(job)} job(s) ahead")
    if job.total:
        parts.append(f"step {job.step} of {job.total}")
    if job.losses:
        parts.append(f"loss {job.losses[-1]['loss']:.4f}")
    if job.started is not None:
        parts.append(f"{(job.finished or time.time()) - job.started:.1f} s")
    lines = [escaped(" · ".join(parts))]
    lines += [escaped(job.notes[-1])] if job.notes else []
    lines += [f'<span class="error">{escaped(job.error)}</span>'] if job.error else []
    lines += [f"<code>{escaped(job.command)}</code>"] if job.command else []
    return (
        f'<div class="job" data-status="{job.status}" data-step="{job.step}" data-number="{job.number}">'
        + "<br>".join(lines)
        + "</div>"
    )


def _refused(problem: Exception) -> str:
    return f'<div class="job" data-status="refused"><span class="error">{escaped(problem)}</span></div>'


def similarity_frame(job: Job | None) -> pd.DataFrame:
    """Each step's similarity to each word (`+word` positive, `−word` negative), long form for the line plot."""
    rows = [
        {"step": record["step"], "word": f"{sign}{word}", "similarity": value}
        for record in (job.losses if job else [])
        for group, sign in (("positive", "+"), ("negative", "−"))
        for word, value in (record.get(group) or {}).items()
    ]
    return pd.DataFrame(rows, columns=["step", "word", "similarity"])


def checkpoint_renders(run_dir: Path | None) -> list[tuple[str, str]]:
    """The run's checkpoint renders written so far (`images/step-XXXX-seed-S.png`), with captions."""
    folder = run_dir / "images" if run_dir else None
    if folder is None or not folder.is_dir():
        return []
    found = sorted(folder.glob(f"{RENDER_PREFIX}*-seed-*.png"))
    return [(str(path), path.stem.replace("-seed-", " · seed ").replace("-", " ")) for path in found]


class Studio:
    """The app's state: its settings and the job runner; one method per event."""

    def __init__(self, settings: StudioSettings) -> None:
        self.settings = settings
        self.root = Path(settings.root).resolve()
        self.runner = JobRunner(before_first=_doctor_lines)
        self.model = settings.model or ""

    def library(self) -> Library:
        return read_library(self.root)

    def submit(
        self, kind: str, argv: Callable[[], list[str]], work_of: Callable[[Any], work.Work], before: str = ""
    ) -> str:
        """Build the request the command line would (`argv()` is called here so a refusal shows on the page) and
        queue it; the job's status line, or the refusal. `before`: the command line of a step that runs first."""
        try:
            arguments = argv()
            request = command_request(arguments)
        except ConceptLabError as problem:
            return _refused(problem)
        out = getattr(request, "out", None) or getattr(request, "run_dir", None)
        total = request.total_steps() if hasattr(request, "total_steps") else 0
        command = " && ".join(line for line in (before, command_line(arguments)) if line)
        job = Job(kind, request, out, total, command=command)
        self.runner.submit(job, work_of(request))
        return _job_html(job, self.runner)

    # Create

    def create(self, name: str, *form: Any) -> str:
        fields = dict(zip(CREATE_FIELDS, form, strict=True))
        default = f"{fields['category'] or 'concept'}-seed-{int(fields['seed'] or 0)}"
        chosen = name.strip() or unused_name(self.root, default)
        return self.submit("create", lambda: argv_of.create_argv(self.root, chosen, **fields), work.training)

    def stop(self, *kinds: str) -> str:
        job = self.runner.latest(*kinds)
        if job is not None and not job.done:
            self.runner.stop(job)
        return _job_html(job, self.runner)

    def resume(self, run: str | None = None) -> str:
        """Resume `run` (a name from the library), or the last stopped create."""
        if not run:
            stopped = self.runner.latest("create", "resume")
            if stopped is None or stopped.status != STOPPED or stopped.resume_dir is None:
                return _refused(ConceptLabError("No stopped run to resume; choose one from the library."))
            run = relative_name(self.root, stopped.resume_dir)
        return self.submit("resume", lambda: argv_of.resume_argv(self.root, run), work.training)

    # Imagine

    def imagine(self, name: str, category: str, n: float, seed: float, model: str, oracle: str) -> str:
        chosen = name.strip() or unused_name(self.root, f"imagine-{category or 'concept'}")
        form = {"category": category, "n": n, "seed": seed, "model": model, "oracle": oracle}
        return self.submit("imagine", lambda: argv_of.imagine_argv(self.root, chosen, **form), work.imagining)

    def make_concept(self, seeds: Sequence[str], steps: float, name: str) -> str:
        """Pick the selected images of the last imagine run, then evolve a concept from them."""
        imagined = self.runner.latest("imagine")
        if imagined is None or imagined.status != DONE or not seeds:
            return _refused(ConceptLabError("Select images of a finished imagine run first."))
        run = relative_name(self.root, imagined.out)
        chosen = name.strip() or unused_name(self.root, f"{run}-concept")
        try:
            pick = argv_of.pick_argv(self.root, run, [int(seed) for seed in seeds], f"{chosen}-picked")
            picked = command_request(pick)
        except ConceptLabError as problem:
            return _refused(problem)
        form = {"steps": steps, "model": self.model}
        return self.submit(
            "concept",
            lambda: argv_of.evolve_argv(self.root, chosen, [f"{chosen}-picked"], **form),
            lambda request: work.picking_then_evolving(picked, request),
            before=command_line(pick),
        )

    # Evolve

    def evolve(self, parents: Sequence[str], steps: float, seed: float, per_parent: float, name: str, *weights):
        if not parents:
            return _refused(ConceptLabError("Choose two or more parents from the library."))
        chosen = name.strip() or unused_name(self.root, "evolve")
        given = list(weights[: len(parents)]) if len(parents) <= WEIGHT_SLIDERS else []
        form = {"weights": given, "steps": steps, "seed": seed, "images_per_parent": per_parent, "model": self.model}
        return self.submit("evolve", lambda: argv_of.evolve_argv(self.root, chosen, parents, **form), work.training)

    def upload(self, files: Sequence[str] | None, name: str) -> tuple[str, Any]:
        try:
            folder = import_uploads(self.root, name, [Path(file) for file in files or ()])
        except ConceptLabError as problem:
            return _refused(problem), gr.skip()
        message = f'<div class="job" data-status="uploaded">added {escaped(relative_name(self.root, folder))}</div>'
        return message, self.parent_choices()

    def parent_choices(self) -> Any:
        library = self.library()
        return gr.CheckboxGroup(choices=library.concept_names() + library.image_set_names())

    # Compare and sample

    def compare(self, chosen: Sequence[str], n: float, seed: float, category: str = "") -> str:
        """Evaluate the chosen concepts (rendered) and image folders (scored as they are, against `category`)."""
        if not chosen:
            return _refused(ConceptLabError("Choose concepts or image runs to compare from the library."))
        library = self.library()
        folders = set(library.image_set_names() + library.imagine_run_names())
        concepts = [name for name in chosen if name not in folders]
        images = [name for name in chosen if name in folders]
        name = unused_name(self.root, "compare")
        form = {"category": category, "n": n, "seed": seed}
        return self.submit(
            "compare", lambda: argv_of.evaluate_argv(self.root, name, concepts, images, **form), work.evaluating
        )

    def sample(self, concept: str | None, prompt: str, n: float, seed: float) -> str:
        if not concept:
            return _refused(ConceptLabError("Choose a concept in the library first."))
        name = unused_name(self.root, f"{Path(concept).parent.as_posix()}/samples")
        form = {"prompt": prompt, "n": n, "seed": seed, "name": name}
        return self.submit("sample", lambda: argv_of.sample_argv(self.root, concept, **form), work.sampling)

    # Library

    def library_view(self) -> tuple[str, str, Any, Any, Any, Any]:
        library = self.library()
        summary = (
            f"{len(library.concepts)} concept(s), {len(library.imagine_runs)} imagine run(s), "
            f"{len(library.image_sets)} image set(s) under {escaped(self.root)}"
        )
        concepts = library.concept_names()
        return (
            f'<p class="library-summary">{summary}</p>',
            cards.family_html(library.concepts),
            gr.Dropdown(choices=concepts, value=concepts[-1] if concepts else None),
            gr.Dropdown(choices=library.interrupted_names(), value=None),
            gr.CheckboxGroup(choices=concepts + library.image_set_names()),
            gr.CheckboxGroup(choices=concepts + library.imagine_run_names() + library.image_set_names()),
        )

    def concept_view(self, name: str | None) -> tuple[str, Any, str]:
        if not name:
            return "", gr.DownloadButton(value=None, visible=False), ""
        try:
            concept = self.library().concept(name)
        except ConceptLabError as problem:
            return _refused(problem), gr.DownloadButton(value=None, visible=False), ""
        path = concept.paths[0]
        card = cards.concept_card(concept, file_url)
        return card, gr.DownloadButton(value=str(path), visible=True), cards.loading_snippet(path, concept.metadata)

    # The timer: what each page's job has told so far

    def tick(self, seen: dict[str, Any]) -> list[Any]:
        """Every page's live outputs, those whose job has told nothing new since this browser's last tick skipped."""
        seen = dict(seen or {})
        outputs: list[Any] = []
        for page, kinds, view, count in (
            ("create", ("create", "resume"), self._create_view, 4),
            ("imagine", ("imagine",), self._imagine_view, 3),
            ("concept", ("concept",), self._training_view, 2),
            ("evolve", ("evolve",), self._training_view, 2),
            ("compare", ("compare",), self._compare_view, 3),
            ("sample", ("sample",), self._sample_view, 2),
        ):
            job = self.runner.latest(*kinds)
            signature = _signature(job)
            if seen.get(page) == signature:
                outputs += [gr.skip()] * count
            else:
                seen[page] = signature
                outputs += view(job)
        finished = sum(job.done for job in self.runner.jobs())
        if seen.get("library") == finished:
            outputs += [gr.skip()] * LIBRARY_OUTPUTS
        else:  # a job ended: what it made joins the lists
            seen["library"] = finished
            outputs += self.library_view()
        return [seen, *outputs]

    def _create_view(self, job: Job | None) -> list[Any]:
        out = job.out if job else None
        return [
            _job_html(job, self.runner),
            similarity_frame(job),
            checkpoint_renders(out),
            cards.chips(job.negatives if job else []),
        ]

    def _training_view(self, job: Job | None) -> list[Any]:
        return [_job_html(job, self.runner), similarity_frame(job)]

    def _imagine_view(self, job: Job | None) -> list[Any]:
        if job is None:
            return [_job_html(job, self.runner), cards.imagined_html([], file_url), gr.CheckboxGroup(choices=[])]
        seeds = job.request.image_seeds
        started = [seed for seed in seeds if seed in job.imagined or (job.out / f"{seed}.png").is_file()]
        images = []
        for seed in started:
            path = job.out / f"{seed}.png"  # written atomically once the image is done, into the job's new folder
            images.append((seed, path if path.is_file() else None, job.imagined.get(seed, [])))
        done = [str(seed) for seed, path, _ in images if path is not None]
        return [_job_html(job, self.runner), cards.imagined_html(images, file_url), gr.CheckboxGroup(choices=done)]

    def _compare_view(self, job: Job | None) -> list[Any]:
        result = job.result if job and job.status == DONE else None
        if result is None:
            return [_job_html(job, self.runner), "", None]
        rows = [row.as_json() for row in result.rows]
        metrics = [metric for metric in METRIC_NAMES if any(metric in row["metrics"] for row in rows)]
        chart = next((str(path) for path in result.written if path.suffix == ".png"), None)
        return [_job_html(job, self.runner), cards.metrics_table(rows, metrics), chart]

    def _sample_view(self, job: Job | None) -> list[Any]:
        result = job.result if job and job.status == DONE else None
        images = [(str(path), path.stem) for path in result.images] if result else []
        return [_job_html(job, self.runner), images]


def _signature(job: Job | None) -> tuple:
    """What changes the page: a new job, a new status, a new step or negative, a new image."""
    if job is None:
        return ()
    renders = len(checkpoint_renders(job.out)) if job.kind in ("create", "resume") and job.status == RUNNING else 0
    imagined = sum(len(words) for words in job.imagined.values())
    return (job.number, job.status, job.step, len(job.negatives), len(job.notes), renders, imagined, job.image_seed)


CREATE_FIELDS = (
    "category",
    "neg",
    "adaptive",
    "oracle",
    "steps",
    "seed",
    "every",
    "style",
    "gradual",
    "image_steps",
    "model",
)
"""The Create form's fields, in the order the page passes them: `create_argv`'s keyword arguments."""


def build(settings: StudioSettings) -> tuple[gr.Blocks, Studio]:
    """The app's Blocks and the studio behind them (not launched)."""
    studio = Studio(settings)
    oracles = ["", *names(ORACLE_GROUP)]
    with gr.Blocks(title="conceptlab studio", analytics_enabled=False) as demo:
        gr.Markdown("## conceptlab studio")
        seen = gr.State({})
        with gr.Tabs():
            with gr.Tab("Create", id="create"):
                with gr.Row():
                    category = gr.Textbox(label="category", value="pet", elem_id="create-category")
                    neg = gr.Textbox(label="negatives (comma-separated)", value="cat,dog", elem_id="create-neg")
                    adaptive = gr.Checkbox(
                        label="adaptive oracle (names negatives as it trains)", value=False, elem_id="create-adaptive"
                    )
                    oracle = gr.Dropdown(oracles, label="oracle (empty: the backend's)", value="")
                with gr.Row():
                    model = gr.Textbox(label="model", value=studio.model, elem_id="create-model")
                    steps = gr.Number(label="steps", value=200, precision=0, elem_id="create-steps")
                    seed = gr.Number(label="seed", value=0, precision=0, elem_id="create-seed")
                    every = gr.Number(label="checkpoint every", value=50, precision=0, elem_id="create-every")
                    image_steps = gr.Number(
                        label="render steps (0: the decoder's)", value=0, precision=0, elem_id="create-image-steps"
                    )
                with gr.Row():
                    style = gr.Checkbox(label="style", value=False)
                    gradual = gr.Checkbox(label="gradual negatives", value=False)
                    create_name = gr.Textbox(
                        label="run folder under --root (empty: from category and seed)", elem_id="create-name"
                    )
                with gr.Row():
                    create_button = gr.Button("Create", variant="primary", elem_id="create-start")
                    stop_button = gr.Button("Stop", variant="stop", elem_id="create-stop")
                    resume_button = gr.Button("Resume", elem_id="create-resume")
                create_status = gr.HTML(elem_id="create-status")
                with gr.Row():
                    create_chart = gr.LinePlot(
                        x="step", y="similarity", color="word", label="similarity to each word", elem_id="create-chart"
                    )
                    create_renders = gr.Gallery(label="checkpoint renders", columns=4, elem_id="create-renders")
                create_chips = gr.HTML(elem_id="create-negatives")
            with gr.Tab("Imagine", id="imagine"):
                with gr.Row():
                    imagine_category = gr.Textbox(label="category", value="pet", elem_id="imagine-category")
                    imagine_n = gr.Number(label="images", value=2, precision=0, elem_id="imagine-n")
                    imagine_seed = gr.Number(label="first seed", value=0, precision=0)
                    imagine_model = gr.Textbox(label="model", value=studio.model, elem_id="imagine-model")
                    imagine_oracle = gr.Dropdown(oracles, label="oracle (empty: the model's)", value="")
                    imagine_name = gr.Textbox(
                        label="folder under --root (empty: imagine-CATEGORY)", elem_id="imagine-name"
                    )
                imagine_button = gr.Button("Imagine", variant="primary", elem_id="imagine-start")
                imagine_status = gr.HTML(elem_id="imagine-status")
                imagine_images = gr.HTML(elem_id="imagine-images")
                with gr.Row():
                    imagine_pick = gr.CheckboxGroup(label="select images", choices=[], elem_id="imagine-pick")
                    concept_steps = gr.Number(label="steps", value=100, precision=0, elem_id="concept-steps")
                    concept_name = gr.Textbox(label="concept folder (empty: from the run)", elem_id="concept-name")
                concept_button = gr.Button("Make a concept from these", elem_id="imagine-concept")
                concept_status = gr.HTML(elem_id="concept-status")
                concept_chart = gr.LinePlot(x="step", y="similarity", color="word", label="evolve")
            with gr.Tab("Evolve", id="evolve"):
                parents = gr.CheckboxGroup(label="parents (concepts and image sets)", choices=[], elem_id="parents")
                with gr.Row():
                    sliders = [
                        gr.Slider(0, 1, value=0.5, step=0.05, label=f"weight {index + 1}", visible=False)
                        for index in range(WEIGHT_SLIDERS)
                    ]
                with gr.Row():
                    evolve_steps = gr.Number(label="steps", value=100, precision=0, elem_id="evolve-steps")
                    evolve_seed = gr.Number(label="seed", value=0, precision=0)
                    per_parent = gr.Number(label="images per parent", value=3, precision=0, elem_id="evolve-per-parent")
                    evolve_name = gr.Textbox(label="child folder (empty: evolve-N)", elem_id="evolve-name")
                evolve_button = gr.Button("Evolve", variant="primary", elem_id="evolve-start")
                evolve_status = gr.HTML(elem_id="evolve-status")
                evolve_chart = gr.LinePlot(x="step", y="similarity", color="word", label="toward each parent")
                with gr.Accordion("Add photos as a parent", open=False):
                    uploads = gr.File(label="photos", file_count="multiple", file_types=["image"])
                    upload_name = gr.Textbox(label="name of the set", value="my-photos")
                    upload_button = gr.Button("Add to the library")
                    upload_status = gr.HTML()
            with gr.Tab("Library", id="library"):
                refresh = gr.Button("Refresh", elem_id="library-refresh")
                summary = gr.HTML(elem_id="library-summary")
                family = gr.HTML(elem_id="library-family")
                chosen = gr.Dropdown(label="concept", choices=[], elem_id="library-concept")
                card = gr.HTML(elem_id="library-card")
                download = gr.DownloadButton("Download .safetensors", visible=False, elem_id="library-download")
                snippet = gr.Code(label="in your own diffusers code", language="python", elem_id="library-snippet")
                with gr.Row():
                    prompt = gr.Textbox(
                        label="sample this: prompt ({} is the concept)", value="a plush toy {}", elem_id="sample-prompt"
                    )
                    sample_n = gr.Number(label="images", value=2, precision=0)
                    sample_seed = gr.Number(label="seed", value=42, precision=0)
                sample_button = gr.Button("Sample", elem_id="library-sample")
                sample_status = gr.HTML(elem_id="sample-status")
                samples = gr.Gallery(label="samples", columns=4, elem_id="library-samples")
                with gr.Row():
                    interrupted = gr.Dropdown(label="interrupted runs", choices=[], elem_id="library-interrupted")
                    resume_run = gr.Button("Resume this run", elem_id="library-resume")
            with gr.Tab("Compare", id="compare"):
                compared = gr.CheckboxGroup(
                    label="concepts, imagine runs and image sets", choices=[], elem_id="compare-concepts"
                )
                with gr.Row():
                    compare_category = gr.Textbox(label="category of the image folders (e.g. pet)")
                    compare_n = gr.Number(label="images per concept", value=4, precision=0, elem_id="compare-n")
                    compare_seed = gr.Number(label="seed", value=0, precision=0)
                compare_button = gr.Button("Compare", variant="primary", elem_id="compare-start")
                compare_status = gr.HTML(elem_id="compare-status")
                compare_table = gr.HTML(elem_id="compare-table")
                compare_chart = gr.Image(label="metrics", type="filepath", elem_id="compare-chart")

        create_form = [category, neg, adaptive, oracle, steps, seed, every, style, gradual, image_steps, model]
        create_button.click(studio.create, [create_name, *create_form], create_status)
        stop_button.click(lambda: studio.stop("create", "resume"), None, create_status)
        resume_button.click(lambda: studio.resume(), None, create_status)
        imagine_button.click(
            studio.imagine,
            [imagine_name, imagine_category, imagine_n, imagine_seed, imagine_model, imagine_oracle],
            imagine_status,
        )
        concept_button.click(studio.make_concept, [imagine_pick, concept_steps, concept_name], concept_status)
        parents.change(_weight_sliders, parents, sliders)
        evolve_button.click(
            studio.evolve, [parents, evolve_steps, evolve_seed, per_parent, evolve_name, *sliders], evolve_status
        )
        upload_button.click(studio.upload, [uploads, upload_name], [upload_status, parents])
        library_outputs = [summary, family, chosen, interrupted, parents, compared]
        refresh.click(studio.library_view, None, library_outputs)
        demo.load(studio.library_view, None, library_outputs)
        chosen.change(studio.concept_view, chosen, [card, download, snippet])
        sample_button.click(studio.sample, [chosen, prompt, sample_n, sample_seed], sample_status)
        resume_run.click(studio.resume, interrupted, create_status)
        compare_button.click(studio.compare, [compared, compare_n, compare_seed, compare_category], compare_status)
        live = [create_status, create_chart, create_renders, create_chips]
        live += [imagine_status, imagine_images, imagine_pick, concept_status, concept_chart]
        live += [evolve_status, evolve_chart, compare_status, compare_table, compare_chart, sample_status, samples]
        live += library_outputs
        gr.Timer(TICK_SECONDS).tick(studio.tick, seen, [seen, *live], show_progress="hidden")
    demo.queue(default_concurrency_limit=1)
    return demo, studio


def _weight_sliders(parents: Sequence[str]) -> list[Any]:
    """One slider per chosen parent, labelled with it (beyond `WEIGHT_SLIDERS` parents, equal weights)."""
    shown = len(parents) <= WEIGHT_SLIDERS
    return [
        gr.Slider(visible=shown and index < len(parents), label=parents[index] if index < len(parents) else "weight")
        for index in range(WEIGHT_SLIDERS)
    ]


def launch(demo: gr.Blocks, settings: StudioSettings) -> None:
    """Serve `demo` where the settings say, on a thread of Gradio's (the caller keeps the process alive): never a
    share link; only `--root` is served as files."""
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        auth=settings.login,
        share=False,
        prevent_thread_lock=True,
        allowed_paths=[str(Path(settings.root).resolve())],
        quiet=True,
        css=cards.CSS,
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        footer_links=[],
    )


def serve(settings: StudioSettings) -> None:
    """`conceptlab studio`: build the pages and serve them until Ctrl-C."""
    demo, studio = build(settings)
    launch(demo, settings)
    where = f"http://{settings.host}:{settings.port}"
    stdout.print(f"conceptlab studio on {where} (library: {settings.root}); Ctrl-C stops it.", markup=False)
    try:
        while demo.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        stdout.print("stopping: a running job saves its state (resume it from the library)", markup=False)
        studio.runner.stop_all(timeout=60)
    finally:
        demo.close()
