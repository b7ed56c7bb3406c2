"""Figures and the Markdown report written by ``lrlab verify``."""

from .figures import epoch_curves, group_curves, save, verdict_bars
from .markdown import verdict_table, write_report

__all__ = ["epoch_curves", "group_curves", "save", "verdict_bars", "verdict_table", "write_report"]
