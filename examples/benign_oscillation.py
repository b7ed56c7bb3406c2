"""Example: benign oscillation (Lu et al. 2023) — a large learning rate learns the weak feature.

Run from the repository root:  .venv/bin/python examples/benign_oscillation.py   (about 25 s)
Trains Lu et al.'s ReLU² CNN with batch-1 SGD on their feature-noise data, at a sweep of
learning rates η = c·m/‖u‖² in one vectorised population (3 seeds), and prints for each rate the
accuracy on test points that carry only the weak feature, the weak-feature alignment the
filters reached, and the share of steps in which the strong training points oscillate.
"""


import lrlab
from lrlab.config import FeatureNoiseConfig, TrainConfig
from lrlab.probes.oscillation import benign_probes

data_cfg = FeatureNoiseConfig(d=64, n_train=16, strong_frac=0.5, strong_norm=1.0, weak_norm=0.15, noise_std=0.045)
seeds = [0, 1, 2]
data = [lrlab.feature_noise(data_cfg, s) for s in seeds]
m = 8
model = lrlab.ReLU2CNN(d=data_cfg.d, filters=m, init_std=0.01)
rates = [0.05, 0.1, 0.2, 0.3, 0.35, 0.4]  # the paper's window is c ∈ [0.25, 0.4]
unit = m / data_cfg.strong_norm ** 2
members = [lrlab.Member(f"c={c}", s, lrlab.Constant(c * unit), data_index=i)
           for c in rates for i, s in enumerate(seeds)]
probes = benign_probes(model, data, [mb.data_index for mb in members], delta=0.1)
res = lrlab.train_population(model, members, [d.train for d in data], {"weak": [d.test_weak for d in data]},
                             TrainConfig(loss="margin_squared", steps=8000, batch_size=1, eval_every=5, threads=1),
                             probes=probes)

acc = res.final("weak.acc")
align = res.final("align.weak")
osc = res.curve("oscillating")
print("c      weak-only test acc   weak alignment   oscillating share (2nd half)")
for c in rates:
    ks = [k for k, mb in enumerate(members) if mb.name == f"c={c}"]
    share = osc[ks][osc.index >= 4000].mean().mean()
    print(f"{c:<6} {acc[ks].mean():>12.3f} {align[ks].mean():>18.2f} {share:>18.2f}")
