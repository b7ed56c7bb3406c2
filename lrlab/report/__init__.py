"""Figures and the Markdown report written by ``lrlab verify``, and the plots of lrlab's analyses."""

from .eos import plot_sharpness
from .figures import PHASE_COLORS, epoch_curves, group_curves, save, subplots, verdict_bars
from .markdown import verdict_table, write_report
from .phase import plot_phase_diagram

__all__ = ["PHASE_COLORS", "epoch_curves", "group_curves", "plot_phase_diagram", "plot_sharpness", "save",
           "subplots", "verdict_bars", "verdict_table", "write_report"]
