"""Binary data sets of controlled separability for the Huang et al. (2020) study, and separability checks.

Every generator returns a :class:`Split` of binary :class:`Dataset` s (labels ±1 as floats, one
group ``"all"``), deterministic in ``seed``: the training set, then the test set, are drawn from
one ``torch.Generator`` seeded with it. "Separable" means separable by a hyperplane through the
origin (∃ w: y_α wᵀx_α > 0 for all α), which is what a bias-free linear network can fit.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import torch
from scipy.optimize import linprog
from torch import Tensor

from .dataset import Dataset, Split
from .images import cifar10_vectors

__all__ = ["cifar_two_class", "degenerate_nonseparable", "degenerate_separable", "gaussian_data",
           "gaussian_direction",
           "is_linearly_separable", "separable_direction_margin"]

#: Test-set size of the degenerate data sets: every test input is ±x̂, so a few examples suffice.
DEGENERATE_N_TEST = 100
#: Test-set size of :func:`gaussian_data`: enough for a test accuracy to ±1.6% (one std at 50%).
GAUSSIAN_N_TEST = 1000


def _check_positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _binary(x: Tensor, y: Tensor) -> Dataset:
    return Dataset(x, y.to(x.dtype), torch.zeros(len(y), dtype=torch.long), ("all",), "binary", 2)


def _unit_vector(d: int, g: torch.Generator, dtype: torch.dtype) -> Tensor:
    """A uniformly random unit vector of R^d, normalised in float64 (so |x̂| = 1 to rounding)."""
    v = torch.randn(d, generator=g, dtype=torch.float64)
    return (v / v.norm()).to(dtype)


def _signs(n: int, g: torch.Generator) -> Tensor:
    """n independent uniform ±1 (float64)."""
    return torch.randint(0, 2, (n,), generator=g).double() * 2 - 1


def degenerate_separable(n: int, d: int, seed: int, n_test: int = DEGENERATE_N_TEST,
                         dtype: torch.dtype = torch.float32) -> Split:
    """Separable degenerate data: x_α = y_α x̂ with one random unit x̂ ∈ R^d, y_α uniform ±1.

    Every example has margin exactly 1 along x̂. The test set shares x̂ and draws fresh labels.
    """
    _check_positive_int("n", n)
    _check_positive_int("d", d)
    _check_positive_int("n_test", n_test)
    g = torch.Generator().manual_seed(int(seed))
    xhat = _unit_vector(d, g, dtype)

    def part(m: int) -> Dataset:
        y = _signs(m, g).to(dtype)
        return _binary(y[:, None] * xhat, y)

    train = part(n)
    return Split(train, part(n_test))


def degenerate_nonseparable(n: int, d: int, p: float, seed: int, n_test: int = DEGENERATE_N_TEST,
                            dtype: torch.dtype = torch.float32) -> Split:
    """Non-separable degenerate data: every x_α = x̂ (a random unit vector of R^d); exactly
    round(p·n) examples labelled +1 at random positions, the rest −1. The test set is built the
    same way (round(p·n_test) labels +1).

    Both label classes must occur in both sets (else the data would be separable), so
    0 < round(p·n) < n and likewise for n_test. The realised fraction round(p·n)/n is the p of
    the closed-form recurrence (:mod:`lrlab.recurrences`).
    """
    _check_positive_int("n", n)
    _check_positive_int("d", d)
    _check_positive_int("n_test", n_test)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < float(p) < 1.0:
        raise ValueError(f"p (the fraction of +1 labels) must lie in (0, 1), got {p!r}")
    for name, m in (("n", n), ("n_test", n_test)):
        k = round(p * m)
        if not 0 < k < m:
            raise ValueError(f"p={p} labels round(p·{name})={k} of {name}={m} examples +1; need both "
                             "labels present (0 < round(p·n) < n) for non-separable data")
    g = torch.Generator().manual_seed(int(seed))
    xhat = _unit_vector(d, g, dtype)

    def part(m: int) -> Dataset:
        y = -torch.ones(m, dtype=dtype)
        y[torch.randperm(m, generator=g)[: round(p * m)]] = 1.0
        return _binary(xhat.expand(m, d).clone(), y)

    train = part(n)
    return Split(train, part(n_test))


def gaussian_data(n: int, d: int, seed: int, margin: float = 0.0, flip: float = 0.0,
                  n_test: int = GAUSSIAN_N_TEST, dtype: torch.dtype = torch.float32) -> Split:
    """Gaussian inputs labelled by a random unit direction w*, pushed apart by ``margin``, with
    training labels flipped at rate ``flip``.

    Construction: z ~ N(0, I_d/d); y = sign(w*ᵀz) (+1 on the null set w*ᵀz = 0); x = z + y·margin·w*.
    So y·w*ᵀx = |w*ᵀz| + margin ≥ margin: with ``flip=0`` the data are separable by w* with margin
    at least ``margin`` (> 0 whenever margin > 0; almost surely for margin = 0). Then every
    TRAINING label flips independently with probability ``flip`` (test labels stay clean). Any flip
    makes the set non-separable along w*; whether some other hyperplane still separates it depends
    on n and d (with n ≤ d generic points are always separable) — check with
    :func:`is_linearly_separable`. :func:`gaussian_direction` gives w*.
    """
    _check_positive_int("n", n)
    _check_positive_int("d", d)
    _check_positive_int("n_test", n_test)
    if not (math.isfinite(float(margin)) and margin >= 0):
        raise ValueError(f"margin must be a non-negative finite number, got {margin!r}")
    if isinstance(flip, bool) or not isinstance(flip, (int, float)) or not 0.0 <= float(flip) < 0.5:
        raise ValueError(f"flip (the label-noise rate) must lie in [0, 0.5), got {flip!r}")
    g = torch.Generator().manual_seed(int(seed))
    w_star = _unit_vector(d, g, torch.float64)  # the first draw: gaussian_direction repeats it

    def part(m: int, rate: float) -> Dataset:
        z = torch.randn(m, d, generator=g, dtype=torch.float64) / math.sqrt(d)
        y = torch.where(z @ w_star >= 0, 1.0, -1.0).double()
        x = z + (y * float(margin))[:, None] * w_star
        flips = torch.rand(m, generator=g, dtype=torch.float64) < rate
        return _binary(x.to(dtype), torch.where(flips, -y, y).to(dtype))

    train = part(n, float(flip))
    return Split(train, part(n_test, 0.0))


def gaussian_direction(d: int, seed: int) -> Tensor:
    """The unit labelling direction w* [d] (float64) of ``gaussian_data(n, d, seed, ...)``."""
    _check_positive_int("d", d)
    return _unit_vector(d, torch.Generator().manual_seed(int(seed)), torch.float64)


def cifar_two_class(classes: tuple[int, int], n_per_class: int, test_per_class: int, seed: int,
                    pool: int = 4, data_dir: str | os.PathLike | None = None) -> Split:
    """Two CIFAR-10 classes as a binary task: +1 for ``classes[0]``, −1 for ``classes[1]``.

    The images are exactly those :func:`lrlab.data.cifar10_vectors` gives for these two classes
    (class-balanced subsets, training drawn by ``seed`` and test fixed, normalised, average-pooled
    by ``pool``, flattened). It loads all ten classes' subsets and keeps two, so it briefly holds
    five times the float images it returns.
    """
    if (not isinstance(classes, (tuple, list)) or len(classes) != 2
            or any(isinstance(c, bool) or not isinstance(c, int) for c in classes)):
        raise ValueError(f"classes must be two class indices, got {classes!r}")
    a, b = int(classes[0]), int(classes[1])
    if a == b:
        raise ValueError(f"classes must be two different classes, got {classes!r}")
    _check_positive_int("n_per_class", n_per_class)
    _check_positive_int("test_per_class", test_per_class)
    split = cifar10_vectors(n_per_class, test_per_class, seed, pool=pool, data_dir=data_dir)
    C = split.train.num_classes
    if not (0 <= a < C and 0 <= b < C):
        raise ValueError(f"classes must lie in [0, {C}), got {classes!r}")

    def part(ds: Dataset) -> Dataset:
        keep = (ds.y == a) | (ds.y == b)
        y = torch.where(ds.y[keep] == a, 1.0, -1.0).to(ds.x.dtype)
        return _binary(ds.x[keep], y)

    return Split(part(split.train), part(split.test))


def _signed_rows(x: Tensor, y: Tensor) -> Tensor:
    """z_α = y_α x_α as float64 [n, d]: the data are separable iff ∃ w with z w > 0."""
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.dim() < 2 or math.prod(x.shape[1:]) == 0:
        raise ValueError(f"x must be [n, ...] with at least one feature, got shape {tuple(x.shape)}")
    xs, ys = x.flatten(1).double(), y.double().reshape(-1)
    if ys.shape[0] != xs.shape[0] or xs.shape[0] == 0:
        raise ValueError(f"need x [n, ...] and y [n] with n >= 1, got shapes {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    if not bool(((ys == 1) | (ys == -1)).all()):
        raise ValueError("labels must be ±1")
    return ys[:, None] * xs


def separable_direction_margin(x: Tensor, y: Tensor, w: Tensor) -> float:
    """min_α y_α wᵀx_α / |w| (inputs flattened): positive iff w separates the data."""
    z = _signed_rows(x, y)
    w = torch.as_tensor(w).double().reshape(-1)
    if w.shape[0] != z.shape[1]:
        raise ValueError(f"w has {w.shape[0]} entries, inputs have {z.shape[1]} features")
    norm = float(w.norm())
    if not norm > 0:
        raise ValueError("w must be nonzero")
    return float((z @ w).min()) / norm


def is_linearly_separable(x: Tensor, y: Tensor, iters: int = 10000, lp: bool = True) -> bool:
    """Is there a w with y_α wᵀx_α > 0 for every example (a hyperplane through the origin)?

    1. Exact rejections: a zero input, or two equal inputs with different labels (or opposite
       inputs with equal labels) — e.g. degenerate non-separable data — give False at once.
    2. Batch perceptron on the rows z_α = y_α x_α/|x_α|: up to ``iters`` updates
       w ← w + mean of the rows with wᵀz_α ≤ 0. If the data are separable with normalised
       margin γ it stops within 1/γ² updates and returns True (w is then a certificate).
    3. If the perceptron has not separated the data, ``lp=True`` settles it with a linear
       programme (scipy HiGHS: find w with z w ≥ 1), exact up to the solver's tolerances.
       With ``lp=False`` a False after ``iters`` updates is evidence, not proof, of
       non-separability (the margin may be below 1/√iters).
    """
    if not isinstance(iters, int) or isinstance(iters, bool) or iters < 0:
        raise ValueError(f"iters must be a non-negative integer, got {iters!r}")
    z = _signed_rows(x, y)
    norms = z.norm(dim=1)
    if bool((norms == 0).any()):
        return False  # y·wᵀ0 = 0 for every w
    uz = torch.unique(z, dim=0)
    if torch.unique(torch.cat([uz, -uz]), dim=0).shape[0] < 2 * uz.shape[0]:
        return False  # some z_α = −z_β: wᵀz_α > 0 and wᵀz_β > 0 cannot both hold
    zn = z / norms[:, None]
    w = zn.mean(0)
    for t in range(iters + 1):
        bad = (zn @ w) <= 0
        if not bool(bad.any()):
            return True
        if t < iters:
            w = w + zn[bad].mean(0)
    if not lp:
        return False
    n, d = zn.shape
    res = linprog(np.zeros(d), A_ub=-zn.numpy(), b_ub=-np.ones(n), bounds=[(None, None)] * d,
                  method="highs")
    if res.status == 0:
        return bool((zn.numpy() @ res.x > 0).all())
    if res.status == 2:
        return False
    warnings.warn(f"is_linearly_separable: the linear programme ended with status {res.status} "
                  f"({res.message}); answering from the perceptron (False: not separated in "
                  f"{iters} updates)", RuntimeWarning, stacklevel=2)
    return False
