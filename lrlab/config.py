"""Typed configs: YAML in and out, dotted command-line overrides, errors that name the key.

Every number an experiment uses lives in a config file under ``configs/``; code holds no
experiment constants. Configs are pydantic models with ``extra="forbid"`` and strict types,
so a typo or a wrong type is rejected before any training starts.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key."""


THREADS_PER_CPU = 4
"""Torch threads may be at most this many times the machine's CPU count (more only thrash, and
absurd counts crash torch)."""

DEVICE = re.compile(r"^(cpu|mps|cuda(:\d{1,3})?)$")


def max_threads() -> int:
    """The most torch threads a config may ask for on this machine."""
    return THREADS_PER_CPU * (os.cpu_count() or 1)


def check_threads(n: int) -> int:
    """``n`` if it is a thread count this machine can use, else a ValueError saying the bound."""
    if n > max_threads():
        raise ValueError(f"threads = {n} is more than {THREADS_PER_CPU} per CPU ({max_threads()} on this "
                         f"machine with {os.cpu_count()} CPUs)")
    return n


def check_device(device: str) -> str:
    """``device`` if it names a device lrlab trains on (cpu, cuda, cuda:N, mps), else a ValueError."""
    if not DEVICE.match(device):
        raise ValueError(f"device {device!r} is not one of cpu, cuda, cuda:N, mps")
    return device


Device = Annotated[str, AfterValidator(check_device)]
Threads = Annotated[int, Field(gt=0), AfterValidator(check_threads)]


class _Loader(yaml.SafeLoader):
    """YAML 1.1 safe loader that also reads ``1e-3`` (no dot) as a float, like YAML 1.2, and
    refuses a key repeated in one mapping (plain YAML keeps the last, silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        """A mapping whose keys appear once each; keys brought in by a ``<<`` merge may still be
        overridden."""
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base constructor reports it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"duplicate key {key!r} (first at line {first.start_mark.line + 1})", key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


MAX_YAML_NODES = 100_000
"""A config expands (aliases followed) to at most this many YAML nodes: bounds "billion laughs"."""


def _expanded_size(node: yaml.Node, limit: int) -> int:
    """The number of nodes ``node`` stands for with every alias followed (shared nodes counted
    each time they are used), stopping once it passes ``limit``."""
    sizes: dict[int, int] = {}

    def size(n: yaml.Node) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        sizes[id(n)] = limit + 1  # a cycle (a recursive alias) counts as too large
        if isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(c) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        else:
            total = 1
        sizes[id(n)] = min(total, limit + 1)
        return sizes[id(n)]

    return size(node)


def yaml_load(text: str) -> Any:
    """Parse YAML text with lrlab's loader: repeated keys are an error, and a document that
    expands (through aliases) to more than :data:`MAX_YAML_NODES` nodes is refused before it is
    built."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise ConfigError(f"the YAML expands to more than {MAX_YAML_NODES:,} nodes through its aliases "
                              "(&anchor / *alias); a config is far smaller")
        return loader.construct_document(node)
    finally:
        loader.dispose()


class Strict(BaseModel):
    """Base for every config section: unknown keys and wrong types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True,
                              allow_inf_nan=False)


# --------------------------------------------------------------------------- schedules


class _ScheduleBase(Strict):
    lr: float = Field(gt=0, description="base learning rate")
    warmup_steps: int = Field(0, ge=0, description="linear warm-up from 0 over this many steps")


class ConstantSchedule(_ScheduleBase):
    kind: Literal["constant"] = "constant"


class StepSchedule(_ScheduleBase):
    """Multiply the rate by ``factor`` at each milestone (steps, strictly increasing)."""

    kind: Literal["step"] = "step"
    milestones: list[int]
    factor: float = Field(gt=0)

    @field_validator("milestones")
    @classmethod
    def _ordered(cls, v: list[int]) -> list[int]:
        if any(m <= 0 for m in v):
            raise ValueError(f"milestones must be positive steps, got {v}")
        if any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"milestones must be strictly increasing, got {v}")
        return v


class CosineSchedule(_ScheduleBase):
    """Cosine from ``lr`` to ``final_lr`` over ``steps`` (default: the run's steps)."""

    kind: Literal["cosine"] = "cosine"
    final_lr: float = Field(0.0, ge=0)
    steps: int | None = Field(None, gt=0)


class AutoDecayScheduleConfig(Strict):
    """AutoDecay (You et al. 2019, A.1): decay by ``factor`` when the per-epoch training loss has
    plateaued after a significant drop; stop the member when it plateaus without one."""

    kind: Literal["autodecay"] = "autodecay"
    lr: float = Field(gt=0, description="initial learning rate")
    beta: float = Field(0.9, gt=0, lt=1, description="moving-average factor β")
    window: int = Field(5, ge=2, description="W: epochs of the smoothed loss that must be stable")
    tol: float = Field(0.02, gt=0, description="η: stable when (max G − min G)/(min G + ε) < tol")
    drop: float = Field(0.9, gt=0, le=1, description="ζ: a significant drop is ĝ(t)/ĝ(0) ≤ drop")
    eps: float = Field(1e-8, ge=0, description="ε")
    factor: float = Field(0.1, gt=0, lt=1, description="decay factor")
    min_lr: float = Field(0.0, ge=0, description="never decay below this; stop instead")
    max_decays: int | None = Field(None, ge=0, description="stop at the next plateau after this many decays")
    stage_start: Literal["plateau", "first"] = Field(
        "plateau", description="ĝ(0) of a later stage: the plateau that triggered the decay, or that "
        "stage's first smoothed loss (see lrlab.train.autodecay)")


ScheduleConfig = Annotated[
    Union[ConstantSchedule, StepSchedule, CosineSchedule, AutoDecayScheduleConfig],
    Field(discriminator="kind"),
]


# --------------------------------------------------------------------------- data / model


class Li2019MixtureConfig(Strict):
    """Li, Wei & Ma (2019) two-pattern toy (docs/spec.md §1a). See ``lrlab.data.mixture``."""

    kind: Literal["li2019_mixture"] = "li2019_mixture"
    d: int = Field(gt=0, description="dimension of each of the two blocks x1, x2")
    n_train: int = Field(gt=0)
    n_test: int = Field(gt=0)
    frac_p_only: float = Field(0.2, ge=0, le=1)
    frac_q_only: float = Field(0.2, ge=0, le=1)
    margin: float = Field(gt=0, description="gamma: P's margin along w")
    p_noise: float = Field(ge=0, description="sigma_P: std of P's noise orthogonal to w, per coordinate")
    q_zeta_norm: float = Field(gt=0, description="||zeta||: Q's class separation")
    q_noise: float = Field(ge=0, description="sigma_Q: isotropic noise on x2, per coordinate")
    q_alpha_min: float = Field(0.0, ge=0, le=1, description="alpha ~ U[q_alpha_min, 1]")
    q_scale: float = Field(1.0, gt=0, description="overall scale of x2")

    @model_validator(mode="after")
    def _fractions(self) -> Li2019MixtureConfig:
        if self.frac_p_only + self.frac_q_only > 1:
            raise ValueError(
                f"frac_p_only + frac_q_only must be <= 1, got {self.frac_p_only + self.frac_q_only}"
            )
        return self


class PatchConfig(Strict):
    """Li, Wei & Ma's class-signature patch (docs/spec.md §1b); defaults are the paper's values."""

    patchable_frac: float = Field(0.8, ge=0, le=1, description="fixed share of images that get the patch")
    size: int = Field(7, gt=0, description="patch side in pixels")
    start: int = Field(12, ge=0, description="first row/column of the patch window")
    z_scale: float = Field(1.25, gt=0, description="z = z_scale · N(0, 1), shared by all classes")
    zeta_scale: float = Field(0.1, gt=0, description="ζ_c ~ U[-zeta_scale, zeta_scale] per class")
    patch_only_prob: float = Field(0.2, ge=0, le=1, description="chance a use is patch-only")
    patch_only_scale: float = Field(1.75, gt=0, description="patch-only: z + s·scale·U(0,1)·ζ_y")
    n_patch_only_eval: int = Field(1000, gt=0, description="size of the patch-only evaluation set")
    seed: int = Field(0, description="seed of z, ζ and the patchable subset (fixed across members)")


class Cifar10PatchConfig(Strict):
    """CIFAR-10 (optionally a class-balanced subset), with or without the class patch."""

    kind: Literal["cifar10"] = "cifar10"
    root: str | None = Field(None, description="data source; None = --data-dir, $LRLAB_DATA, "
                             "or ../shared/data/cifar10-jpeg.zip")
    n_per_class: int | None = Field(None, gt=0, description="training images per class (None = all)")
    n_test_per_class: int | None = Field(None, gt=0, description="test images per class (None = all)")
    subset_seed: int = Field(0, description="which images a subset takes (fixed across members)")
    patch: PatchConfig | None = Field(None, description="the class patch; None = clean images")


class PS10Config(Strict):
    """You et al. (2019) Pattern Separation 10 (docs/spec.md §4). See ``lrlab.data.ps10``.

    Each pattern is a point in R^3 (the paper's structure), so ``channels`` is 3 (both
    sub-datasets share the channels) or an even number >= 6 (simple patterns in the first
    half of the channels, complex patterns in the second half).
    """

    kind: Literal["ps10"] = "ps10"
    n_train: int = Field(10000, gt=0, description="training examples; even (half simple-only, "
                         "half complex-only)")
    n_test: int = Field(2000, gt=0, description="test examples; even (half simple-only, "
                        "half complex-only)")
    n_classes: int = Field(10, ge=2, description="number of classes")
    n_simple: int = Field(10, gt=0, description="simple patterns per class "
                          "(pattern entropy log2 n_simple)")
    n_complex: int = Field(100, gt=0, description="complex patterns per class "
                           "(pattern entropy log2 n_complex)")
    channels: int = Field(6, description="3: both sub-datasets share channels 0-2; even >= 6: "
                          "simple in [0, C/2), complex in [C/2, C)")
    image_size: int = Field(32, gt=0, description="height = width of the (spatially constant) image")
    pattern_scale: float = Field(1.0, gt=0, description="pattern coordinates are i.i.d. "
                                 "N(0, pattern_scale²)")
    feature_noise: float = Field(0.02, ge=0, description="per-example Gaussian noise on the "
                                 "pattern point, std in units of pattern_scale")
    noise_frac: float = Field(0.1, ge=0, lt=1, description="share of TRAINING examples whose "
                              "label is replaced by a random different class (tagged 'noise')")

    @field_validator("n_train", "n_test")
    @classmethod
    def _even(cls, v: int, info: Any) -> int:
        if v % 2:
            raise ValueError(f"{info.field_name} must be even (exactly half simple-only, half "
                             f"complex-only examples), got {v}")
        return v

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: int) -> int:
        if v != 3 and (v < 6 or v % 2):
            raise ValueError("channels must be 3 (simple and complex patterns share the channels) "
                             "or an even number >= 6 (each sub-dataset gets half of the channels, "
                             f"room for a pattern point in R^3), got {v}")
        return v


class FeatureNoiseConfig(Strict):
    """Lu et al. (2023) feature-noise data (docs/spec.md §5). See ``lrlab.data.feature_noise``.

    Every point has three patches in R^d: the weak feature y·v, the strong feature y·u (only
    in a fraction ``strong_frac`` of the points; zero elsewhere) and Gaussian noise ξ.
    """

    kind: Literal["feature_noise"] = "feature_noise"
    d: int = Field(64, ge=3, description="patch dimension (u, v and the noise live in R^d)")
    n_train: int = Field(16, ge=2, description="training points")
    n_test: int = Field(1000, gt=0, description="points in each test set (weak-only, and like training)")
    strong_frac: float = Field(0.5, gt=0, lt=1, description="ρ: share of points that carry the strong "
                               "feature (exactly round(ρ·n) training points, at least one)")
    strong_norm: float = Field(1.0, gt=0, description="‖u‖ (large)")
    weak_norm: float = Field(0.15, gt=0, description="‖v‖ (small)")
    noise_std: float = Field(0.045, gt=0, description="σ_p: per-coordinate std of the noise patch")

    @model_validator(mode="after")
    def _norms(self) -> FeatureNoiseConfig:
        if self.weak_norm >= self.strong_norm:
            raise ValueError(f"weak_norm {self.weak_norm} must be below strong_norm {self.strong_norm} "
                             "(the weak feature is the one with the small norm)")
        return self


DataConfig = Annotated[Union[Li2019MixtureConfig, Cifar10PatchConfig, PS10Config, FeatureNoiseConfig],
                       Field(discriminator="kind")]


class TwoLayerConfig(Strict):
    """Two-layer ReLU network f(x) = a·relu(Wx + b) (+ c)."""

    kind: Literal["two_layer_relu"] = "two_layer_relu"
    width: int = Field(gt=0)
    bias: bool = True
    output_bias: bool = False
    train_second_layer: bool = True
    init_scale: float = Field(1.0, gt=0, description="multiplies the default (fan-in) init")


class SmallCNNConfig(Strict):
    """A small CNN with BatchNorm for CPU-scale image experiments."""

    kind: Literal["small_cnn"] = "small_cnn"
    width: int = Field(32, gt=0, description="channels of the first conv (then 2×, 4×)")
    downsample: Literal["stride", "maxpool"] = Field(
        "stride", description="stride-2 convs (fast on CPU) or stride-1 convs + 2×2 max-pool")
    noise_site: Literal["after_bn", "before_bn"] = Field(
        "after_bn", description="activation noise: relu(bn(x) + σε) as the authors' code, or before BN")


class WideResNetConfig(Strict):
    """Pre-activation WRN-depth-width (Zagoruyko & Komodakis)."""

    kind: Literal["wide_resnet"] = "wide_resnet"
    depth: int = Field(16, gt=0, description="6n + 4")
    width: int = Field(10, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    noise_site: Literal["after_bn", "before_bn"] = Field(
        "after_bn", description="activation noise: relu(bn(x) + σε) as the authors' code, or before BN")


class ReLU2CNNConfig(Strict):
    """Lu et al.'s two-layer CNN: ReLU² filters over patches, fixed second layer F₊ − F₋."""

    kind: Literal["relu2_cnn"] = "relu2_cnn"
    filters: int = Field(8, gt=0, description="m: filters per class")
    init_std: float = Field(0.01, gt=0, description="σ0: filter entries ~ N(0, σ0²)")


ModelConfig = Annotated[Union[TwoLayerConfig, SmallCNNConfig, WideResNetConfig, ReLU2CNNConfig],
                        Field(discriminator="kind")]


# --------------------------------------------------------------------------- training


class TrainConfig(Strict):
    unit: Literal["step", "epoch"] = Field(
        "step", description="'epoch': steps, eval_every, checkpoint_every and schedule "
        "milestones count epochs (converted to steps once the training set is known)")
    loss: Literal["logistic", "cross_entropy", "squared", "margin_squared"] = "logistic"
    steps: int = Field(gt=0)
    batch_size: int | None = Field(None, gt=0, description="None = full-batch GD")
    micro_batch: int | None = Field(None, gt=0, description="examples per forward/backward inside one "
                                    "step: the gradients of the slices add up to the step's (full-batch GD "
                                    "of a large net in the memory of one slice; BatchNorm statistics per "
                                    "slice). None = the whole (mini)batch at once")
    optimizer: Literal["sgd", "adam", "adamw"] = Field(
        "sgd", description="'sgd' (momentum, nesterov), 'adam' (weight_decay as an L2 term in the "
        "gradient, as torch.optim.Adam) or 'adamw' (decoupled weight decay, as torch.optim.AdamW); "
        "every member keeps its own learning rate")
    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam/AdamW: the decay rates of the "
                                       "first and second moment estimates, each in [0, 1)")
    eps: float = Field(1e-8, gt=0, description="Adam/AdamW: added to the denominator")
    weight_decay: float = Field(0.0, ge=0)
    eval_every: int = Field(gt=0, description="probe every this many steps (and at the end)")
    checkpoint_every: int | None = Field(
        None, gt=0, description="checkpoint at the first probe at or after each multiple"
    )
    mode: Literal["auto", "fused", "vectorized", "loop"] = Field(
        "auto", description="'fused': the hand-written two-layer SGD step; 'vectorized': autograd over "
        "all members at once; 'loop': one member at a time; 'auto': fused where it applies, else the "
        "cost model (lrlab.train.choose_mode)")
    device: Device = "cpu"
    threads: Threads | None = Field(None, description="torch threads; None keeps torch's default")

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave ``micro_batch`` out while unset, and the optimizer and Adam's betas and eps
        while plain SGD: configs (and job fingerprints) from before these options read the same."""
        data = handler(self)
        if data.get("micro_batch", 0) is None:
            data.pop("micro_batch")
        if data.get("optimizer") == "sgd":
            for key in ("optimizer", "betas", "eps"):
                data.pop(key, None)
        return data

    @model_validator(mode="after")
    def _nesterov(self) -> TrainConfig:
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=true needs momentum > 0")
        if self.optimizer != "sgd" and (self.momentum or self.nesterov):
            raise ValueError(f"momentum and nesterov belong to optimizer 'sgd'; {self.optimizer} has "
                             f"betas {list(self.betas)} instead")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must each lie in [0, 1), got {list(self.betas)}")
        if self.optimizer == "sgd" and (tuple(self.betas) != (0.9, 0.999) or self.eps != 1e-8):
            raise ValueError("betas and eps belong to optimizer 'adam' or 'adamw'; "
                             "set train.optimizer to use them")
        return self

    def in_steps(self, steps_per_epoch: int) -> TrainConfig:
        """This config with every count in steps (a no-op when ``unit`` is already 'step')."""
        if self.unit == "step":
            return self
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
        k = steps_per_epoch
        return self.model_copy(update={
            "unit": "step", "steps": self.steps * k, "eval_every": self.eval_every * k,
            "checkpoint_every": None if self.checkpoint_every is None else self.checkpoint_every * k,
        })


class NoiseConfig(Strict):
    """Activation noise σ for one schedule's members: σ before ``until``, then 0."""

    sigma: float = Field(gt=0, description="std of the H×W Gaussian added before every BN→ReLU")
    until: int | None = Field(None, gt=0, description="in train.unit; None = throughout")


class PopulationConfig(Strict):
    """The member grid: every named schedule × every seed."""

    seeds: list[int] = Field(min_length=1)
    schedules: dict[str, ScheduleConfig] = Field(min_length=1)
    activation_noise: dict[str, NoiseConfig] = Field(
        default_factory=dict, description="schedule name -> activation noise of its members")

    @field_validator("seeds")
    @classmethod
    def _unique(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, got {v}")
        return v

    @model_validator(mode="after")
    def _noise_names(self) -> PopulationConfig:
        unknown = sorted(set(self.activation_noise) - set(self.schedules))
        if unknown:
            raise ValueError(f"activation_noise names {unknown} are not schedules "
                             f"(schedules: {sorted(self.schedules)})")
        return self


class RunConfig(Strict):
    """One population run: dataset, model, training settings and member grid."""

    name: str = Field(min_length=1)
    data_seed: Literal["member", "fixed"] = Field(
        "member", description="'member': each seed draws its own dataset; 'fixed': one draw"
    )
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    population: PopulationConfig

    @model_validator(mode="after")
    def _fixed_images(self) -> RunConfig:
        if isinstance(self.data, Cifar10PatchConfig) and self.data_seed == "member":
            raise ValueError("cifar10 data are the same for every member: set data_seed: fixed "
                             "(the subset is chosen by data.subset_seed)")
        return self


# --------------------------------------------------------------------------- loading


def _format_validation_error(err: ValidationError, source: str) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        got = e.get("input")
        got_s = "" if isinstance(got, dict) or repr(got) in e["msg"] or str(got) in e["msg"] else f" (got {got!r})"
        parts.append(f"{key or '<root>'}: {e['msg']}{got_s}")
    return f"{source}: " + "; ".join(parts)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into a key path and a YAML-typed value."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key.path=value")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in path):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:  # pragma: no cover - yaml accepts nearly anything
        raise ConfigError(f"override {text!r}: value is not valid YAML ({e})") from e
    return path, value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Set dotted keys in a nested dict (a copy); unknown keys are caught by validation."""
    out = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for i, p in enumerate(path[:-1]):
            nxt = node.get(p) if isinstance(node, dict) else None
            if nxt is None:
                nxt = {}
                node[p] = nxt
            if not isinstance(nxt, dict):
                done = ".".join(path[: i + 1])
                raise ConfigError(f"override {text!r}: {done} is a value, not a section")
            node = nxt
        node[path[-1]] = value
    return out


def validate(model: type[BaseModel], raw: Any, source: str = "config") -> Any:
    """Build a typed config or raise :class:`ConfigError` naming every bad key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, source)) from None


def read_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping, with a clear error for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        raw = yaml_load(p.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text ({e}); a config is a UTF-8 YAML file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({e})") from None
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    return raw


def load_config(
    path: str | os.PathLike, overrides: list[str] | None = None, model: type[BaseModel] = RunConfig
) -> Any:
    """Load a YAML config, apply ``key.path=value`` overrides, validate it."""
    raw = apply_overrides(read_yaml(path), overrides or [])
    return validate(model, raw, source=str(path))


def to_yaml(cfg: BaseModel) -> str:
    """The resolved config as YAML (round-trips through :func:`validate`)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def config_dir() -> Path:
    """Where the shipped claim configs live: ``$LRLAB_CONFIGS`` or the checkout's ``configs/``."""
    env = os.environ.get("LRLAB_CONFIGS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "configs"
