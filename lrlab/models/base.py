"""What the population trainer needs from a model: stacked init and a batched forward."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from torch import Tensor


@runtime_checkable
class PopulationModel(Protocol):
    """A model family whose K members' parameters are stacked along a leading axis.

    ``init(seeds)`` returns a dict of tensors of shape [K, ...], member k drawn from seed
    ``seeds[k]``; ``forward(params, x)`` maps inputs [K, B, *input_shape] to outputs [K, B]
    (one logit or value) or [K, B, C]. Parameters named in ``frozen`` are not trained.

    Optional attributes the trainer honours: ``buffer_names`` (entries of the state dict that
    are state, not parameters — e.g. BatchNorm running statistics, updated in place by a
    ``train=True`` forward), ``noise_buffers`` (activation-noise σ buffers the trainer sets
    from each member's noise schedule) and ``stochastic`` (the forward draws random numbers,
    so the trainer seeds it per step).
    """

    frozen: frozenset[str]

    def init(self, seeds: Sequence[int]) -> dict[str, Tensor]: ...

    def forward(self, params: dict[str, Tensor], x: Tensor, train: bool = False) -> Tensor: ...

    def flops_per_example(self, input_shape: tuple[int, ...]) -> int:
        """Floating-point operations of one forward pass on one example (for cost models)."""
        ...
