"""Probes: measurements taken during training that never change it."""

from .accuracy import group_metrics, metric_names
from .curvature import (
    HessianEigs,
    hessian_trace,
    hutchinson_trace,
    hvp,
    lanczos,
    loss_fn,
    population_top_eigs,
    power_iteration,
    top_hessian_eigs,
)
from .ntk import ntk_matrix, ntk_top_eigenvalue, population_ntk_top_eigenvalue

__all__ = ["group_metrics", "metric_names",
           "HessianEigs", "hessian_trace", "hutchinson_trace", "hvp", "lanczos", "loss_fn",
           "population_top_eigs", "power_iteration", "top_hessian_eigs",
           "ntk_matrix", "ntk_top_eigenvalue", "population_ntk_top_eigenvalue"]
