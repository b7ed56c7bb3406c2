"""PS10, the Pattern Separation 10 dataset of You, Long, Wang & Jordan (2019) (docs/spec.md §4).

Structure (the paper's)
    ``n_classes`` = 10 classes. Every class owns ``n_simple`` = 10 *simple* patterns and
    ``n_complex`` = 100 *complex* patterns, each a point in R^3, so the pattern an example uses,
    given its class, carries log2 10 ≈ 3.32 bits (simple) or log2 100 ≈ 6.64 bits (complex).
    Half of the examples carry only a simple pattern, half only a complex one. The images are
    constant over height and width.

Generation (our choices; every number is a field of :class:`~lrlab.config.PS10Config`)
    * Patterns: all coordinates i.i.d. N(0, ``pattern_scale``²), drawn once per dataset seed;
      train and test share them.
    * An example: exactly n/2 simple-only and n/2 complex-only examples, at random positions;
      class uniform on the ``n_classes``; pattern uniform on that class's simple (or complex)
      patterns; the point is the pattern plus N(0, (``feature_noise``·``pattern_scale``)² I₃).
      The default ``feature_noise`` = 0.02 keeps the examples of one pattern tight next to the
      spacing of the 1000 complex points (median nearest-neighbour distance ≈ 0.2 ·
      ``pattern_scale``): the nearest-pattern rule then errs on ≈ 0.5% of complex-only and
      ~0% of simple-only examples (≈ 6% / 0.5% at 0.05, ≈ 27% / 5% at 0.1), so the task stays
      "memorize the patterns" rather than "fight label overlap".
    * Noise (training set only): ``round(noise_frac · n_train)`` examples, ⌊·/2⌋ of them
      simple-only and the rest complex-only, keep their input but get a label drawn uniformly
      from the *other* classes; they are tagged ``"noise"`` instead of ``"simple"`` /
      ``"complex"``, and ``y`` holds the random label, so accuracy on the noise group measures
      memorization. The clean draw does not depend on ``noise_frac`` (same inputs and true
      classes for every ``noise_frac``; a larger fraction relabels a superset of examples).
      The test set has no noise examples (its ``"noise"`` group is empty).

Channel layout (our choice; the paper leaves it open, docs/spec.md §4)
    The paper says "3×32×32 like CIFAR-10" *and* that the simple and complex sub-datasets are
    fed into different channels. A pattern is a point in R^3, so two sub-datasets in disjoint
    channels need at least 6 channels. Hence:

    * ``channels`` = 6 (default) and any even C ≥ 6: the image is C×S×S. Channels [0, C/2)
      carry the simple pattern (its 3 coordinates in channels 0, 1, 2, zeros in the rest of the
      half), channels [C/2, C) the complex pattern (coordinates in C/2, C/2+1, C/2+2). A
      simple-only example is zero in every complex channel and vice versa.
    * ``channels`` = 3: the literal 3×S×S variant. Both sub-datasets write their 3
      coordinates into channels 0, 1, 2, so they do *not* live in different channels; only the
      pattern sets tell them apart.

    Every pixel of a channel holds the same value; ``image_size`` = S (32 by default, smaller
    for fast runs).

Use :func:`ps10` for the train/test :class:`Split`, :func:`ps10_arrays` for the same draw with
the per-example bookkeeping (true class, pattern index, kind, noise flag), and
:func:`ps10_info` to check it (group counts, noise share, empirical class-conditional entropy
of the pattern index in bits against log2 ``n_simple`` and log2 ``n_complex``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import PS10Config
from .dataset import Dataset, Split

PS10_GROUPS = ("simple", "complex", "noise")
PATTERN_DIM = 3  # the paper's pattern space is R^3 (PS10Config checks channels against it)
SIMPLE, COMPLEX, NOISE = 0, 1, 2


@dataclass(frozen=True)
class PS10Part:
    """One split with its bookkeeping; every tensor has first dimension n.

    ``x`` float32 [n, C, S, S]; ``y`` long, the label trained on (random for noise examples);
    ``true_class`` long, the class of the pattern; ``kind`` long, 0 simple-only / 1
    complex-only; ``pattern`` long, the pattern's index within its class's simple (or complex)
    set; ``noise`` bool, relabelled examples; ``group`` long, index into :data:`PS10_GROUPS`.
    """

    x: Tensor
    y: Tensor
    true_class: Tensor
    kind: Tensor
    pattern: Tensor
    noise: Tensor
    group: Tensor
    num_classes: int

    def dataset(self) -> Dataset:
        return Dataset(self.x, self.y, self.group, PS10_GROUPS, "multiclass", self.num_classes)


@dataclass(frozen=True)
class PS10Draw:
    """Patterns (float64, [n_classes, n_simple or n_complex, 3]) and both splits."""

    cfg: PS10Config
    simple_patterns: Tensor
    complex_patterns: Tensor
    train: PS10Part
    test: PS10Part

    def split(self) -> Split:
        return Split(train=self.train.dataset(), test=self.test.dataset())


def _sub_seed(gen: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=gen))


def _sample(cfg: PS10Config, n: int, n_noise: int, simple_p: Tensor, complex_p: Tensor,
            gen: torch.Generator) -> PS10Part:
    K = cfg.n_classes
    # exactly n/2 of each kind, at random positions
    kind = torch.zeros(n, dtype=torch.long)
    kind[torch.randperm(n, generator=gen)[n // 2:]] = COMPLEX
    true_class = torch.randint(0, K, (n,), generator=gen)
    pat_s = torch.randint(0, cfg.n_simple, (n,), generator=gen)
    pat_c = torch.randint(0, cfg.n_complex, (n,), generator=gen)
    pattern = torch.where(kind == SIMPLE, pat_s, pat_c)
    point = torch.where((kind == SIMPLE)[:, None], simple_p[true_class, pat_s],
                        complex_p[true_class, pat_c])
    std = cfg.feature_noise * cfg.pattern_scale
    point = point + std * torch.randn(n, PATTERN_DIM, generator=gen, dtype=torch.float64)

    # noise: drawn whatever n_noise is, so the clean part above never depends on noise_frac
    order_s = torch.nonzero(kind == SIMPLE).squeeze(1)
    order_s = order_s[torch.randperm(len(order_s), generator=gen)]
    order_c = torch.nonzero(kind == COMPLEX).squeeze(1)
    order_c = order_c[torch.randperm(len(order_c), generator=gen)]
    shift = torch.randint(1, K, (n,), generator=gen)  # uniform on the other K - 1 classes
    noise = torch.zeros(n, dtype=torch.bool)
    noise[order_s[: n_noise // 2]] = True
    noise[order_c[: n_noise - n_noise // 2]] = True
    y = torch.where(noise, (true_class + shift) % K, true_class)
    group = torch.where(noise, torch.full_like(kind, NOISE), kind)

    C = cfg.channels
    feat = torch.zeros(n, C, dtype=torch.float64)
    if C == PATTERN_DIM:
        feat[:] = point
    else:
        half = C // 2
        s, c = kind == SIMPLE, kind == COMPLEX
        feat[s, :PATTERN_DIM] = point[s]
        feat[c, half: half + PATTERN_DIM] = point[c]
    S = cfg.image_size
    x = feat.to(torch.float32)[:, :, None, None].expand(n, C, S, S).contiguous()
    return PS10Part(x=x, y=y, true_class=true_class, kind=kind, pattern=pattern, noise=noise,
                    group=group, num_classes=K)


def ps10_arrays(cfg: PS10Config, seed: int) -> PS10Draw:
    """The full PS10 draw; a pure function of ``(cfg, seed)``.

    The seed's stream draws the patterns, then one sub-seed for the training set and one for
    the test set, so the test set does not change with ``n_train`` or ``noise_frac``.
    """
    gen = torch.Generator().manual_seed(int(seed))
    K = cfg.n_classes
    simple_p = cfg.pattern_scale * torch.randn(K, cfg.n_simple, PATTERN_DIM, generator=gen,
                                               dtype=torch.float64)
    complex_p = cfg.pattern_scale * torch.randn(K, cfg.n_complex, PATTERN_DIM, generator=gen,
                                                dtype=torch.float64)
    train_gen = torch.Generator().manual_seed(_sub_seed(gen))
    test_gen = torch.Generator().manual_seed(_sub_seed(gen))
    n_noise = round(cfg.noise_frac * cfg.n_train)
    train = _sample(cfg, cfg.n_train, n_noise, simple_p, complex_p, train_gen)
    test = _sample(cfg, cfg.n_test, 0, simple_p, complex_p, test_gen)
    return PS10Draw(cfg=cfg, simple_patterns=simple_p, complex_patterns=complex_p,
                    train=train, test=test)


def ps10(cfg: PS10Config, seed: int) -> Split:
    """PS10 train and test sets (groups ``simple`` / ``complex`` / ``noise``)."""
    return ps10_arrays(cfg, seed).split()


def conditional_entropy_bits(true_class: Tensor, pattern: Tensor) -> float:
    """Empirical H(pattern | class) in bits: Σ_c p̂(c) · H(p̂(pattern | c)) (plug-in estimate).

    The plug-in estimate is biased low by about (k − 1) / (2 m ln 2) bits for k patterns and
    m examples per class, so it approaches log2 k only with m ≫ k. NaN for no examples.
    """
    n = len(true_class)
    if n == 0:
        return math.nan
    total = 0.0
    for c in torch.unique(true_class).tolist():
        counts = torch.bincount(pattern[true_class == c]).to(torch.float64)
        counts = counts[counts > 0]
        m = float(counts.sum())
        p = counts / m
        total += m / n * float(-(p * torch.log2(p)).sum())
    return total


def _part_info(part: PS10Part) -> dict:
    n = len(part.y)
    simple, complex_ = part.kind == SIMPLE, part.kind == COMPLEX
    return {
        "n": n,
        "groups": {g: int((part.group == i).sum()) for i, g in enumerate(PS10_GROUPS)},
        "kinds": {"simple": int(simple.sum()), "complex": int(complex_.sum())},
        "noise_frac": float(part.noise.sum()) / n if n else math.nan,
        "noise_labels_differ": bool((part.y[part.noise] != part.true_class[part.noise]).all()),
        # over every example of the kind (noise ones too: their pattern is drawn the same way)
        "entropy_bits": {
            "simple": conditional_entropy_bits(part.true_class[simple], part.pattern[simple]),
            "complex": conditional_entropy_bits(part.true_class[complex_], part.pattern[complex_]),
        },
    }


def ps10_info(draw: PS10Draw) -> dict:
    """Checks of a draw: per split the group counts (``groups``), kind counts (``kinds``), the
    share of noise examples, whether every noise label differs from the true class, and the
    empirical class-conditional entropy of the pattern index in bits (``entropy_bits``);
    ``reference_bits`` holds log2 ``n_simple`` and log2 ``n_complex``.
    """
    cfg = draw.cfg
    return {
        "train": _part_info(draw.train),
        "test": _part_info(draw.test),
        "reference_bits": {"simple": math.log2(cfg.n_simple), "complex": math.log2(cfg.n_complex)},
    }
