"""Example: edge of stability (Cohen et al. 2021) on a small CIFAR-10 MLP, from Python.

Run from the repository root:  .venv/bin/python examples/edge_of_stability.py   (about 2 min)
Full-batch GD with the squared loss on 1,000 CIFAR-10 images (pooled to 8×8); the sharpness
(top Hessian eigenvalue) is measured every 20 steps. It starts at λ0 and, at η = 2/(2·λ0),
must double to reach the stability limit 2/η — and then hovers there.
"""

from pathlib import Path

import torch
from torch import nn

import lrlab
from lrlab.probes import top_hessian_eigs
from lrlab.threads import set_threads

set_threads(1)
split = lrlab.cifar10_vectors(n_per_class=100, test_per_class=1, seed=0, pool=4)
x, y = split.train.x, split.train.y


def make_net() -> nn.Module:
    return nn.Sequential(nn.Linear(x.shape[1], 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh(),
                         nn.Linear(200, 10))


torch.manual_seed(0)
lam0 = top_hessian_eigs(make_net(), x, y, "squared", k=1).values[0].item()
trace = lrlab.track_sharpness(make_net, x, y, "squared", lrs=[2 / (1.5 * lam0), 2 / (2 * lam0)],
                              steps=1500, every=20, seed=0, progress=True)
print(f"initial sharpness λ0 = {lam0:.3f}")
print(trace.summary(band=0.1).round(3).to_string(index=False))
Path("lrlab-out").mkdir(exist_ok=True)
lrlab.plot_sharpness(trace, "lrlab-out/eos-example.png")
print("figure: lrlab-out/eos-example.png")
