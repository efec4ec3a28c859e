"""The CLIP metrics against hand computations, under a CLIP whose embeddings the test sets."""

import math
import random

import pytest
import torch
from PIL import Image

from conceptlab.engine.errors import UsageError
from conceptlab.engine.evaluation.metrics import EvaluationTarget, Evaluator, Summary, diversity, negative_similarity

SIDE = 4
DIM = SIDE * SIDE


class ControlledClip:
    """Texts embed to vectors the test chose; a grey 4x4 image embeds to its 16 pixel values / 255."""

    name = "controlled"

    def __init__(self, text_vectors: dict[str, list[float]]):
        self.text_vectors = text_vectors

    def embed_images(self, images):
        return torch.tensor([[value / 255 for value in image.convert("L").tobytes()] for image in images])

    def embed_texts(self, texts):
        return torch.tensor([self.text_vectors[text] for text in texts])


def _vector(seed: int) -> list[float]:
    generator = random.Random(seed)
    return [generator.random() for _ in range(DIM)]


def _image_of(vector: list[float]) -> Image.Image:
    """An image whose controlled embedding points along `vector` (pixels scaled to 0..255)."""
    top = max(vector)
    image = Image.new("L", (SIDE, SIDE))
    image.putdata([round(255 * value / top) for value in vector])
    return image


def _random_image(seed: int) -> Image.Image:
    return _image_of([v + 1e-3 for v in _vector(1000 + seed)])


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def _pixels(image: Image.Image) -> list[float]:
    return [value / 255 for value in image.tobytes()]


WORDS = {"pet": _vector(1), "cat": _vector(2), "dog": _vector(3), "hamster": _vector(4)}
CLIP = ControlledClip({f"A photo of a {word}": vector for word, vector in WORDS.items()})


def _hand_summary(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def test_image_made_to_match_pet_scores_higher_positive_similarity_than_random_ones():
    evaluator = Evaluator(CLIP)
    matched = evaluator.evaluate("matched", [_image_of(WORDS["pet"])], EvaluationTarget("pet"))
    random_images = [_random_image(seed) for seed in range(6)]
    unmatched = evaluator.evaluate("random", random_images, EvaluationTarget("pet"))
    assert matched.metrics["positive"].mean > 0.99
    assert matched.metrics["positive"].mean > unmatched.metrics["positive"].mean + 0.05
    expected = _hand_summary([_cosine(_pixels(image), WORDS["pet"]) for image in random_images])
    assert unmatched.metrics["positive"].mean == pytest.approx(expected[0], abs=1e-6)
    assert unmatched.metrics["positive"].std == pytest.approx(expected[1], abs=1e-6)
    assert unmatched.metrics["positive"].n == 6


def test_negative_similarity_is_the_per_image_max_not_the_mean():
    images = [_image_of(WORDS["dog"]), _image_of(WORDS["cat"]), _random_image(0)]
    row = Evaluator(CLIP).evaluate("row", images, EvaluationTarget("pet", ("cat", "dog")))
    per_image = [max(_cosine(_pixels(i), WORDS["cat"]), _cosine(_pixels(i), WORDS["dog"])) for i in images]
    per_image_mean = [(_cosine(_pixels(i), WORDS["cat"]) + _cosine(_pixels(i), WORDS["dog"])) / 2 for i in images]
    assert row.metrics["negative"].mean == pytest.approx(_hand_summary(per_image)[0], abs=1e-6)
    assert row.metrics["negative"].mean > _hand_summary(per_image_mean)[0] + 0.01
    assert row.metrics["negative"].n == 3


def test_novelty_is_one_minus_the_closest_known_member():
    images = [_image_of(WORDS["hamster"]), _random_image(1)]
    row = Evaluator(CLIP).evaluate("row", images, EvaluationTarget("pet", vocabulary=("cat", "hamster")))
    expected = [1 - max(_cosine(_pixels(i), WORDS[w]) for w in ("cat", "hamster")) for i in images]
    assert row.metrics["novelty"].mean == pytest.approx(_hand_summary(expected)[0], abs=1e-6)
    assert expected[0] < 0.01 < expected[1]


def test_diversity_is_the_mean_pairwise_cosine_distance():
    same = [_image_of(WORDS["cat"])] * 3
    varied = [_random_image(seed) for seed in range(4)]
    assert Summary.of(diversity(CLIP.embed_images(same))).mean == pytest.approx(0.0, abs=1e-6)
    pixels = [_pixels(image) for image in varied]
    pairs = [1 - _cosine(pixels[i], pixels[j]) for i in range(4) for j in range(i + 1, 4)]
    summary = Summary.of(diversity(CLIP.embed_images(varied)))
    assert summary.n == 6 and summary.mean == pytest.approx(sum(pairs) / 6, abs=1e-6)


def test_parent_similarity_weights_each_parents_mean_similarity():
    child = [_image_of(WORDS["cat"]), _random_image(2)]
    cats, dogs = [_image_of(WORDS["cat"]), _random_image(3)], [_image_of(WORDS["dog"])]
    parents = {"<cat-like>": (0.75, cats), "<dog-like>": (0.25, dogs)}
    row = Evaluator(CLIP).evaluate("child", child, EvaluationTarget("pet", parents=parents))

    def mean_to(image, shots):
        return sum(_cosine(_pixels(image), _pixels(shot)) for shot in shots) / len(shots)

    expected = [0.75 * mean_to(i, cats) + 0.25 * mean_to(i, dogs) for i in child]
    assert row.metrics["parent"].mean == pytest.approx(sum(expected) / 2, abs=1e-6)
    assert row.parents["<cat-like>"]["similarity"].mean == pytest.approx(
        sum(mean_to(i, cats) for i in child) / 2, abs=1e-6
    )
    assert row.parents["<dog-like>"]["weight"] == 0.25


def test_metrics_refuse_empty_inputs():
    with pytest.raises(UsageError, match="at least one negative"):
        negative_similarity(torch.ones(2, DIM), torch.empty(0, DIM))
    with pytest.raises(UsageError, match="No images"):
        Evaluator(CLIP).evaluate("none", [], EvaluationTarget("pet"))
