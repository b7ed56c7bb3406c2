"""Example: AutoDecay in your own PyTorch training loop (You et al. 2019, appendix A.1).

Run from the repository root:  .venv/bin/python examples/autodecay.py   (about 30 s)
Trains a small MLP on PS10 with plain torch.optim.SGD. `scheduler.step(epoch_loss)` decays the
learning rate ×0.1 when the smoothed training loss has plateaued after a significant drop, and
sets `scheduler.should_stop` when it plateaus without one.
"""

import torch
from torch import nn

import lrlab
from lrlab.config import PS10Config

torch.manual_seed(0)
split = lrlab.ps10(PS10Config(n_train=10000, n_test=2000, image_size=2, noise_frac=0.0), seed=0)
x, y = split.train.x.flatten(1), split.train.y
net = nn.Sequential(nn.Linear(x.shape[1], 512), nn.ReLU(), nn.Linear(512, 10))
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
scheduler = lrlab.AutoDecay(opt, window=5, tol=0.02, drop=0.9, factor=0.1, max_decays=2)

for epoch in range(1, 201):
    perm = torch.randperm(len(y))
    total = 0.0
    for i in range(0, len(y), 128):
        idx = perm[i:i + 128]
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
    scheduler.step(total / len(y))
    if scheduler.history[-1]["action"] != "continue":
        print(f"epoch {epoch}: {scheduler.history[-1]['action']}, lr now {scheduler.get_last_lr()[0]:g}")
    if scheduler.should_stop:
        break

with torch.no_grad():
    pred = net(split.test.x.flatten(1)).argmax(1)
for g, name in enumerate(split.test.group_names[:2]):
    mask = split.test.group == g
    print(f"test accuracy on {name} patterns: {(pred[mask] == split.test.y[mask]).float().mean():.3f}")
print(f"stopped after {epoch} epochs with {scheduler.decays} decays")
