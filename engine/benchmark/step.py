"""The benchmark: the engine's `create` step, eager and compiled, against a re-implementation of the official step.

The sides run on prior stacks built by the caller (a backend or random weights of the real widths), in the same
process, timed interleaved step by step (baseline, ours, compiled, baseline, ...) so that drift on a shared machine
falls on every side alike; each round's ratio is a paired sample. The baseline does the official per-step work
(kfirgoldberg/ConceptLab, `training/coach.py`, with `use_fp16=True` in `kandinsky2/load_utils.py`): half precision
on CUDA (float32 elsewhere, as there); the prompt and the empty prompt encoded together every step; the full
81-token prior context; every positive and negative constraint re-encoded every step (`get_normed_embeds`, through
the 2.1 decoder's M-CLIP text encoder when the caller gives one, else the prior's CLIP); AdamW over the whole
token-embedding matrix, with every other row restored afterwards. Ours is `TrainingSession.step`, as shipped;
compiled is the same with `config.compile`.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from conceptlab.engine.benchmark.timing import PeakMemory, interleaved_median_ms, paired_ratio, timed_rounds
from conceptlab.engine.models.backend import PriorStack
from conceptlab.engine.prior.sampling import sample_image_embeds
from conceptlab.engine.prior.tokens import EncodedPrompts, encode_prompts
from conceptlab.engine.training.config import CreateConfig, create_config
from conceptlab.engine.training.loop import TrainingSession, start_training
from conceptlab.engine.training.objectives import conceptlab_loss

StackFactory = Callable[[torch.device, torch.dtype], PriorStack]
ConstraintEncoder = Callable[[list[str]], torch.Tensor]
"""Prompts -> unit text embeddings, run every step by the baseline (the official code's `get_normed_embeds`)."""
ConstraintFactory = Callable[[PriorStack], ConstraintEncoder | None]
ProgressCallback = Callable[[str], None]
SIDES = ("baseline", "ours", "compiled")

NEGATIVE_COUNTS = (1, 4, 16, 64)
CREATE_STEPS = 2500
SECTIONS = ("step", "negatives", "render", "oracle")
"""What a report covers; render and oracle are timed once a decoder and an oracle API exist."""


@dataclass(frozen=True)
class BenchSettings:
    repeats: int = 10
    """Timed rounds of the main comparison (one step of each side per round); medians and paired ratios."""
    warmup: int = 1
    negatives: int = 3
    negative_counts: tuple[int, ...] = NEGATIVE_COUNTS
    sweep_repeats: int = 7
    """Timed steps per negative count (round-robin over the counts), after one warm-up step each."""
    seed: int = 0
    compiled: bool = True
    """Also time the compiled step (its first step, compiling included, is reported apart)."""
    bootstrap: int = 2000
    budget_s: float | None = None
    """Seconds the whole stack may take (building and compiling included): the main rounds stop early, never
    below one, when the next would end after it (`bench --gpu-check`); None: every round runs."""


def bench_words(count: int) -> list[str]:
    """`count` distinct negative words (byte-level BPE encodes any word, so synthetic ones are fine)."""
    return [f"thing{index}" for index in range(count)]


def bench_config(settings: BenchSettings, token: str = "<bench-pet>", **extra) -> CreateConfig:
    negatives = tuple(bench_words(max(settings.negatives, *settings.negative_counts)))
    return create_config(
        "pet", negatives, token=token, steps=CREATE_STEPS, learning_rate=1e-4, seed=settings.seed, **extra
    )


def official_dtype(device: torch.device) -> torch.dtype:
    """The official code's precision: `use_fp16=True` halves the prior and text encoders; on a CPU, float32."""
    return torch.float16 if device.type == "cuda" else torch.float32


class OfficialBaseline:
    """The official code's training step, re-implemented on our models (see the module docstring).

    It shares the session's tokenizer and token id but owns a full `nn.Embedding` (vocabulary + the new row),
    swapped into the text encoder while it runs.
    """

    def __init__(self, session: TrainingSession, constraints: ConstraintEncoder | None = None):
        self.stack, self.config = session.stack, session.config
        self.constraints = constraints
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
        if self.constraints is not None:
            return self.constraints(prompts).float()
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


def tensor_mb(tensors: list[torch.Tensor]) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def stack_tensors(stack: PriorStack) -> list[torch.Tensor]:
    """Every parameter and buffer of the stack's models (shared ones once)."""
    seen: dict[int, torch.Tensor] = {}
    for module in (stack.text_encoder, stack.prior, stack.image_encoder):
        for tensor in [*module.parameters(), *module.buffers()]:
            seen.setdefault(id(tensor), tensor)
    return list(seen.values())


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [value for state in optimizer.state.values() for value in state.values() if torch.is_tensor(value)]


@dataclass
class SideReport:
    """One side (baseline, ours or compiled) on one stack."""

    dtype: str
    step_ms: float
    """Median of the interleaved rounds."""
    peak_memory_mb: float
    """Its models and state, plus the peak rise during one of its steps (the other sides' models not counted)."""
    create_estimate_s: float
    steps_ms: list[float] = field(default_factory=list)
    step_ms_by_negatives: dict[str, float] = field(default_factory=dict)
    compile_s: float | None = None
    """compiled: the first step's time over a steady step's (tracing, compiling and capturing)."""
    constraint_encoder: str = "cached"


@dataclass
class StackReport:
    name: str
    depth: dict[str, int | str]
    sides: dict[str, SideReport]
    ratios: dict[str, dict]
    """baseline / side, per round: "ours" and "compiled"."""

    def growth(self, side: str) -> float:
        """Step time with the most negatives over the step time with the fewest."""
        by_negatives = self.sides[side].step_ms_by_negatives
        counts = sorted(by_negatives, key=int)
        return by_negatives[counts[-1]] / by_negatives[counts[0]]

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "depth": self.depth,
            **{side: asdict(report) for side, report in self.sides.items()},
            "ratio": self.ratios,
            "negatives_growth": {side: self.growth(side) for side in ("baseline", "ours")},
        }


@dataclass
class _Side:
    step: Callable[[int], object]
    """step(negative count) runs one step."""
    dtype: torch.dtype
    held: Callable[[], list[torch.Tensor]]
    constraint_encoder: str


def _sides(
    stacks: dict[str, PriorStack],
    settings: BenchSettings,
    constraints: ConstraintEncoder | None,
    compile_backend: str | None,
) -> dict[str, _Side]:
    """The three sides' steps; compiled shares ours' stack under its own token."""
    positives = ["pet"]
    words = bench_words(max(settings.negatives, *settings.negative_counts))
    counter = iter(range(1, 10**9))
    baseline_session = start_training(stacks["baseline"], bench_config(settings))
    baseline = OfficialBaseline(baseline_session, constraints)
    ours = start_training(stacks["ours"], bench_config(settings))
    encoder = "mclip" if constraints is not None else "prior"
    sides = {
        "baseline": _Side(
            lambda count: baseline.step(positives, words[:count]),
            stacks["baseline"].dtype,
            lambda: [
                *stack_tensors(stacks["baseline"]),
                *_encoder_tensors(constraints),
                baseline.embedding.weight,
                baseline.original,
                *optimizer_tensors(baseline.optimizer),
            ],
            f"{encoder}, re-encoded every step",
        ),
        "ours": _Side(
            lambda count: ours.step(next(counter), positives, words[:count]),
            stacks["ours"].dtype,
            lambda: [*stack_tensors(stacks["ours"]), ours.placeholder.vector, *optimizer_tensors(ours.optimizer)],
            "clip, cached once per template and word",
        ),
    }
    if settings.compiled:
        config = bench_config(settings, token="<bench-pet-compiled>", compile=True)
        compiled = start_training(stacks["ours"], config, compile_backend=compile_backend)
        sides["compiled"] = _Side(
            lambda count: compiled.step(next(counter), positives, words[:count]),
            stacks["ours"].dtype,
            lambda: [
                *stack_tensors(stacks["ours"]),
                compiled.placeholder.vector,
                *optimizer_tensors(compiled.optimizer),
            ],
            "clip, cached once per template and word",
        )
    return sides


def _encoder_tensors(constraints: ConstraintEncoder | None) -> list[torch.Tensor]:
    model = getattr(constraints, "model", None)
    return [*model.parameters(), *model.buffers()] if model is not None else []


def _first_steps(sides: dict[str, _Side], settings: BenchSettings, device: torch.device) -> dict[str, dict]:
    """Each side's warm-up steps, one at a time: the first one's time (the compiled side compiles there) and the
    memory a step adds over what is resident."""
    memory = PeakMemory(device)
    measured = {}
    for name, side in sides.items():
        memory.reset()
        before = memory.current_mb()
        step = _count_step(side, settings.negatives)
        times = timed_rounds({name: step}, device, max(1, settings.warmup))[name]
        rise = max(0.0, memory.peak_mb() - before)
        measured[name] = {"first_ms": times[0], "peak_memory_mb": tensor_mb(side.held()) + rise}
    return measured


def benchmark_stack(
    name: str,
    build: StackFactory,
    depth: dict[str, int | str],
    device: torch.device,
    dtype: torch.dtype,
    settings: BenchSettings,
    progress: ProgressCallback = lambda _: None,
    constraint_encoder: ConstraintFactory = lambda _: None,
    compile_backend: str | None = None,
) -> StackReport:
    """Build the baseline's stack (official precision, with its constraint encoder) and ours (`dtype`), time the
    sides interleaved round by round, sweep the negative counts, free them."""
    deadline = time.perf_counter() + settings.budget_s if settings.budget_s is not None else None
    progress(f"{name}: building the stacks")
    stacks = {"baseline": build(device, official_dtype(device)), "ours": build(device, dtype)}
    sides = _sides(stacks, settings, constraint_encoder(stacks["baseline"]), compile_backend)
    progress(f"{name}: first steps" + (" (compiling)" if settings.compiled else ""))
    first = _first_steps(sides, settings, device)
    progress(f"{name}: {settings.repeats} interleaved rounds with {settings.negatives} negatives")
    times = timed_rounds(
        {key: _count_step(side, settings.negatives) for key, side in sides.items()},
        device,
        settings.repeats,
        deadline=deadline,
    )
    sweeps = {}
    for key in ("baseline", "ours"):
        progress(f"{name} {key}: {', '.join(map(str, settings.negative_counts))} negatives, interleaved")
        sweep = {str(count): _count_step(sides[key], count) for count in settings.negative_counts}
        sweeps[key] = interleaved_median_ms(sweep, device, settings.sweep_repeats)
    reports = {}
    for key, side in sides.items():
        step_ms = statistics.median(times[key])
        compile_s = (first[key]["first_ms"] - step_ms) / 1000 if key == "compiled" else None
        reports[key] = SideReport(
            dtype=str(side.dtype).removeprefix("torch."),
            step_ms=step_ms,
            peak_memory_mb=first[key]["peak_memory_mb"],
            create_estimate_s=step_ms * CREATE_STEPS / 1000 + (compile_s or 0.0),
            steps_ms=times[key],
            step_ms_by_negatives=sweeps.get(key, {}),
            compile_s=compile_s,
            constraint_encoder=side.constraint_encoder,
        )
    ratios = {
        key: paired_ratio(times["baseline"], times[key], settings.bootstrap, settings.seed)
        for key in sides
        if key != "baseline"
    }
    del sides, stacks
    gc.collect()
    return StackReport(name, depth, reports, ratios)


def _count_step(side: _Side, count: int) -> Callable[[], object]:
    return lambda: side.step(count)
