"""CLIP-space metrics of creative generation (the paper's evaluation, and a few more).

The pure functions take L2-normalisable CLIP embeddings (`[n, dim]` tensors) and return one value per image, so
every metric has a mean, a spread and a count. `Evaluator` embeds images and prompts with any CLIP that
implements `ClipEmbedder` (plugins provide them) and returns a `ConceptMetrics`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from conceptlab.engine.errors import UsageError

EVALUATION_TEMPLATE = "A photo of a {}"
"""The paper measures every image against "A photo of a {category}" and "A photo of a {negative}"."""
METRIC_NAMES = (
    "positive",
    "negative",
    "novelty",
    "typicality",
    "diversity",
    "vendi",
    "variance",
    "validity",
    "vqa-novelty",
    "render-seconds",
    "train-seconds",
    "parent",
)
SET_METRICS = ("vendi", "variance")
"""Metrics of a whole image set (one value, no spread over images): their std is NaN, their n the set's size."""
LOWER_IS_BETTER = ("negative", "render-seconds", "train-seconds")
EMBED_BATCH = 64
"""Images the evaluating CLIP embeds at once."""
COST_METRICS = ("render-seconds", "train-seconds")
"""The only metrics a row's costs (a `timing.json` beside images) may supply: seconds, never a score."""


def cosine_matrix(rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every row of `rows` `[n, d]` with every row of `columns` `[m, d]`: `[n, m]`."""
    return F.normalize(rows.float(), dim=-1) @ F.normalize(columns.float(), dim=-1).T


def positive_similarity(image_embeds: torch.Tensor, category_embed: torch.Tensor) -> torch.Tensor:
    """Per image: cosine with the category prompt's text embedding `[d]` (higher is better)."""
    return cosine_matrix(image_embeds, category_embed.reshape(1, -1))[:, 0]


def negative_similarity(image_embeds: torch.Tensor, negative_embeds: torch.Tensor) -> torch.Tensor:
    """Per image: the highest cosine with any negative `[k, d]` (lower is better).

    The maximum, not the mean: an image that is plainly a dog fails however unlike a cat it is.
    """
    if negative_embeds.shape[0] == 0:
        raise UsageError("Negative similarity needs at least one negative; give --neg or a concept that has some.")
    return cosine_matrix(image_embeds, negative_embeds).max(dim=1).values


def novelty(image_embeds: torch.Tensor, vocabulary_embeds: torch.Tensor) -> torch.Tensor:
    """Per image: 1 − the highest cosine with any known member of the category (is it really something new?), in
    [0, 1]: a cosine of 0 or less means no likeness to any member, so novelty 1, never more."""
    if vocabulary_embeds.shape[0] == 0:
        raise UsageError("Novelty needs a vocabulary of known members; give --vocab FILE with one word a line.")
    return 1 - cosine_matrix(image_embeds, vocabulary_embeds).max(dim=1).values.clamp(min=0)


def diversity(image_embeds: torch.Tensor) -> torch.Tensor:
    """Per pair of distinct images: cosine distance (1 − cosine); its mean is the concept's diversity.

    One creature seen many ways gives a moderate mean; a token that yields noise gives a high one.
    """
    count = image_embeds.shape[0]
    if count < 2:
        return torch.empty(0)
    distances = 1 - cosine_matrix(image_embeds, image_embeds)
    first, second = torch.triu_indices(count, count, offset=1)
    return distances[first, second]


def vendi_score(image_embeds: torch.Tensor) -> float:
    """The Vendi score: exp(−Σ λ_i log λ_i) over the eigenvalues λ of K/n, K the cosine-similarity kernel.

    The effective number of distinct images: n identical images give 1, n orthogonal ones give n (Friedman and
    Dieng, 2023; the `vendi-score` package's `score_K` with q = 1, checked against it in the tests).
    """
    count = image_embeds.shape[0]
    if count == 0:
        return math.nan
    unit = F.normalize(image_embeds.double(), dim=-1)
    kernel = unit @ unit.T / count
    eigenvalues = torch.linalg.eigvalsh(kernel)
    eigenvalues = eigenvalues[eigenvalues > 0]
    return float(torch.exp(-(eigenvalues * eigenvalues.log()).sum()))


def total_variance(image_embeds: torch.Tensor) -> float:
    """Trace of the covariance of the unit-normalised embeddings (population): 1 − ‖mean‖²."""
    if image_embeds.shape[0] == 0:
        return math.nan
    unit = F.normalize(image_embeds.double(), dim=-1)
    return float(unit.var(dim=0, correction=0).sum())


TYPICALITY_FLOOR = 0.01
"""Typicality counts a cosine from this up: a ratio of cosines at or below 0 would say nothing (or the opposite)."""


def typicality(
    image_embeds: torch.Tensor, category_embed: torch.Tensor, vocabulary_embeds: torch.Tensor
) -> torch.Tensor:
    """Per image: cos(image, category) / the highest cos(image, known member), each counted from `TYPICALITY_FLOOR`
    up, so it lies in [0.01, 100].

    Above 1, the image resembles its category more than any member it could be mistaken for; below 1, a member more;
    1 when it is like neither (both cosines at or below the floor). Our definition, inspired by the "relative
    typicality" of ConceptLab's follow-up (its exact formula is not public).
    """
    if vocabulary_embeds.shape[0] == 0:
        raise UsageError("Typicality needs a vocabulary of known members; give --vocab FILE with one word a line.")
    closest_member = cosine_matrix(image_embeds, vocabulary_embeds).max(dim=1).values.clamp(min=TYPICALITY_FLOOR)
    return positive_similarity(image_embeds, category_embed).clamp(min=TYPICALITY_FLOOR) / closest_member


def parent_similarity(image_embeds: torch.Tensor, parent_image_embeds: torch.Tensor) -> torch.Tensor:
    """Per image: mean cosine with a parent's images (as evolution's image constraints measure it)."""
    return cosine_matrix(image_embeds, parent_image_embeds).mean(dim=1)


@dataclass(frozen=True)
class Summary:
    """Mean and (population) standard deviation of per-image values, and how many there were."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: torch.Tensor | Sequence[float]) -> Summary:
        data = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
        if data.numel() == 0:
            return cls(math.nan, math.nan, 0)
        return cls(float(data.mean()), float(data.std(correction=0)), int(data.numel()))

    @classmethod
    def of_set(cls, value: float, n: int) -> Summary:
        """A set-level value (Vendi, total variance): no spread, n the images it was computed over."""
        return cls(value, math.nan, n)

    @classmethod
    def pooled(cls, summaries: Sequence[Summary]) -> Summary:
        """The mean and population std of all values behind several summaries, from (mean, std, n) alone."""
        present = [s for s in summaries if s.n]
        total = sum(s.n for s in present)
        if not total:
            return cls(math.nan, math.nan, 0)
        mean = sum(s.n * s.mean for s in present) / total
        variance = sum(s.n * (s.std**2 + (s.mean - mean) ** 2) for s in present) / total
        return cls(mean, variance**0.5, total)

    def as_json(self) -> dict[str, float | int | None]:
        def number(value: float) -> float | None:
            return None if math.isnan(value) else round(value, 6)

        return {"mean": number(self.mean), "std": number(self.std), "n": self.n}


def pool_metric(metric: str, summaries: Sequence[Summary]) -> Summary:
    """Several rows' values as one: a per-image metric pools every image; a set-level one (vendi, variance) is the
    mean ± std over the rows, n the rows."""
    if metric in SET_METRICS:
        return Summary.of([summary.mean for summary in summaries if summary.n])
    return Summary.pooled(summaries)


@runtime_checkable
class ClipEmbedder(Protocol):
    """A CLIP model that embeds images and texts into one space (any checkpoint; plugins provide them)."""

    name: str

    def embed_images(self, images: Sequence[Any]) -> torch.Tensor:
        """PIL images -> `[n, d]` image embeddings."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Prompts -> `[n, d]` text embeddings."""
        ...


@dataclass(frozen=True)
class EvaluationTarget:
    """What a row is measured against: its category, negatives, known members and parents."""

    category: str
    negatives: tuple[str, ...] = ()
    vocabulary: tuple[str, ...] = ()
    parents: Mapping[str, tuple[float, Sequence[Any]]] | None = None
    """Parent name -> (weight, images of that parent)."""


@dataclass(frozen=True)
class ConceptMetrics:
    """One row of the results table: a concept, a baseline or a folder of images."""

    name: str
    category: str
    negatives: tuple[str, ...]
    metrics: dict[str, Summary]
    parents: dict[str, dict[str, float | Summary]]
    """Parent name -> {"weight": w, "similarity": Summary}."""

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "category": self.category,
            "negatives": list(self.negatives),
            "metrics": {name: summary.as_json() for name, summary in self.metrics.items()},
            "parents": {
                name: {"weight": entry["weight"], "similarity": entry["similarity"].as_json()}
                for name, entry in self.parents.items()
            },
        }


def seconds_costs(costs: Mapping[str, Sequence[float]]) -> dict[str, Summary]:
    """The render and train seconds of `costs`, each kept only when every value is a finite number of seconds, 0 or
    more; any other key (a score such as "positive" or "vendi") is ignored, so a file cannot replace a score."""
    kept = {}
    for metric in COST_METRICS:
        values = costs.get(metric)
        if values and all(isinstance(v, int | float) and math.isfinite(v) and v >= 0 for v in values):
            kept[metric] = Summary.of(values)
    return kept


def prompt_for(word: str) -> str:
    return EVALUATION_TEMPLATE.format(word)


class RowJudge(Protocol):
    """Answers questions about a row's images (validity, vqa-novelty); `conceptlab.engine.evaluation.judge`."""

    def judge(self, images: Sequence[Any], target: EvaluationTarget) -> dict[str, Summary]: ...


class Evaluator:
    """Embeds images and prompts with one CLIP and computes every metric for a row (and asks a judge, if any)."""

    def __init__(self, clip: ClipEmbedder, judge: RowJudge | None = None):
        self.clip = clip
        self.judge = judge
        self._text_cache: dict[str, torch.Tensor] = {}

    def text_embeds(self, words: Sequence[str]) -> torch.Tensor:
        """Embeddings of "A photo of a {word}" for each word, cached across rows."""
        missing = [word for word in dict.fromkeys(words) if word not in self._text_cache]
        if missing:
            embedded = self.clip.embed_texts([prompt_for(word) for word in missing]).float().cpu()
            self._text_cache.update(zip(missing, embedded, strict=True))
        if not words:
            return torch.empty(0, 1)
        return torch.stack([self._text_cache[word] for word in words])

    def image_embeds(self, images: Sequence[Any]) -> torch.Tensor:
        """`[n, d]`, embedded `EMBED_BATCH` images at a time: the CLIP's activations grow with the batch."""
        if not images:
            raise UsageError("No images to evaluate; give a folder with .png/.jpg images or render some with -n.")
        batches = [images[start : start + EMBED_BATCH] for start in range(0, len(images), EMBED_BATCH)]
        return torch.cat([self.clip.embed_images(batch).float().cpu() for batch in batches])

    def evaluate(
        self,
        name: str,
        images: Sequence[Any],
        target: EvaluationTarget,
        costs: Mapping[str, Sequence[float]] | None = None,
    ) -> ConceptMetrics:
        """Every metric of one row; `costs` are seconds measured while making it ("render-seconds": [...])."""
        embeds = self.image_embeds(images)
        category = self.text_embeds([target.category])[0]
        count = embeds.shape[0]
        metrics = {
            "positive": Summary.of(positive_similarity(embeds, category)),
            "diversity": Summary.of(diversity(embeds)),
            "vendi": Summary.of_set(vendi_score(embeds), count),
            "variance": Summary.of_set(total_variance(embeds), count),
        }
        if target.negatives:
            metrics["negative"] = Summary.of(negative_similarity(embeds, self.text_embeds(target.negatives)))
        if target.vocabulary:
            members = self.text_embeds(target.vocabulary)
            metrics["novelty"] = Summary.of(novelty(embeds, members))
            metrics["typicality"] = Summary.of(typicality(embeds, category, members))
        if self.judge is not None:
            metrics |= self.judge.judge(images, target)
        metrics |= seconds_costs(costs or {})
        parents: dict[str, dict[str, float | Summary]] = {}
        weighted = torch.zeros(count)
        for parent, (weight, shots) in (target.parents or {}).items():
            per_image = parent_similarity(embeds, self.image_embeds(shots))
            parents[parent] = {"weight": weight, "similarity": Summary.of(per_image)}
            weighted += weight * per_image
        if parents:
            metrics["parent"] = Summary.of(weighted)
        ordered = {metric: metrics[metric] for metric in METRIC_NAMES if metric in metrics}
        return ConceptMetrics(name, target.category, target.negatives, ordered, parents)
