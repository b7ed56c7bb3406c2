"""Any ``nn.Module`` as a population: stacked parameters and buffers, ``functional_call`` forward.

K members run through ``vmap(functional_call)``; a single member (loop mode) calls the module
functionally without vmap, which is what runs fastest for convolutional nets on CPU
(benchmarks/RESULTS.md). Buffers — BatchNorm running statistics, activation-noise σ — are
stacked like parameters and updated in place by a training-mode forward.

``compile=True`` runs the single-member training-mode forward through ``torch.compile``
(inductor), so AOTAutograd compiles its backward too and fuses the BatchNorm, activation-noise
and ReLU arithmetic around the convolutions (benchmarks/bench_cnn_population.py measures it).
Random draws use ``fallback_random`` (the eager kernels on the global generator), so a seeded
forward draws exactly the noise an eager one does.
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap
from torch.utils.flop_counter import FlopCounterMode

from ..seeding import seeded
from .noise import ActivationNoise


class FromModule:
    """Wrap a factory of ``nn.Module`` so K copies train as one population.

    Member k is ``factory()`` built under ``torch.manual_seed(seeds[k])`` (the global RNG is
    restored afterwards). ``forward(params, x, train)`` runs the module in training mode
    (BatchNorm uses and updates batch statistics, dropout and activation noise are on) or in
    eval mode (running statistics, no noise). ``channels_last`` hands image batches to a
    single member in channels-last memory format (faster convolutions on CPU; see
    benchmarks/RESULTS.md).

    ``compile=True`` compiles the one-member training-mode forward (loop mode) with
    ``torch.compile`` on first use; evaluation and vmapped populations stay eager (their batch
    sizes vary, and each new shape would recompile). If compiling or running the compiled
    forward raises, a warning is issued once and this model runs eager from then on.
    """

    def __init__(self, factory: Callable[[], nn.Module], frozen: Sequence[str] = (),
                 channels_last: bool = False, compile: bool = False) -> None:
        if isinstance(factory, nn.Module) or not callable(factory):
            raise TypeError(f"FromModule needs a factory (a callable returning a fresh nn.Module, "
                            f"e.g. lambda: MyNet()), got {type(factory).__name__}")
        with torch.random.fork_rng(devices=[]):
            base = factory()
        if not isinstance(base, nn.Module):
            raise TypeError(f"factory returned {type(base).__name__}, expected an nn.Module")
        names = {n for n, _ in base.named_parameters()}
        unknown = set(frozen) - names
        if unknown:
            raise ValueError(f"frozen names {sorted(unknown)} are not parameters; have {sorted(names)}")
        self.factory, self.base = factory, base.to("meta")
        self.channels_last = channels_last
        self.frozen = frozenset(frozen)
        self.buffer_names = frozenset(n for n, _ in base.named_buffers())
        self.noise_buffers = tuple(f"{n}.sigma" if n else "sigma" for n, m in base.named_modules()
                                   if isinstance(m, ActivationNoise))
        self.stochastic = bool(self.noise_buffers) or any(
            isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in base.modules())
        self._fwd = vmap(self._single, randomness="different")
        self.compile = bool(compile)
        self._compiled: Callable[[dict[str, Tensor], Tensor], Tensor] | None = None
        self._compile_failed = False

    def _single(self, p: dict[str, Tensor], x: Tensor) -> Tensor:
        out = functional_call(self.base, p, (x,))
        return out.squeeze(-1) if out.dim() == 2 and out.shape[-1] == 1 else out

    def init(self, seeds: Sequence[int]) -> dict[str, Tensor]:
        """Stacked parameters and buffers of ``len(seeds)`` fresh members."""
        members = []
        for s in seeds:
            with seeded(int(s)):
                m = self.factory()
            state = {n: p.detach() for n, p in m.named_parameters()}
            state.update({n: b.detach().clone() for n, b in m.named_buffers()})
            members.append(state)
        return {k: torch.stack([m[k] for m in members]) for k in members[0]}

    def forward(self, params: dict[str, Tensor], x: Tensor, train: bool = False) -> Tensor:
        """Outputs [K, B, ...] for inputs [K, B, ...]; ``params`` holds parameters and buffers."""
        self.base.train(train)
        if x.shape[0] == 1:  # one member: call the module directly (no vmap overhead)
            x1 = x[0]
            if self.channels_last and x1.dim() == 4:
                x1 = x1.contiguous(memory_format=torch.channels_last)
            p1 = {k: v[0] for k, v in params.items()}
            if train and self.compile and not self._compile_failed:
                return self._compiled_single(p1, x1).unsqueeze(0)
            return self._single(p1, x1).unsqueeze(0)
        return self._fwd(params, x)

    def _compiled_single(self, p: dict[str, Tensor], x: Tensor) -> Tensor:
        """``_single`` through torch.compile; on any error warn once and run eager from now on.

        ``dynamic=False``: the trainer feeds one shape, and static shapes give inductor its
        fastest kernels. ``fallback_random``: inductor's own RNG would draw different noise than
        eager for the same seed; the eager kernels keep the draws identical.
        """
        if self._compiled is None:
            self._compiled = torch.compile(self._single, dynamic=False, options={"fallback_random": True})
        try:
            return self._compiled(p, x)
        except Exception as e:  # noqa: BLE001 - a compiler failure may raise nearly anything
            self._compile_failed = True
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            warnings.warn(f"torch.compile failed for {type(self.base).__name__} ({first}); "
                          f"running eager", RuntimeWarning, stacklevel=3)
            return self._single(p, x)

    def __getstate__(self) -> dict:
        """Picklable state: the compiled function is rebuilt on first use after unpickling."""
        state = dict(self.__dict__)
        state["_compiled"] = None
        return state

    def flops_per_example(self, input_shape: tuple[int, ...]) -> int:
        with torch.random.fork_rng(devices=[]), FlopCounterMode(display=False) as counter:
            self.factory().eval()(torch.zeros(1, *input_shape))
        return int(counter.get_total_flops())

    def to_module(self, params: dict[str, Tensor], member: int) -> nn.Module:
        """Member ``member`` as a plain module (for users' own loops and parity checks)."""
        with torch.random.fork_rng(devices=[]):
            m = self.factory()
        m.load_state_dict({k: v[member] for k, v in params.items()})
        return m
