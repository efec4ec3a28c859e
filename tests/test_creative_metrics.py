"""The follow-up's metrics (Vendi, total variance, typicality, a judge's validity and vqa-novelty, cost) against
hand computations, Vendi also against the reference `vendi-score` package."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from vendi_score import vendi

from conceptlab.engine.adaptive.oracle import OracleOptions, Question, load_oracle
from conceptlab.engine.adaptive.vocabulary import known_members
from conceptlab.engine.evaluation.evaluate import (
    EvaluationRow,
    ImageSet,
    evaluate_image_sets,
    record_costs,
    recorded_costs,
    results_csv,
    results_json,
)
from conceptlab.engine.evaluation.judge import KIND_QUESTION, VALIDITY_QUESTION, Judge
from conceptlab.engine.evaluation.metrics import (
    ConceptMetrics,
    EvaluationTarget,
    Evaluator,
    Summary,
    pool_metric,
    total_variance,
    typicality,
    vendi_score,
)
from conceptlab.plugins.tiny.world import synthetic_picture


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the package's scipy.sparse.csr import
@pytest.mark.parametrize("count,dim,seed", [(2, 5, 0), (7, 16, 1), (12, 4, 2), (30, 64, 3)])
def test_vendi_equals_the_reference_package(count, dim, seed):
    embeds = np.random.default_rng(seed).normal(size=(count, dim))
    ours = vendi_score(torch.tensor(embeds))
    assert ours == pytest.approx(vendi.score_X(embeds), rel=1e-6)  # normalises the rows, K = X Xᵀ, q = 1
    unit = _unit(embeds)
    assert ours == pytest.approx(vendi.score_K(unit @ unit.T), rel=1e-6)


def test_vendi_by_hand_identical_images_count_once_orthogonal_ones_each():
    one = torch.tensor([[0.3, -1.2, 2.0, 0.5]])
    assert vendi_score(one.repeat(6, 1)) == pytest.approx(1.0, abs=1e-9)
    assert vendi_score(torch.eye(5) * 3) == pytest.approx(5.0, abs=1e-9)
    # Two identical pairs of orthogonal images: K/n has eigenvalues 1/2, 1/2, so exp(log 2) = 2.
    assert vendi_score(torch.tensor([[1.0, 0], [1.0, 0], [0, 2.0], [0, 2.0]])) == pytest.approx(2.0, abs=1e-9)


def test_total_variance_is_the_trace_of_the_covariance_and_one_minus_the_squared_mean():
    embeds = np.random.default_rng(4).normal(size=(9, 6))
    unit = _unit(embeds)
    by_trace = float(np.trace(np.cov(unit, rowvar=False, bias=True)))
    by_mean = 1 - float(np.sum(unit.mean(axis=0) ** 2))
    ours = total_variance(torch.tensor(embeds))
    assert ours == pytest.approx(by_trace, abs=1e-9) and ours == pytest.approx(by_mean, abs=1e-9)
    assert total_variance(torch.ones(4, 3)) == pytest.approx(0.0, abs=1e-12)


def _cos(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_typicality_is_the_category_similarity_over_the_closest_member():
    images = torch.tensor([[1.0, 0.2, 0.1], [0.1, 1.0, 0.3], [0.5, 0.5, 0.5]])
    category = torch.tensor([1.0, 0.0, 0.0])
    members = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    expected = [_cos(i, category) / max(_cos(i, m) for m in members) for i in images.tolist()]
    assert typicality(images, category, members).tolist() == pytest.approx(expected, abs=1e-6)
    assert expected[0] > 1 > expected[1], "an image like its category scores above 1, one like a member below"


class ScriptedOracle:
    """Answers each question from a script; records what it was asked."""

    name = "scripted"

    def __init__(self, answers: dict[str, list[str]]):
        self.answers, self.asked = answers, []

    def ask(self, images, question: Question, known):
        self.asked.append(question)
        return self.answers[question.text][: len(images)]


class FixedClip:
    name = "fixed"

    def embed_images(self, images):
        return torch.tensor([[float(image.getpixel((0, 0))[0]) + 1, 1.0, 0.5] for image in images])

    def embed_texts(self, texts):
        return torch.tensor([[1.0, float(len(text) % 3), 0.2] for text in texts])


def _images(count: int) -> list[Image.Image]:
    return [Image.new("RGB", (4, 4), (index * 20, 0, 0)) for index in range(count)]


def test_judge_counts_yes_and_answers_that_name_no_known_member():
    oracle = ScriptedOracle(
        {
            "Is this a pet?": ["Yes.", "no", "yes, it is", "Nope"],
            "What kind of pet is this?": ["A Dog", "cats", "a fluffy blob", "unknown"],
        }
    )
    judge = Judge("scripted", oracle)
    target = EvaluationTarget("pet", ("cat",), ("cat", "dog", "hamster"))
    row = Evaluator(FixedClip(), judge).evaluate("row", _images(4), target)
    assert row.metrics["validity"] == Summary(0.5, 0.5, 4)
    assert row.metrics["vqa-novelty"].mean == pytest.approx(0.5) and row.metrics["vqa-novelty"].n == 4
    assert [q.text for q in oracle.asked] == ["Is this a pet?", "What kind of pet is this?"]
    assert oracle.asked[0].yes_no and not oracle.asked[1].yes_no
    assert judge.record() == {
        "name": "scripted",
        "questions": {"validity": VALIDITY_QUESTION, "vqa-novelty": KIND_QUESTION},
    }
    assert list(row.metrics).index("novelty") < list(row.metrics).index("validity")


def test_costs_are_recorded_beside_renders_and_reported_as_metrics(tmp_path):
    record_costs(tmp_path, {"render-seconds": [0.25]})
    assert recorded_costs(tmp_path) == {"render-seconds": [0.25]}
    assert recorded_costs(tmp_path / "elsewhere") == {}
    costs = {"render-seconds": [0.5, 0.7], "train-seconds": [12.0, 14.0]}
    rows = evaluate_image_sets(
        FixedClip(), [ImageSet("x", "concept", _images(3), EvaluationTarget("pet"), costs=costs)]
    )
    metrics = rows[0].metrics.metrics
    assert metrics["render-seconds"].mean == pytest.approx(0.6) and metrics["train-seconds"] == Summary(13.0, 1.0, 2)
    assert metrics["vendi"].n == 3 and math.isnan(metrics["vendi"].std)
    line = dict(zip(*[r.split(",") for r in results_csv(rows).splitlines()], strict=True))
    assert line["vendi_std"] == "" and float(line["vendi_mean"]) == pytest.approx(metrics["vendi"].mean, abs=1e-6)
    assert line["train-seconds_mean"] == "13.000000"
    judged = results_json(rows, "fixed", {"name": "j", "questions": {}})
    assert judged["judge"]["name"] == "j" and "judge" not in results_json(rows, "fixed")


def test_set_metrics_pool_as_the_mean_over_rows_per_image_ones_pool_every_image():
    assert pool_metric("vendi", [Summary.of_set(2.0, 10), Summary.of_set(4.0, 10)]) == Summary(3.0, 1.0, 2)
    pooled = pool_metric("positive", [Summary.of([0.1, 0.3]), Summary.of([0.5])])
    assert pooled.n == 3 and pooled.mean == pytest.approx(0.3)


def test_clip_zeroshot_judges_validity_by_its_category_winning_among_the_built_in_ones(tiny):
    """The tiny world's CLIP tells few categories apart; an apple is plainly a fruit and nothing is furniture."""
    oracle = load_oracle("clip-zeroshot", tiny, OracleOptions())
    pictures = [synthetic_picture(word) for word in ("apple", "cat", "rose")]

    def validity(category: str) -> list[str]:
        return oracle.ask(pictures, Question(category, wording=VALIDITY_QUESTION.format(category), yes_no=True), [])

    assert validity("fruit")[0] == "yes"
    assert validity("furniture") == ["no"] * 3
    kind = Question("pet", wording=KIND_QUESTION.format("pet"))
    answers = oracle.ask(pictures, kind, [])
    assert set(answers) <= set(known_members("pet")), "it picks known members: its vqa-novelty is 0 by design"


TABLE_ORDER = (
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


def test_rows_keep_the_metric_order_of_the_table():
    """The columns follow the table whatever order a row holds its metrics in, and each value lands in its column."""
    scrambled = {
        "train-seconds": Summary(13.0, 1.0, 2),
        "vendi": Summary.of_set(2.5, 3),
        "positive": Summary(0.25, 0.05, 3),
        "novelty": Summary(0.75, 0.0, 3),
    }
    only_negative = {"negative": Summary(0.125, 0.0, 1)}
    rows = [
        EvaluationRow("m", ConceptMetrics("first", "pet", ("cat", "dog"), scrambled, {})),
        EvaluationRow("n", ConceptMetrics("second", "pet", (), only_negative, {})),
    ]
    header, first, second = (line.split(",") for line in results_csv(rows).splitlines())
    metrics = [f"{metric}_{field}" for metric in TABLE_ORDER for field in ("mean", "std", "n")]
    assert header == ["name", "method", "category", "negatives", *metrics]
    assert first[:4] == ["first", "m", "pet", "cat;dog"] and second[:4] == ["second", "n", "pet", ""]
    filled = {column: value for column, value in zip(header, first, strict=True) if value and column in metrics}
    assert filled == {
        "positive_mean": "0.250000",
        "positive_std": "0.050000",
        "positive_n": "3",
        "novelty_mean": "0.750000",
        "novelty_std": "0.000000",
        "novelty_n": "3",
        "vendi_mean": "2.500000",
        "vendi_n": "3",
        "train-seconds_mean": "13.000000",
        "train-seconds_std": "1.000000",
        "train-seconds_n": "2",
    }
    assert [column for column, value in zip(header, second, strict=True) if value and column in metrics] == [
        "negative_mean",
        "negative_std",
        "negative_n",
    ]
    costs = {"train-seconds": [12.0], "render-seconds": [0.5]}  # given before the measured metrics
    image_set = ImageSet("x", "concept", _images(3), EvaluationTarget("pet", ("cat",)), costs=costs)
    (evaluated,) = evaluate_image_sets(FixedClip(), [image_set])
    names = list(evaluated.metrics.metrics)
    assert {"positive", "negative", "vendi", "render-seconds", "train-seconds"} <= set(names)
    assert names == sorted(names, key=TABLE_ORDER.index)
