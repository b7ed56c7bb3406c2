"""Training: the population trainer and its schedules (the losses are in :mod:`lrlab.losses`)."""

from .autodecay import AutoDecay, AutoDecayRule, AutoDecaySchedule
from .population import Member, PopulationResult, choose_mode, grid, train_population
from .schedules import Constant, Cosine, Schedule, StepDecay, Until, from_config, lr_table, total_lr

__all__ = ["AutoDecay", "AutoDecayRule", "AutoDecaySchedule", "Constant", "Cosine", "Member", "PopulationResult",
           "Schedule", "StepDecay", "Until", "choose_mode", "from_config", "grid", "lr_table", "total_lr",
           "train_population"]
