"""Example: AutoDecay in PyTorch Lightning (You et al. 2019, appendix A.1).

Run from the repository root:  .venv/bin/python examples/autodecay_lightning.py   (about a minute)
Needs Lightning, which lrlab does not install:  pip install lightning

Lightning passes the monitored metric to a scheduler's ``step`` only for schedulers it treats as
"reduce on plateau": for AutoDecay say so with ``"reduce_on_plateau": True`` and name the metric
in ``"monitor"``. AutoDecay's stop is not Lightning's: the module's ``lr_scheduler_step`` hook
below ends the fit once ``scheduler.should_stop`` is True.
"""

import sys

import torch
from torch import nn
from torch.utils.data import TensorDataset

import lrlab
from lrlab.data import two_moons

try:
    import lightning as L
except ImportError:
    sys.exit("this example needs Lightning: pip install lightning")


class TwoMoonsMLP(L.LightningModule):
    """A small MLP whose optimizer is plain SGD and whose scheduler is AutoDecay."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)  # the epoch mean
        return loss

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.5)
        sched = lrlab.AutoDecay(opt, window=5, tol=0.02, drop=0.9, factor=0.1, max_decays=2)
        return {"optimizer": opt, "lr_scheduler": {
            "scheduler": sched, "monitor": "train_loss", "interval": "epoch",
            "reduce_on_plateau": True}}

    def lr_scheduler_step(self, scheduler, metric) -> None:
        """Lightning's hook for stepping a scheduler: AutoDecay's stop ends the fit."""
        scheduler.step(metric)
        if getattr(scheduler, "should_stop", False):
            self.trainer.should_stop = True


if __name__ == "__main__":
    L.seed_everything(0, verbose=False)
    loader = torch.utils.data.DataLoader(TensorDataset(*two_moons(1000, 0)), batch_size=200, shuffle=True)
    model = TwoMoonsMLP()
    trainer = L.Trainer(max_epochs=300, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, loader)
    sched = trainer.lr_scheduler_configs[0].scheduler
    for h in sched.history:
        if h["action"] != "continue":
            print(f"epoch {h['epoch']}: {h['action']} (smoothed loss {h['g']:.4f})")
    print(f"trained {trainer.current_epoch} epochs, {sched.decays} decay(s), "
          f"lr now {sched.get_last_lr()[0]:g}")
