import pytest
import torch
import torch.nn.functional as F

from conceptlab.engine.training.objectives import ObjectiveWeights, conceptlab_loss


def _unit(*values):
    return F.normalize(torch.tensor(values, dtype=torch.float32), dim=-1)


def test_loss_matches_hand_computation():
    image = torch.tensor([1.0, 0.0, 0.0])
    positives = torch.stack([_unit(0.1, 1.0, 0.0), _unit(1.0, 1.0, 0.0)])  # cos 0.0995 and 0.7071
    negatives = torch.stack([_unit(0.25, 1.0, 0.0), _unit(0.5, 1.0, 0.0), _unit(0.1, 0.0, 1.0)])
    weights = ObjectiveWeights(positive_weights=(0.75, 0.25), positive_lambda=2.0)
    value = conceptlab_loss(image, positives, negatives, weights)
    pos = [0.1 / (1.01**0.5), min(0.28, 2**-0.5)]
    neg = [max(0.2, 0.25 / (1.0625**0.5)), max(0.2, 0.5 / (1.25**0.5)), max(0.2, 0.1 / (1.01**0.5))]
    expected = 0.5 * (sum(neg) / 3 + max(neg)) + 2.0 * (0.75 * (1 - pos[0]) + 0.25 * (1 - pos[1]))
    assert value.loss.item() == pytest.approx(expected, abs=1e-6)
    assert value.negative_similarities.tolist() == pytest.approx([0.2425, 0.4472, 0.0995], abs=1e-4)


def test_clamps_give_no_gradient_beyond_thresholds():
    weights = ObjectiveWeights(positive_weights=(1.0,))
    image = torch.tensor([1.0, 0.0], requires_grad=True)
    close_positive = _unit(1.0, 0.5)[None]  # cos 0.89 > 0.28: no reward for more
    far_negative = _unit(0.0, 1.0)[None]  # cos 0 < 0.2: no reward for less
    conceptlab_loss(image, close_positive, far_negative, weights).loss.backward()
    assert image.grad.abs().max() == 0


def test_without_negatives_only_positives_count():
    weights = ObjectiveWeights(positive_weights=(1.0,))
    image = torch.tensor([1.0, 0.0])
    value = conceptlab_loss(image, _unit(0.0, 1.0)[None], torch.empty(0, 2), weights)
    assert value.loss.item() == pytest.approx(1.0)
