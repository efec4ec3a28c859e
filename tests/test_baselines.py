"""Baselines render the category with the negatives as their negative prompt: the negatives reach the image."""

import numpy as np
import pytest

from conceptlab.engine.evaluation.baselines import BaselineRequest, load_baseline
from conceptlab.engine.models.loading import ModelChoice

TINY = ModelChoice("tiny", device="cpu", dtype="float32")


def _render(name: str, negatives: tuple[str, ...]) -> np.ndarray:
    request = BaselineRequest("pet", negatives, count=1, seed=3, backend=TINY, size=32, steps=2, prior_steps=5)
    (image,) = load_baseline(name).render(request)
    return np.asarray(image, dtype=np.int16)


@pytest.mark.parametrize("name", ["kandinsky-neg", "sd-neg"])
def test_negatives_reach_the_baselines_images(name):
    cat_dog = _render(name, ("cat", "dog"))
    assert np.array_equal(cat_dog, _render(name, ("cat", "dog")))  # same seed, same image
    for other in (("chair", "lamp"), ()):
        assert np.abs(cat_dog - _render(name, other)).mean() > 0.5, other
