"""The benchmark: the engine's `create` step against a faithful re-implementation of the official code's step.

Both sides run on prior stacks built by the caller (a backend or random weights of the real widths), in the
same process. The baseline does the official per-step work (kfirgoldberg/ConceptLab, `training/coach.py`):
float32; the prompt and the empty prompt encoded together every step; the full 81-token prior context;
every positive and negative constraint re-encoded through the text encoder every step; AdamW over the whole
token-embedding matrix, with every other row restored afterwards. Ours is `TrainingSession.step`, as shipped.
"""

from __future__ import annotations

import contextlib
import gc
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from conceptlab.engine.adaptive.oracle import Oracle, Question
from conceptlab.engine.models.backend import DecoderStack, PriorStack
from conceptlab.engine.prior.sampling import sample_image_embeds
from conceptlab.engine.prior.tokens import EncodedPrompts, encode_prompts
from conceptlab.engine.rendering.render import RenderSettings, render_prompts
from conceptlab.engine.training.config import CreateConfig, create_config
from conceptlab.engine.training.loop import TrainingSession, start_training
from conceptlab.engine.training.objectives import conceptlab_loss

StackFactory = Callable[[torch.device, torch.dtype], PriorStack]
ProgressCallback = Callable[[str], None]

NEGATIVE_COUNTS = (1, 4, 16, 64)
CREATE_STEPS = 2500
SECTIONS = ("step", "negatives", "render", "oracle")
"""What a report covers; render and oracle are timed once a decoder and an oracle API exist."""


@dataclass(frozen=True)
class BenchSettings:
    repeats: int = 3
    """Timed steps per measurement; the median is reported."""
    warmup: int = 1
    negatives: int = 3
    negative_counts: tuple[int, ...] = NEGATIVE_COUNTS
    sweep_repeats: int = 7
    """Timed steps per negative count (round-robin over the counts), after one warm-up step each."""
    seed: int = 0


def bench_words(count: int) -> list[str]:
    """`count` distinct negative words (byte-level BPE encodes any word, so synthetic ones are fine)."""
    return [f"thing{index}" for index in range(count)]


def bench_config(settings: BenchSettings) -> CreateConfig:
    negatives = tuple(bench_words(max(settings.negatives, *settings.negative_counts)))
    return create_config(
        "pet", negatives, token="<bench-pet>", steps=CREATE_STEPS, learning_rate=1e-4, seed=settings.seed
    )


class OfficialBaseline:
    """The official code's training step, re-implemented on our models (see the module docstring).

    It shares the session's tokenizer and token id but owns a full `nn.Embedding` (vocabulary + the new row),
    swapped into the text encoder while it runs.
    """

    def __init__(self, session: TrainingSession):
        self.stack, self.config = session.stack, session.config
        self.token_id = session.placeholder.token_id
        embeddings = self.stack.text_encoder.text_model.embeddings
        self._ours = embeddings.token_embedding
        base = self._ours.weight.detach()
        rows = max(base.shape[0], self.token_id + 1)
        self.embedding = nn.Embedding(rows, base.shape[1], device=base.device, dtype=base.dtype)
        with torch.no_grad():
            self.embedding.weight[: base.shape[0]] = base
            self.embedding.weight[self.token_id] = session.placeholder.vector.detach().to(base.dtype)
        self.original = self.embedding.weight.detach().clone()
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.weights = session.weights
        self.optimizer = torch.optim.AdamW(
            self.embedding.parameters(),
            lr=self.config.learning_rate,
            betas=self.config.betas,
            weight_decay=self.config.weight_decay,
        )

    def _normed_embeds(self, prompts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            embeds = encode_prompts(self.stack.tokenizer, self.stack.text_encoder, prompts).text_embeds.float()
        return embeds / embeds.norm(p=2, dim=-1, keepdim=True)

    def step(self, positives: list[str], negatives: list[str]) -> float:
        embeddings = self.stack.text_encoder.text_model.embeddings
        embeddings.token_embedding = self.embedding
        try:
            return self._step(positives, negatives)
        finally:
            embeddings.token_embedding = self._ours

    def _step(self, positives: list[str], negatives: list[str]) -> float:
        config, stack = self.config, self.stack
        template_index = int(torch.randint(len(config.templates), (1,), generator=self.generator))
        template = config.templates[template_index]
        both = encode_prompts(stack.tokenizer, stack.text_encoder, [template.format(config.token), ""])
        prompt, unconditional = (
            EncodedPrompts(both.text_embeds[[i]], both.hidden_states[[i]], both.attention_mask[[i]]) for i in (0, 1)
        )
        image_embed = sample_image_embeds(
            stack.prior,
            stack.scheduler,
            prompt,
            unconditional,
            num_steps=config.prior_steps,
            guidance_scale=config.prior_guidance,
            generator=self.generator,
            skip_padding=False,
        )[0]
        positive_embeds = self._normed_embeds([template.format(word) for word in positives])
        negative_embeds = self._normed_embeds([template.format(word) for word in negatives])
        loss = conceptlab_loss(image_embed, positive_embeds, negative_embeds, self.weights).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        with torch.no_grad():
            keep = torch.arange(self.embedding.weight.shape[0], device=self.original.device) != self.token_id
            self.embedding.weight[keep] = self.original[keep]
        return loss.item()


class PeakMemory:
    """Peak memory since `reset()`: allocated CUDA memory on a GPU, resident set size (RSS) on a CPU."""

    def __init__(self, device: torch.device):
        self.device = device

    @property
    def kind(self) -> str:
        return "cuda_max_memory_allocated" if self.device.type == "cuda" else "peak_rss"

    def reset(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        with contextlib.suppress(OSError):  # Linux: writing 5 resets the peak RSS (VmHWM) to the current RSS
            Path("/proc/self/clear_refs").write_text("5")

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(step: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    """Median wall time of `repeats` calls of `step`, after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        step()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_median_ms(
    steps: dict[str, Callable[[], object]], device: torch.device, rounds: int
) -> dict[str, float]:
    """Median milliseconds per call of each step, after one warm-up call each, timed round-robin: on a shared
    machine, drift (another process, a slower minute) then falls on every step alike, not on whichever ran last."""
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {key: [] for key in steps}
    for _ in range(rounds):
        for key, step in steps.items():
            _synchronize(device)
            start = time.perf_counter()
            step()
            _synchronize(device)
            times[key].append(time.perf_counter() - start)
    return {key: 1000 * statistics.median(values) for key, values in times.items()}


@dataclass
class SideReport:
    """One side (baseline or ours) on one stack."""

    dtype: str
    step_ms: float
    peak_memory_mb: float
    create_estimate_s: float
    step_ms_by_negatives: dict[str, float] = field(default_factory=dict)


@dataclass
class StackReport:
    name: str
    depth: dict[str, int | str]
    baseline: SideReport
    ours: SideReport

    @property
    def ratio(self) -> float:
        return self.baseline.step_ms / self.ours.step_ms

    def growth(self, side: str) -> float:
        """Step time with the most negatives over the step time with the fewest."""
        by_negatives = getattr(self, side).step_ms_by_negatives
        counts = sorted(by_negatives, key=int)
        return by_negatives[counts[-1]] / by_negatives[counts[0]]

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "depth": self.depth,
            "baseline": asdict(self.baseline),
            "ours": asdict(self.ours),
            "ratio": self.ratio,
            "negatives_growth": {"baseline": self.growth("baseline"), "ours": self.growth("ours")},
        }


def _measure_side(
    stack: PriorStack, settings: BenchSettings, side: str, device: torch.device, progress: ProgressCallback
) -> SideReport:
    session = start_training(stack, bench_config(settings))
    positives = list(session.config.positives)
    words = bench_words(max(settings.negatives, *settings.negative_counts))
    counter = iter(range(1, 10**9))
    if side == "baseline":
        baseline = OfficialBaseline(session)

        def run(count: int) -> Callable[[], object]:
            return lambda: baseline.step(positives, words[:count])
    else:

        def run(count: int) -> Callable[[], object]:
            return lambda: session.step(next(counter), positives, words[:count])

    progress(f"{side}: {settings.negatives} negatives")
    memory = PeakMemory(device)
    memory.reset()  # the models and what the side keeps are resident, so they count; setup's transients do not
    step_seconds = median_seconds(run(settings.negatives), device, settings.warmup, settings.repeats)
    peak = memory.peak_mb()
    progress(f"{side}: {', '.join(map(str, settings.negative_counts))} negatives, interleaved")
    sweep = {str(count): run(count) for count in settings.negative_counts}
    by_negatives = interleaved_median_ms(sweep, device, settings.sweep_repeats)
    return SideReport(
        str(stack.dtype).removeprefix("torch."),
        1000 * step_seconds,
        peak,
        step_seconds * CREATE_STEPS,
        by_negatives,
    )


def benchmark_stack(
    name: str,
    build: StackFactory,
    depth: dict[str, int | str],
    device: torch.device,
    dtype: torch.dtype,
    settings: BenchSettings,
    progress: ProgressCallback = lambda _: None,
) -> StackReport:
    """Build the stack for each side in turn (baseline in float32, ours in `dtype`), measure, free it."""
    sides = {}
    for side, side_dtype in (("baseline", torch.float32), ("ours", dtype)):
        progress(f"{name}: building the {side} stack")
        stack = build(device, side_dtype)
        sides[side] = _measure_side(stack, settings, side, device, lambda text: progress(f"{name} {text}"))
        del stack
        gc.collect()
    return StackReport(name, depth, sides["baseline"], sides["ours"])


def time_render(
    stack: PriorStack, decoder: DecoderStack, settings: RenderSettings, device: torch.device, repeats: int
) -> float:
    """Milliseconds per rendered image (prior sampling and decoding), median of `repeats` after one warm-up."""
    return 1000 * median_seconds(
        lambda: render_prompts(stack, decoder, ["a photo of a cat"], [0], settings), device, 1, repeats
    )


def time_oracle(oracle: Oracle, images: list[Image.Image], device: torch.device, repeats: int) -> float:
    """Milliseconds per oracle call on `images` (one question per image), after one warm-up."""
    return 1000 * median_seconds(lambda: oracle.ask(images, Question("pet"), []), device, 1, repeats)


def bench_report(
    reports: list[StackReport],
    device: torch.device,
    settings: BenchSettings,
    render: dict | None = None,
    oracle: dict | None = None,
) -> dict:
    """The JSON record of a run."""
    from conceptlab.engine.version import conceptlab_version

    return {
        "conceptlab_version": conceptlab_version(),
        "torch": torch.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "memory_kind": PeakMemory(device).kind,
        "settings": asdict(settings),
        "create_steps": CREATE_STEPS,
        "sections": list(SECTIONS),
        "stacks": [report.as_json() for report in reports],
        "render": render or {"status": "skipped"},
        "oracle": oracle or {"status": "skipped"},
    }
