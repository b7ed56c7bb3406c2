"""Example: the phase diagram of a small ReLU network (Lewkowycz et al. 2020) from Python.

Run from the repository root:  .venv/bin/python examples/phase_diagram.py
Measures λ0 (top NTK eigenvalue), trains one vectorised population of full-batch GD runs at
η = c/λ0 for c from 0.5 to 16, classifies each as lazy / catapult / divergent, and draws it.
"""

from pathlib import Path

import torch

import lrlab

torch.manual_seed(0)
x = torch.randn(64, 10)
y = torch.sin(x[:, 0]) + 0.1 * torch.randn(64)          # a regression target: squared loss

pdg = lrlab.phase_diagram(lambda: lrlab.NTKMLP(10, 512, depth=2, activation="relu"), x, y, "squared",
                          steps=300, progress=True)
print(f"λ0 = {pdg.lam0:.4g}")
print(pdg.table().round(4).to_string(index=False))
print("largest learning rate that converged:", pdg.recommended_lr)
Path("lrlab-out").mkdir(exist_ok=True)
lrlab.plot_phase_diagram(pdg, "lrlab-out/phase-example.png")
print("figure: lrlab-out/phase-example.png")
