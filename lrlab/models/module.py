"""Any ``nn.Module`` as a population: stacked parameters, ``vmap(functional_call)`` forward."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap


class FromModule:
    """Wrap a factory of ``nn.Module`` so K copies train as one population.

    Member k is ``factory()`` built under ``torch.manual_seed(seeds[k])`` (the global RNG is
    restored afterwards). Modules with buffers (e.g. BatchNorm running statistics) are
    rejected for now: their state would need its own stacking and train/eval handling.
    """

    def __init__(self, factory: Callable[[], nn.Module], frozen: Sequence[str] = ()) -> None:
        if isinstance(factory, nn.Module) or not callable(factory):
            raise TypeError(f"FromModule needs a factory (a callable returning a fresh nn.Module, "
                            f"e.g. lambda: MyNet()), got {type(factory).__name__}")
        with torch.random.fork_rng(devices=[]):
            base = factory()
        if not isinstance(base, nn.Module):
            raise TypeError(f"factory returned {type(base).__name__}, expected an nn.Module")
        buffers = [n for n, _ in base.named_buffers()]
        if buffers:
            raise ValueError(
                f"modules with buffers are not supported by the population trainer yet: {buffers}"
            )
        names = {n for n, _ in base.named_parameters()}
        unknown = set(frozen) - names
        if unknown:
            raise ValueError(f"frozen names {sorted(unknown)} are not parameters; have {sorted(names)}")
        self.factory, self.base = factory, base.to("meta")
        self.frozen = frozenset(frozen)
        self._fwd = vmap(self._single)

    def _single(self, p: dict[str, Tensor], x: Tensor) -> Tensor:
        out = functional_call(self.base, p, (x,))
        return out.squeeze(-1) if out.dim() == 2 and out.shape[-1] == 1 else out

    def init(self, seeds: Sequence[int]) -> dict[str, Tensor]:
        members = []
        for s in seeds:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(s))
                m = self.factory()
            members.append({n: p.detach() for n, p in m.named_parameters()})
        return {k: torch.stack([m[k] for m in members]) for k in members[0]}

    def forward(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        return self._fwd(params, x)

    def flops_per_example(self, input_shape: tuple[int, ...]) -> int:
        from torch.utils.flop_counter import FlopCounterMode

        with torch.random.fork_rng(devices=[]), FlopCounterMode(display=False) as counter:
            self.factory()(torch.zeros(1, *input_shape))
        return int(counter.get_total_flops())
