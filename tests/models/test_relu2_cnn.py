"""The ReLU² CNN of Lu et al.: a hand-computed output, its module form, init and errors."""

from __future__ import annotations

import pytest
import torch

from lrlab.config import FeatureNoiseConfig, ReLU2CNNConfig
from lrlab.data import feature_noise
from lrlab.models import ReLU2CNN, ReLU2CNNModule, make_model


def test_output_against_a_hand_computed_case():
    # m = 2 filters per class, d = 2, two patches
    W = torch.tensor([[[1.0, 0.0], [0.0, 2.0]],     # class +: w+1, w+2
                      [[-1.0, 1.0], [3.0, 0.0]]])   # class −: w−1, w−2
    x = torch.tensor([[1.0, 1.0], [-1.0, 0.5]])      # patches x1, x2
    # F+ = (1/2)[relu(1)² + relu(2)² + relu(-1)² + relu(1)²] = (1 + 4 + 0 + 1)/2 = 3
    # F− = (1/2)[relu(0)² + relu(3)² + relu(1.5)² + relu(-3)²] = (0 + 9 + 2.25 + 0)/2 = 5.625
    model = ReLU2CNN(d=2, filters=2, patches=2)
    out = model.forward({"W": W[None]}, x[None, None])
    assert out.shape == (1, 1)
    assert float(out) == pytest.approx(3 - 5.625)
    assert float(ReLU2CNNModule(W)(x[None]).detach()) == pytest.approx(3 - 5.625)


def test_population_forward_equals_each_members_module():
    model = ReLU2CNN(d=8, filters=3, init_std=0.5)
    params = model.init([0, 1, 2])
    assert params["W"].shape == (3, 2, 3, 8)
    x = torch.randn(3, 5, 3, 8)
    out = model.forward(params, x)
    for k in range(3):
        assert torch.allclose(out[k], model.to_module(params, k)(x[k]), atol=1e-6)


def test_init_is_seeded_and_scaled():
    model = ReLU2CNN(d=64, filters=8, init_std=0.01)
    a, b = model.init([4, 5]), model.init([4])
    assert torch.equal(a["W"][0], b["W"][0]) and not torch.equal(a["W"][0], a["W"][1])
    assert float(a["W"].std()) == pytest.approx(0.01, rel=0.1)


def test_errors():
    with pytest.raises(ValueError, match="filters must be a positive integer, got 0"):
        ReLU2CNN(d=4, filters=0)
    with pytest.raises(ValueError, match=r"inputs must be \[K, B, 3, 4\]"):
        ReLU2CNN(d=4).forward({"W": torch.zeros(1, 2, 8, 4)}, torch.zeros(1, 2, 12))
    with pytest.raises(ValueError, match="relu2_cnn' needs binary data of patches"):
        make_model(ReLU2CNNConfig(), (3, 32, 32))


def test_make_model_reads_the_data_shape():
    fn = feature_noise(FeatureNoiseConfig(d=10, n_train=4), 0)
    model = make_model(ReLU2CNNConfig(filters=4), fn.train.input_shape)
    assert isinstance(model, ReLU2CNN) and model.d == 10 and model.m == 4 and model.patches == 3
