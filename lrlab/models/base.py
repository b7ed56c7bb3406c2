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
    """

    frozen: frozenset[str]

    def init(self, seeds: Sequence[int]) -> dict[str, Tensor]: ...

    def forward(self, params: dict[str, Tensor], x: Tensor) -> Tensor: ...

    def flops_per_example(self, input_shape: tuple[int, ...]) -> int:
        """Floating-point operations of one forward pass on one example (for cost models)."""
        ...
