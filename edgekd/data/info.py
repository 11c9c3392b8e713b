"""What a dataset is (its classes, ignore label, layout) and the ``dataset.yaml`` that can say so.

Precedence when the same fact comes from several places: an explicit argument to
``open_dataset`` beats ``dataset.yaml``, which beats the layout's defaults (CamVid's eleven
classes and void label 11). A generic folder dataset has no defaults: without class names from
an argument or ``dataset.yaml`` it cannot be used, because guessing the class count from the
masks would silently change what the model predicts.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgekd.errors import EdgekdError, yaml_error_text

LAYOUTS = ("camvid", "folder")
YAML_NAME = "dataset.yaml"
YAML_KEYS = ("name", "class_names", "ignore_index", "layout", "description")

CAMVID_CLASSES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
)
CAMVID_IGNORE_INDEX = 11
DEFAULT_IGNORE_INDEX = 255


class DataError(EdgekdError):
    """A dataset problem: the message names the file or folder and how to fix it."""


@dataclass(frozen=True)
class DatasetInfo:
    """The facts about a dataset that training, evaluation and checkpoints need."""

    name: str
    class_names: tuple[str, ...]
    num_classes: int
    ignore_index: int
    layout: str
    root: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "class_names": list(self.class_names), "num_classes": self.num_classes,
            "ignore_index": self.ignore_index, "layout": self.layout, "root": str(self.root),
        }


def read_dataset_yaml(root: Path) -> dict[str, Any]:
    """Read and check ``root/dataset.yaml``; an absent file gives ``{}``."""
    path = root / YAML_NAME
    if not path.is_file():
        return {}
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise DataError(f"{yaml_error_text(path, err)}; fix or delete it") from None
    except (OSError, UnicodeDecodeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path} cannot be read as YAML ({first}); fix or delete it") from err
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise DataError(f"{path} must be a mapping with keys {list(YAML_KEYS)}, got a {type(doc).__name__}")
    unknown = sorted(set(doc) - set(YAML_KEYS))
    if unknown:
        raise DataError(f"{path} has unknown keys {unknown}; allowed keys are {list(YAML_KEYS)}")
    return _check_yaml_values(path, doc)


def _check_yaml_values(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    if "name" in doc and not (isinstance(doc["name"], str) and doc["name"].strip()):
        raise DataError(f"{path}: name must be a non-empty string, got {doc['name']!r}")
    if "description" in doc and not isinstance(doc["description"], str):
        raise DataError(f"{path}: description must be a string, got {doc['description']!r}")
    if "layout" in doc and doc["layout"] not in LAYOUTS:
        raise DataError(f"{path}: layout {doc['layout']!r} is not one of {list(LAYOUTS)}")
    if "class_names" in doc:
        check_class_names(doc["class_names"], where=str(path))
    if "ignore_index" in doc:
        value = doc["ignore_index"]
        if isinstance(value, bool) or not isinstance(value, int):
            raise DataError(f"{path}: ignore_index must be an integer 0..255, got {value!r}")
    return doc


def check_class_names(names: Any, *, where: str) -> tuple[str, ...]:
    """Class names must be a non-empty list of distinct, non-empty strings (at most 255)."""
    if isinstance(names, str) or not isinstance(names, (list, tuple)) or not names:
        raise DataError(f"{where}: class_names must be a non-empty list of strings, got {names!r}")
    bad = [n for n in names if not (isinstance(n, str) and n.strip())]
    if bad:
        raise DataError(f"{where}: class_names entries must be non-empty strings; bad entries {bad!r}")
    dupes = sorted({n for n in names if list(names).count(n) > 1})
    if dupes:
        raise DataError(f"{where}: class_names has duplicates {dupes}; give each class one distinct name")
    if len(names) > 255:
        raise DataError(f"{where}: {len(names)} classes do not fit 8-bit masks (at most 255 with an ignore label)")
    return tuple(names)


def resolve_info(
    root: Path,
    layout: str,
    doc: dict[str, Any],
    *,
    class_names: Any = None,
    ignore_index: int | None = None,
) -> DatasetInfo:
    """Combine argument, ``dataset.yaml`` and layout defaults into one checked ``DatasetInfo``."""
    names = class_names if class_names is not None else doc.get("class_names")
    if names is None and layout == "camvid":
        names = CAMVID_CLASSES
    if names is None:
        raise DataError(
            f"{root} is a folder dataset without class names; write {root / YAML_NAME} with "
            f"'class_names: [...]' (one name per label value 0..N-1) or pass class_names="
        )
    names = check_class_names(names, where="class_names" if class_names is not None else str(root / YAML_NAME))
    ignore = ignore_index if ignore_index is not None else doc.get("ignore_index")
    if ignore is None:
        ignore = CAMVID_IGNORE_INDEX if layout == "camvid" else DEFAULT_IGNORE_INDEX
    if isinstance(ignore, bool) or not isinstance(ignore, int) or not 0 <= ignore <= 255:
        raise DataError(f"ignore_index {ignore!r} for {root} must be an integer 0..255 (masks are 8-bit)")
    if ignore < len(names):
        raise DataError(
            f"ignore_index {ignore} for {root} is also class {ignore} ({names[ignore]!r}); "
            f"use a value >= {len(names)} (255 is customary)"
        )
    name = doc.get("name") or root.name or str(root)
    return DatasetInfo(name=name, class_names=names, num_classes=len(names), ignore_index=ignore,
                       layout=layout, root=root)


def write_dataset_yaml(root: Path, *, name: str, class_names: tuple[str, ...] | list[str],
                       ignore_index: int, layout: str, description: str | None = None) -> Path:
    """Write a ``dataset.yaml`` that ``read_dataset_yaml`` accepts (used by the generators)."""
    doc: dict[str, Any] = {"name": name, "layout": layout, "class_names": list(class_names),
                           "ignore_index": int(ignore_index)}
    if description:
        doc["description"] = description
    path = root / YAML_NAME
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path
