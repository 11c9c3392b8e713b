"""Distillation recipes: YAML, safe-loaded and validated (unknown keys are errors).

A recipe is either one run (keys = DistillConfig fields, with ``student`` for the arch) or a
chain of ``stages`` run in order — e.g. teacher → teacher-assistant → student (Mirzadeh et al.
2020, "Improved Knowledge Distillation via Teacher Assistant"). A stage may name an earlier
stage's output as a teacher with ``@stage_name``; keys under ``common`` apply to every stage.

Keys are the ``edgekd distill`` flag names with ``_`` for ``-``; a key holding a list is plural
(``teachers``, ``teacher_archs``, ``teacher_weights``, ``losses``) where the repeatable flag is
singular (``--teacher``, ``--loss``: one item per use). The other spellings — the singular key, the
flags' old names (``val_images``, ``eval_size``, ``student_size``) and ``arch`` for ``student`` —
still load, with one warning line each (``RENAMED_KEYS``; the table is in docs/cli.md). Config
field names are unchanged: ``RECIPE_TO_FIELD`` maps the few recipe keys that differ.

    common: {data: data/camvid, epochs: 20, crop_size: [360, 480]}
    stages:
      - {name: assistant, student: deeplabv3_resnet18, teachers: [cgnet.pth], teacher_archs: [cgnet_m3n21],
         losses: [ce, kd], out: runs/ta.safetensors}
      - {name: student, student: lraspp_mobilenetv3_small, teachers: ["@assistant"], losses: [ce, kd],
         out: runs/student.safetensors}
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import sys

import yaml

from edgekd.errors import EdgekdError, yaml_error_text
from edgekd.training.distill import DistillConfig, distill
from edgekd.training.loop import TrainOutcome

_TUPLE_FIELDS = {"crop_size", "scale_range", "eval_size", "image_size", "student_size"}
# recipe key (= the CLI flag's name) → DistillConfig field, where the two differ
RECIPE_TO_FIELD = {"student": "arch", "eval_input_size": "eval_size", "eval_images": "val_images",
                   "student_input_size": "student_size"}
# deprecated spelling → recipe key; a singular key may hold one item instead of a list
_LIST_KEYS = {"teachers", "teacher_archs", "teacher_weights", "losses"}
RENAMED_KEYS = {"arch": "student", "eval_size": "eval_input_size", "val_images": "eval_images",
                "student_size": "student_input_size", "teacher": "teachers", "teacher_arch": "teacher_archs",
                "teacher_weight": "teacher_weights", "loss": "losses"}
_FIELD_TO_RECIPE = {v: k for k, v in RECIPE_TO_FIELD.items()}
_ALLOWED = {_FIELD_TO_RECIPE.get(f.name, f.name) for f in fields(DistillConfig)}


def _canonical_keys(entry: dict[str, Any], where: str) -> dict[str, Any]:
    """``entry`` with deprecated keys renamed (one warning line each); both spellings at once is an error."""
    kw = {}
    for key, value in entry.items():
        new = RENAMED_KEYS.get(key)
        if new is None:
            kw[key] = value
            continue
        if new in entry:
            raise EdgekdError(f"{where}: both {key!r} and {new!r} given; they are one setting, keep {new!r}")
        print(f"warning: {where}: recipe key {key!r} is deprecated; use {new!r} (see docs/cli.md)", file=sys.stderr)
        kw[new] = [value] if new in _LIST_KEYS and not isinstance(value, list) else value
    return kw


def _to_config(entry: dict[str, Any], where: str, outputs: dict[str, str]) -> DistillConfig:
    entry = _canonical_keys(entry, where)
    unknown = set(entry) - _ALLOWED
    if unknown:
        raise EdgekdError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(sorted(_ALLOWED))}")
    if "student" not in entry:
        raise EdgekdError(f"{where}: 'student' (the student architecture) is required")
    kw = {RECIPE_TO_FIELD.get(k, k): v for k, v in entry.items()}
    if isinstance(kw.get("cache"), bool):  # YAML 1.1 reads a bare on/off as a boolean
        kw["cache"] = "on" if kw["cache"] else "off"
    for key in _TUPLE_FIELDS & set(kw):
        if kw[key] is not None:
            kw[key] = tuple(kw[key])
    teachers = []
    for t in kw.get("teachers", []):
        if isinstance(t, str) and t.startswith("@"):
            if t[1:] not in outputs:
                raise EdgekdError(f"{where}: teacher {t!r} names no earlier stage (earlier: {', '.join(outputs) or 'none'})")
            teachers.append(outputs[t[1:]])
        else:
            teachers.append(str(t))
    kw["teachers"] = teachers
    try:
        return DistillConfig(**kw)
    except TypeError as err:
        raise EdgekdError(f"{where}: {err}") from err


def load_recipe(path: str | Path) -> list[tuple[str, DistillConfig]]:
    """(stage name, config) pairs in run order."""
    path = Path(path)
    if not path.is_file():
        raise EdgekdError(f"recipe {str(path)!r} does not exist")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise EdgekdError(f"recipe {yaml_error_text(path, err)}") from None
    if not isinstance(doc, dict):
        raise EdgekdError(f"recipe {path} must be a mapping")
    if "stages" not in doc:
        return [("main", _to_config(doc, str(path), {}))]
    extra = set(doc) - {"stages", "common"}
    if extra:
        raise EdgekdError(f"{path}: unknown top-level key(s) {sorted(extra)}; with stages only 'stages' and 'common' are allowed")
    common = _canonical_keys(doc.get("common") or {}, f"{path} common")  # warned once, not once per stage
    outputs: dict[str, str] = {}
    result = []
    for i, stage in enumerate(doc["stages"]):
        stage = dict(stage)
        name = str(stage.pop("name", f"stage{i + 1}"))
        where = f"{path} stage {name!r}"
        cfg = _to_config({**common, **_canonical_keys(stage, where)}, where, outputs)
        outputs[name] = cfg.out
        result.append((name, cfg))
    return result


def run_stages(stages: list[tuple[str, DistillConfig]], *, progress: Any = None,
               on_stage_done: Callable[[str, TrainOutcome], None] | None = None) -> list[dict[str, Any]]:
    """Distil each (name, config) stage in order (``load_recipe``'s output: a later stage may take an
    earlier one's checkpoint as its teacher); one summary per stage: name, checkpoint, training seconds
    (``wall_s``), last epoch, and the teacher caches (path, built now or reused, build seconds).

    ``on_stage_done(name, outcome)`` runs as each stage ends (the CLI prints its line there)."""
    summaries = []
    for name, cfg in stages:
        outcome = distill(cfg, progress=progress)
        last = outcome.history[-1] if outcome.history else {}
        summaries.append({"stage": name, "checkpoint": str(outcome.checkpoint), "wall_s": outcome.wall_s, "last_epoch": last,
                          "teacher_cache": outcome.teacher_cache})
        if on_stage_done is not None:
            on_stage_done(name, outcome)
    return summaries
