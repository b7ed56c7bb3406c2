"""Example: train a learning-rate × seed population on the Li–Wei–Ma mixture from Python.

Run from the repository root:  .venv/bin/python examples/population_sweep.py
"""

from pathlib import Path

import lrlab
from lrlab.config import Li2019MixtureConfig

data_cfg = Li2019MixtureConfig(d=100, n_train=1000, n_test=3000, margin=0.1, p_noise=0.2,
                               q_zeta_norm=0.15, q_noise=0.0, q_alpha_min=0.5, q_scale=6.0)
split = lrlab.li2019_mixture(data_cfg, seed=0)          # x, y and a group tag per example
model = lrlab.TwoLayerReLU(d_in=split.train.x.shape[1], width=200)

# 6 members: two schedules × three seeds; members with the same seed share init and batch order
members = lrlab.grid({"large": lrlab.StepDecay(0.4, (1000,), 0.025),
                      "small": lrlab.Constant(0.01)}, seeds=[0, 1, 2])
train = lrlab.TrainConfig(loss="logistic", steps=2000, batch_size=8, eval_every=100, threads=1)
res = lrlab.train_population(model, members, split.train, split.test, train, progress=True)

print(res.members[["member", "name", "seed", "total_lr", "diverged"]])
print("final P-only test accuracy per member:")
print(res.final("test.P-only.acc"))
Path("lrlab-out").mkdir(exist_ok=True)
res.records.to_parquet("lrlab-out/example-records.parquet")   # member, step, metric, value
