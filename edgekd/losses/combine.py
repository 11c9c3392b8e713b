"""The loss registry and ``DistillationObjective``: a weighted sum of named loss terms.

The objective owns the channel adapters of the feature losses (FitNet, CWD on features), so
they appear in ``objective.parameters()`` and the trainer must optimise them together with the
student: ``torch.optim.SGD([*student.parameters(), *objective.parameters()], ...)``.

Teacher logits are resized to the *student's* spatial size (bilinear by default,
``teacher_resize``) before logit losses; teacher and student must predict the same number of
classes. Feature losses resize the student feature to the teacher's feature size (each loss's
``resize`` option). Loss names and options are described in ``spec.py``.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from edgekd.losses._utils import check_resize_mode, resize_spatial
from edgekd.losses.boundary import BoundaryKDLoss
from edgekd.losses.feature import AttentionTransferLoss, ChannelWiseLoss, FitNetLoss
from edgekd.losses.relation import CrossImageRelationLoss, PairwiseAffinityLoss
from edgekd.losses.response import DISTLoss, PixelKDLoss
from edgekd.losses.spec import LossSpec, parse_specs
from edgekd.losses.supervised import CrossEntropyLoss, OHEMCrossEntropyLoss
from edgekd.errors import EdgekdError
from edgekd.core.suggest import did_you_mean

ModelOutput = torch.Tensor | tuple[torch.Tensor, Mapping[str, torch.Tensor] | None]


@dataclass(frozen=True)
class LossContext:
    """What the objective knows and passes to a loss constructor (users cannot override it)."""

    ignore_index: int = 255
    class_weights: tuple[float, ...] | None = None
    student_channels: int | None = None
    teacher_channels: int | None = None


@dataclass(frozen=True)
class LossEntry:
    name: str
    cls: type[nn.Module]
    inputs: frozenset[str]  # "logits" and/or "features"
    needs_teacher: bool
    context: Callable[[LossContext], dict]
    summary: str
    follows_temperature: bool = False  # its ``tau`` defaults to the objective's ``temperature``


_LOSSES: dict[str, LossEntry] = {}


def register_loss(
    name: str,
    cls: type[nn.Module],
    *,
    inputs: Iterable[str],
    summary: str,
    needs_teacher: bool = True,
    context: Callable[[LossContext], dict] = lambda ctx: {},
    follows_temperature: bool = False,
) -> None:
    """Add a loss to the registry; a duplicate name raises."""
    if name in _LOSSES:
        raise ValueError(f"loss {name!r} is registered twice ({_LOSSES[name].cls.__name__} and {cls.__name__})")
    kinds = frozenset(inputs)
    if not kinds or not kinds <= {"logits", "features"}:
        raise ValueError(f"loss {name!r}: inputs {sorted(kinds)} must be a non-empty subset of logits, features")
    _LOSSES[name] = LossEntry(name, cls, kinds, needs_teacher, context, summary, follows_temperature)


def list_losses() -> list[LossEntry]:
    return [_LOSSES[name] for name in sorted(_LOSSES)]


# Constructor arguments the objective fills in itself (from the dataset, the models or --class-weights):
# not options a spec sets.
CONTEXT_ARGUMENTS = frozenset({"ignore_index", "student_channels", "teacher_channels", "class_weights"})


def loss_options(entry: LossEntry) -> dict[str, Any]:
    """The ``NAME(KEY=VALUE)`` options of one loss with their defaults (``tau`` follows
    ``--temperature`` where ``follows_temperature``)."""
    params = list(inspect.signature(entry.cls.__init__).parameters.values())[1:]
    return {p.name: (None if p.default is inspect.Parameter.empty else p.default)
            for p in params if p.name not in CONTEXT_ARGUMENTS and p.kind is p.POSITIONAL_OR_KEYWORD}


def get_loss_entry(name: str) -> LossEntry:
    if name not in _LOSSES:
        hint = did_you_mean(name, _LOSSES, cutoff=0.3)
        raise EdgekdError(f"unknown loss {name!r}.{hint} Valid names: {', '.join(sorted(_LOSSES))}")
    return _LOSSES[name]


def _ignore(ctx: LossContext) -> dict:
    return {"ignore_index": ctx.ignore_index}


def _channels(ctx: LossContext) -> dict:
    return {"student_channels": ctx.student_channels, "teacher_channels": ctx.teacher_channels}


def _labels(ctx: LossContext) -> dict:
    return {"ignore_index": ctx.ignore_index, "class_weights": ctx.class_weights}


register_loss("ce", CrossEntropyLoss, inputs=["logits"], needs_teacher=False, context=_labels,
              summary="cross-entropy with the ground truth (ignore index, class weights from --class-weights)")
register_loss("ohem", OHEMCrossEntropyLoss, inputs=["logits"], needs_teacher=False, context=_labels,
              summary="OHEM cross-entropy: only pixels with true-class probability < thresh, at least min_kept per batch")
register_loss("kd", PixelKDLoss, inputs=["logits"], context=_ignore, follows_temperature=True,
              summary="pixel-wise KD: tau^2 * KL(teacher || student) over non-ignored pixels")
register_loss("dist", DISTLoss, inputs=["logits"], context=_ignore, follows_temperature=True,
              summary="DIST: inter-/intra-class Pearson relations of the probability maps")
register_loss("bkd", BoundaryKDLoss, inputs=["logits"], context=_ignore, follows_temperature=True,
              summary="boundary-aware KD: separate KD terms on the boundary band and on the body")
register_loss("cwd", ChannelWiseLoss, inputs=["logits", "features"], context=_channels, follows_temperature=True,
              summary="channel-wise distillation: per-channel spatial softmax KL (logits or @feature)")
register_loss("fitnet", FitNetLoss, inputs=["features"], context=_channels,
              summary="FitNet hint: 1x1 adapter + resize + MSE on a feature (@feature)")
register_loss("at", AttentionTransferLoss, inputs=["features"],
              summary="attention transfer: L2 between normalised spatial attention maps (@feature)")
register_loss("skd", PairwiseAffinityLoss, inputs=["logits", "features"],
              summary="SKD pair-wise affinity: pooled cosine-similarity matrices, squared difference")
register_loss("cirkd", CrossImageRelationLoss, inputs=["logits", "features"],
              summary="CIRKD mini-batch pixel relations across images: KL of softmaxed similarity rows")


def effective_options(spec: LossSpec, temperature: float | None = None) -> dict:
    """The spec's options plus the run-wide temperature for losses whose ``tau`` follows it.

    An explicit ``tau`` in the spec wins. CIRKD's ``tau`` (a similarity temperature, ~0.1) and
    the options of other losses never follow the run-wide logit temperature.
    """
    options = spec.options
    if temperature is not None and get_loss_entry(spec.name).follows_temperature and "tau" not in options:
        options["tau"] = float(temperature)
    return options


def build_loss(spec: LossSpec, ctx: LossContext, options: Mapping[str, object] | None = None) -> nn.Module:
    """Instantiate ``spec`` with the objective-supplied context and the user's options
    (``options`` overrides the spec's own, e.g. with ``effective_options``)."""
    entry = get_loss_entry(spec.name)
    options = spec.options if options is None else dict(options)
    supplied = entry.context(ctx)
    accepted = [p for p in inspect.signature(entry.cls).parameters if p not in supplied]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise EdgekdError(
            f"loss spec {str(spec)!r}: unknown option(s) {', '.join(unknown)}; "
            f"{spec.name} accepts {', '.join(accepted) or 'no options'}"
        )
    try:
        return entry.cls(**supplied, **options)
    except TypeError as err:
        raise EdgekdError(f"loss spec {str(spec)!r}: bad option value ({err})") from err


def _unpack(output: ModelOutput | None, who: str) -> tuple[torch.Tensor | None, Mapping[str, torch.Tensor]]:
    if output is None:
        return None, {}
    if isinstance(output, torch.Tensor):
        return output, {}
    if isinstance(output, (tuple, list)) and len(output) == 2:
        return output[0], (output[1] or {})
    raise EdgekdError(f"{who} output must be logits or a (logits, features) pair, got {type(output).__name__}")


def _feature(features: Mapping[str, torch.Tensor], key: str, who: str, spec: LossSpec) -> torch.Tensor:
    if key not in features:
        raise EdgekdError(
            f"loss {str(spec)!r}: the {who} returned no feature {key!r} (it has: {', '.join(sorted(features)) or 'none'}); "
            "use forward_features() and a key it returns"
        )
    return features[key]


def _channels_for(
    channels: Mapping[str, int] | None, key: str, who: str, spec: LossSpec, required: bool
) -> int | None:
    if channels is None:
        if required:
            raise EdgekdError(
                f"loss {str(spec)!r} builds a channel adapter and needs {who}_channels "
                f"(pass {who}.feature_channels, or use DistillationObjective.from_models)"
            )
        return None
    if key not in channels:
        raise EdgekdError(
            f"loss {str(spec)!r}: the {who} has no feature {key!r}; its features are "
            f"{', '.join(sorted(channels)) or 'none'}"
        )
    return int(channels[key])


class DistillationObjective(nn.Module):
    """total = Σ_k w_k · L_k over the parsed loss specs; returns (total, {term key: w_k·L_k}).

    ``forward(student_out, teacher_out, labels)`` takes each model's output as logits or as the
    ``(logits, features)`` pair of ``forward_features``; ``teacher_out`` may be None when only
    supervised terms are used. The teacher output is treated as a constant (detached). The
    logged values are the *weighted* terms as Python floats; their sum is the total.

    ``temperature`` (optional) is the run-wide logit temperature: the ``tau`` of kd, dist, bkd
    and cwd terms that do not set their own (``kd(tau=2)`` wins over it).
    """

    def __init__(
        self,
        specs: "str | Iterable[str | LossSpec]",
        *,
        student_channels: Mapping[str, int] | None = None,
        teacher_channels: Mapping[str, int] | None = None,
        ignore_index: int = 255,
        class_weights: Sequence[float] | None = None,
        teacher_resize: str = "bilinear",
        temperature: float | None = None,
    ) -> None:
        super().__init__()
        self.specs = parse_specs(specs)
        keys = [spec.key for spec in self.specs]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise EdgekdError(f"loss term(s) {', '.join(duplicates)} given twice; merge them into one weight")
        self.ignore_index = int(ignore_index)
        self.teacher_resize = check_resize_mode(teacher_resize, "teacher logits")
        weights = None if class_weights is None else tuple(float(w) for w in class_weights)
        self.entries = [get_loss_entry(spec.name) for spec in self.specs]
        self.options = [effective_options(spec, temperature) for spec in self.specs]
        self.losses = nn.ModuleList(
            build_loss(spec, self._context(spec, entry, student_channels, teacher_channels, weights), options)
            for spec, entry, options in zip(self.specs, self.entries, self.options)
        )

    @classmethod
    def from_models(
        cls, specs: "str | Iterable[str | LossSpec]", student: nn.Module, teacher: nn.Module | None = None, **kwargs
    ) -> "DistillationObjective":
        """Build with the channel counts that ``SegmentationModel.feature_channels`` declares."""
        return cls(
            specs,
            student_channels=getattr(student, "feature_channels", {}),
            teacher_channels=None if teacher is None else getattr(teacher, "feature_channels", {}),
            **kwargs,
        )

    def _context(
        self,
        spec: LossSpec,
        entry: LossEntry,
        student_channels: Mapping[str, int] | None,
        teacher_channels: Mapping[str, int] | None,
        class_weights: tuple[float, ...] | None,
    ) -> LossContext:
        base = LossContext(self.ignore_index, class_weights)
        if not spec.uses_features:
            if "logits" not in entry.inputs:
                raise EdgekdError(
                    f"loss {spec.name!r} compares features: write {spec.name}@FEATURE, with FEATURE one of "
                    f"{', '.join(sorted(student_channels or {})) or 'the student feature names'}"
                )
            return base
        if "features" not in entry.inputs:
            raise EdgekdError(f"loss {spec.name!r} works on logits only; drop '@{spec.student_feature}' from {str(spec)!r}")
        required = "student_channels" in entry.context(LossContext())
        s = _channels_for(student_channels, spec.student_feature, "student", spec, required)
        t = _channels_for(teacher_channels, spec.teacher_feature, "teacher", spec, required)
        return LossContext(self.ignore_index, class_weights, s, t)

    def describe(self) -> list[dict]:
        """JSON-ready list of the terms with the options really used (run-wide temperature
        included), for a checkpoint's ``trained_with.losses``."""
        return [{**spec.to_dict(), "options": options} for spec, options in zip(self.specs, self.options)]

    def weights_dict(self) -> dict[str, float]:
        """{term key: weight}, e.g. {"ce": 1.0, "kd": 1.0, "fitnet@stage3": 0.5}."""
        return {spec.key: spec.weight for spec in self.specs}

    @property
    def needs_teacher(self) -> bool:
        return any(entry.needs_teacher for entry in self.entries)

    @property
    def uses_teacher_features(self) -> bool:
        """True when a term compares features, so teacher logits alone (a cache) do not suffice."""
        return any(spec.uses_features for spec in self.specs)

    def extra_repr(self) -> str:
        return ", ".join(str(spec) for spec in self.specs)

    def align_teacher_logits(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        """Teacher logits at the student's spatial size; classes and batch must already match."""
        if teacher_logits.shape[:2] != student_logits.shape[:2]:
            raise EdgekdError(
                f"teacher logits {tuple(teacher_logits.shape)} vs student logits {tuple(student_logits.shape)}: "
                "batch size and number of classes must match (train the student on the teacher's class list)"
            )
        return resize_spatial(teacher_logits.detach(), student_logits.shape[-2:], self.teacher_resize, "teacher logits")

    def forward(
        self,
        student_out: ModelOutput,
        teacher_out: ModelOutput | None = None,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        s_logits, s_feats = _unpack(student_out, "student")
        t_logits, t_feats = _unpack(teacher_out, "teacher")
        if s_logits is None:
            raise EdgekdError("student output is None; pass the student's logits or (logits, features)")
        if self.needs_teacher and teacher_out is None:
            names = ", ".join(s.key for s, e in zip(self.specs, self.entries) if e.needs_teacher)
            raise EdgekdError(f"loss term(s) {names} need the teacher's output; pass teacher_out or drop them")
        s_logits_kd = s_logits
        if t_logits is not None and any(e.needs_teacher and not s.uses_features for s, e in zip(self.specs, self.entries)):
            s_logits_kd = drop_void_channel(s_logits, t_logits)
            t_logits = self.align_teacher_logits(s_logits_kd, t_logits)
        total = torch.zeros((), dtype=torch.promote_types(s_logits.dtype, torch.float32), device=s_logits.device)
        terms: dict[str, float] = {}
        for spec, entry, loss in zip(self.specs, self.entries, self.losses):
            logits = s_logits_kd if entry.needs_teacher else s_logits
            value = self._term(spec, entry, loss, logits, s_feats, t_logits, t_feats, labels)
            weighted = spec.weight * value
            total = total + weighted
            terms[spec.key] = float(weighted.detach())
        return total, terms

    def _term(
        self,
        spec: LossSpec,
        entry: LossEntry,
        loss: nn.Module,
        s_logits: torch.Tensor,
        s_feats: Mapping[str, torch.Tensor],
        t_logits: torch.Tensor | None,
        t_feats: Mapping[str, torch.Tensor],
        labels: torch.Tensor | None,
    ) -> torch.Tensor:
        """One unweighted term, fed with the inputs its registry entry asks for."""
        if spec.uses_features:
            student = _feature(s_feats, spec.student_feature, "student", spec)
            return loss(student, _feature(t_feats, spec.teacher_feature, "teacher", spec))
        if not entry.needs_teacher:
            if labels is None:
                raise EdgekdError(f"loss {spec.key!r} needs labels; pass labels to the objective")
            return loss(s_logits, labels)
        if t_logits is None:
            raise EdgekdError(f"loss {spec.key!r} needs the teacher's logits; teacher_out has none")
        if getattr(loss, "uses_labels", False):
            return loss(s_logits, t_logits, labels)
        return loss(s_logits, t_logits)


def drop_void_channel(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """The student's logits on the teacher's classes.

    A student with exactly one channel more than its teacher (ESPNet's CamVid head predicts the
    11 classes plus a trailing "void" channel) is compared with the teacher on the shared classes;
    its void channel is trained by the label terms only (void pixels are ignored there, so they
    push it down everywhere else).
    """
    if student_logits.shape[1] == teacher_logits.shape[1] + 1:
        return student_logits[:, :-1]
    return student_logits


def build_objective(
    specs: "str | Iterable[str | LossSpec]",
    *,
    student: nn.Module,
    teacher: nn.Module | None = None,
    temperature: float | None = None,
    ignore_index: int = 255,
    class_weights: Sequence[float] | None = None,
    teacher_resize: str = "bilinear",
) -> DistillationObjective:
    """The objective for a student/teacher pair, channel counts taken from the models."""
    return DistillationObjective.from_models(
        specs, student, teacher, temperature=temperature, ignore_index=ignore_index,
        class_weights=class_weights, teacher_resize=teacher_resize,
    )
