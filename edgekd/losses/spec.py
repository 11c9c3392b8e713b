"""The loss spec language: one string per term of the distillation objective.

Grammar (whitespace around the parts is ignored)::

    NAME [ "(" KEY=VALUE { "," KEY=VALUE } ")" ] [ "@" FEATURE [ "/" TEACHER_FEATURE ] ] [ ":" WEIGHT ]

* ``NAME``: a registered loss (``edgekd.losses.list_losses()``), e.g. ``kd``, ``cwd``, ``ce``.
* ``(KEY=VALUE, ...)``: constructor options of that loss, e.g. ``kd(tau=4)``,
  ``fitnet(resize=none)``. Values are ints, floats, ``true``/``false`` or bare words (kept as
  strings, so ``resize=none`` is the string 'none'); nothing is evaluated.
* ``@FEATURE``: the feature the loss compares (a key of ``forward_features``' dict); without it
  a loss works on logits. ``@stage3/layer3`` pairs student feature ``stage3`` with teacher
  feature ``layer3`` when the two models name their stages differently.
* ``:WEIGHT``: a float >= 0 multiplying the term (default 1).

Examples: ``ce``, ``kd:1.0``, ``cwd:3``, ``kd(tau=4):0.5``, ``fitnet@stage3:0.5``,
``cwd(tau=4)@stage4/layer4:50``, ``bkd(width=5,band_weight=2)``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

from edgekd.errors import EdgekdError

_SPEC = re.compile(
    r"""^(?P<name>[A-Za-z][A-Za-z0-9_]*)\s*
        (?:\((?P<params>[^()]*)\))?\s*
        (?:@\s*(?P<student>[A-Za-z0-9_.\-]+)\s*(?:/\s*(?P<teacher>[A-Za-z0-9_.\-]+))?)?\s*
        (?::\s*(?P<weight>[^:]*))?$""",
    re.VERBOSE,
)
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WORD = re.compile(r"^[A-Za-z0-9_.\-]+$")

ParamValue = int | float | bool | str


def _parse_value(text: str, spec: str) -> ParamValue:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if not _WORD.match(text):
        raise EdgekdError(f"loss spec {spec!r}: option value {text!r} must be a number, true/false or a bare word")
    return text


def _parse_params(text: str | None, spec: str) -> tuple[tuple[str, ParamValue], ...]:
    if text is None or not text.strip():
        return ()
    params: dict[str, ParamValue] = {}
    for item in text.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not _KEY.match(key) or not value:
            raise EdgekdError(f"loss spec {spec!r}: option {item.strip()!r} must look like key=value, e.g. kd(tau=4)")
        if key in params:
            raise EdgekdError(f"loss spec {spec!r}: option {key!r} is given twice")
        params[key] = _parse_value(value, spec)
    return tuple(sorted(params.items()))


def _parse_weight(text: str | None, spec: str) -> float:
    if text is None:
        return 1.0
    try:
        weight = float(text)
    except ValueError:
        raise EdgekdError(f"loss spec {spec!r}: weight {text.strip()!r} is not a number; write e.g. kd:0.5") from None
    if not math.isfinite(weight) or weight < 0:
        raise EdgekdError(f"loss spec {spec!r}: weight {weight!r} must be a finite number >= 0")
    return weight


def _format_value(value: ParamValue) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class LossSpec:
    """One parsed term: loss name, options, compared feature(s) and weight."""

    name: str
    weight: float = 1.0
    student_feature: str | None = None
    teacher_feature: str | None = None
    params: tuple[tuple[str, ParamValue], ...] = ()

    @classmethod
    def parse(cls, text: "str | LossSpec") -> "LossSpec":
        if isinstance(text, LossSpec):
            return text
        match = _SPEC.match(text.strip())
        if match is None:
            raise EdgekdError(
                f"loss spec {text!r} does not parse; write NAME[(key=value,...)][@feature[/teacher_feature]][:weight], "
                "e.g. kd:1, cwd(tau=4):3, fitnet@stage3:0.5"
            )
        student = match["student"]
        return cls(
            name=match["name"].lower(),
            weight=_parse_weight(match["weight"], text),
            student_feature=student,
            teacher_feature=(match["teacher"] or student) if student else None,
            params=_parse_params(match["params"], text),
        )

    @property
    def uses_features(self) -> bool:
        return self.student_feature is not None

    @property
    def options(self) -> dict[str, ParamValue]:
        return dict(self.params)

    @property
    def key(self) -> str:
        """The term's name without its weight, unique within an objective (used for logging)."""
        text = self.name
        if self.params:
            text += "(" + ",".join(f"{k}={_format_value(v)}" for k, v in self.params) + ")"
        if self.student_feature is not None:
            text += f"@{self.student_feature}"
            if self.teacher_feature != self.student_feature:
                text += f"/{self.teacher_feature}"
        return text

    def __str__(self) -> str:
        return f"{self.key}:{self.weight:g}"

    def to_dict(self) -> dict:
        """JSON-ready description, e.g. for a checkpoint's ``trained_with.losses``."""
        return {
            "spec": str(self),
            "name": self.name,
            "weight": self.weight,
            "student_feature": self.student_feature,
            "teacher_feature": self.teacher_feature,
            "options": self.options,
        }


def split_specs(text: str) -> list[str]:
    """Split ``"ce, kd(tau=4):1, fitnet@stage3:0.5"`` at commas outside parentheses."""
    parts, depth, current = [], 0, []
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_specs(specs: "str | LossSpec | Iterable[str | LossSpec]") -> list[LossSpec]:
    """Parse one comma-separated string, or an iterable of spec strings / LossSpec objects."""
    if isinstance(specs, (str, LossSpec)):
        specs = split_specs(specs) if isinstance(specs, str) else [specs]
    items: list[LossSpec] = []
    for item in specs:
        items.extend(LossSpec.parse(s) for s in (split_specs(item) if isinstance(item, str) else [item]))
    if not items:
        raise EdgekdError("no loss given; pass at least one spec, e.g. 'ce' or 'ce,kd:1'")
    return items
