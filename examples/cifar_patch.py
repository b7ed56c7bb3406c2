"""Example: the Li–Wei–Ma patch experiment from Python — patched CIFAR-10, a BatchNorm CNN
population, large LR + anneal vs small LR vs small LR + activation noise.

Run from the repository root:  .venv/bin/python examples/cifar_patch.py
(CIFAR-10 comes from $LRLAB_DATA or ../shared/data/cifar10-jpeg.zip; decoded once into a cache.)
"""

from pathlib import Path

import lrlab
from lrlab.config import Cifar10PatchConfig, PatchConfig

# 2,000 training images (200 per class) with the class patch; clean, patched and patch-only
# evaluation sets. Training images stay uint8 and are patched afresh on every use.
split = lrlab.cifar10_split(Cifar10PatchConfig(n_per_class=200, n_test_per_class=50,
                                               patch=PatchConfig()), progress=True)
print("training images:", split.train.n, "evaluation sets:", {k: len(v) for k, v in split.evals.items()})

# Any nn.Module factory becomes a population; BatchNorm statistics are stacked per member.
model = lrlab.FromModule(lambda: lrlab.SmallCNN(10, width=16, activation_noise=True),
                         channels_last=True)
steps_per_epoch = split.train.n // 128
anneal = 4 * steps_per_epoch
members = lrlab.grid({"large": lrlab.StepDecay(0.1, (anneal,), 0.04),
                      "small": lrlab.Constant(0.004),
                      "noise": lrlab.Constant(0.004)},
                     seeds=[0, 1], data_per_seed=False,
                     noise={"noise": lrlab.Until(0.4, anneal)})   # activation-noise σ schedule
train = lrlab.TrainConfig(loss="cross_entropy", steps=8 * steps_per_epoch, batch_size=128,
                          momentum=0.9, nesterov=True, weight_decay=5e-4,
                          eval_every=steps_per_epoch, mode="loop", threads=1)
res = lrlab.train_population(model, members, split.train, split.evals, train, progress=True)

print(res.members[["member", "name", "seed", "diverged"]])
for metric in ("test.acc", "test_patched.acc", "patch_only.acc"):
    print(metric, res.final(metric).round(3).to_dict())
Path("lrlab-out").mkdir(exist_ok=True)
res.records.to_parquet("lrlab-out/example-patch-records.parquet")
