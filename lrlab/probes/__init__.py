"""Probes: measurements taken during training that never change it."""

from .accuracy import StackedData, group_metrics, metric_names

__all__ = ["StackedData", "group_metrics", "metric_names"]
