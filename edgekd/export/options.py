"""``ExportOptions``: everything one ``export_checkpoint`` call is asked to do, validated up front.

One frozen object instead of twenty keyword arguments: the CLI builds it from its flags, scripts
and tests build it (or pass the same keywords to ``export_checkpoint``), and every check that
needs no checkpoint or dataset runs in ``__post_init__``, so a bad request fails with one line
before a model is loaded or a folder is made. What the checks derive (the (backend, precision)
pairs, the input sizes, the fused-artifact request) is kept on the object for the pipeline.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from edgekd.backends.base import Backend
from edgekd.backends.calibration import check_method
from edgekd.backends.onnx_export import EXPORTERS
from edgekd.backends.registry import get_backend, list_backends, nearest
from edgekd.errors import EdgekdError
from edgekd.export.fused import EmbedRequest, check_embed
from edgekd.input_sizes import parse_input_size, parse_input_sizes
from edgekd.parity import DEFAULT_IMAGES, DEFAULT_THRESHOLD

DEFAULT_CALIB_SIZE = 100
PRECISIONS = ("fp32", "fp16", "int8")
PIPELINE_OPTIONS = {"calib_method": "INT8 calibration method", "onnx_simplify": "simplify the ONNX graph with onnxslim (default True)",
                    "opset": "ONNX opset (default: the exporter's, 17 for torchscript, 20 for dynamo)",
                    # every INT8 backend is gated: ORT/OpenVINO search for a configuration within it, the others
                    # (LiteRT, ExecuTorch) have their one configuration accepted or refused from parity
                    "max_accuracy_drop": "INT8 accuracy gate: max mIoU drop in points vs FP32 (default 1% of FP32; 'off')"}


def parse_names(value: str | list[str] | tuple[str, ...], what: str, valid: list[str]) -> list[str]:
    """``"a,b"`` or a list → validated, de-duplicated names; unknown ones get the nearest match."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = list(dict.fromkeys(v.strip().lower() for v in items if v.strip()))
    if not names:
        raise EdgekdError(f"no {what} given; choose from {', '.join(valid)}")
    for name in names:
        if name not in valid:
            raise EdgekdError(f"unknown {what} {name!r}{nearest(name, valid)}; valid {what}s: {', '.join(valid)}")
    return names


def plan_combinations(backends: Any, precisions: Any) -> list[tuple[Backend, str]]:
    """Every (backend, precision) pair; any pair a backend cannot make is an error, never skipped.

    A backend written ``name:precision`` (e.g. ``onnxruntime:int8``) is that one pair; a bare
    name is paired with every precision in ``precisions``.
    """
    items = backends.split(",") if isinstance(backends, str) else list(backends)
    wanted = parse_names(precisions, "precision", list(PRECISIONS))
    pairs: list[tuple[str, str]] = []
    for item in (i.strip() for i in items if i.strip()):
        name, _, fixed = item.partition(":")
        (backend_name,) = parse_names([name], "backend", list_backends())
        for precision in parse_names([fixed], "precision", list(PRECISIONS)) if fixed else wanted:
            if (backend_name, precision) not in pairs:
                pairs.append((backend_name, precision))
    if not pairs:
        raise EdgekdError(f"no backend given; choose from {', '.join(list_backends())}")
    bad = [f"{b} {p}" for b, p in pairs if p not in get_backend(b).precisions]
    if bad:
        supported = "; ".join(f"{b}: {', '.join(get_backend(b).precisions)}" for b in dict.fromkeys(b for b, _ in pairs))
        raise EdgekdError(f"unsupported precision for this backend: {', '.join(bad)}. Supported — {supported}. "
                          "Drop that precision or pair backends with precisions, e.g. --backend torch:fp32,onnxruntime:int8")
    return [(get_backend(b), p) for b, p in pairs]


def check_options(options: dict[str, Any], combos: list[tuple[Backend, str]]) -> dict[str, Any]:
    """Refuse export options no chosen backend reads (an ignored option would change nothing silently)."""
    backends = {b.name: b for b, _ in combos}
    known = {**PIPELINE_OPTIONS, **{k: v for b in backends.values() for k, v in b.export_options.items()}}
    for key in options:
        if key not in known:
            owners = [n for n in list_backends() if key in get_backend(n).export_options]
            where = f"it applies to {', '.join(owners)}, not chosen here" if owners else f"known: {', '.join(sorted(known))}"
            raise EdgekdError(f"export option {key!r} does nothing for backends {', '.join(backends)} ({where})")
    if options.get("max_accuracy_drop") is not None and not any(p == "int8" for _, p in combos):
        raise EdgekdError("--max-accuracy-drop controls INT8 quantisation; add --precision int8")
    if options.get("max_accuracy_drop") is not None:
        from edgekd.backends.int8_budget import check_budget

        options["max_accuracy_drop"] = check_budget(options["max_accuracy_drop"])
    return options



@dataclass(frozen=True)
class ExportOptions:
    """What to export and how. ``backends``/``precisions`` take ``"a,b"`` or a list (``NAME:PRECISION``
    pins one pair); ``backend_options`` are the backends' own export options (``coreml_weights``, ...)
    plus the pipeline's (``calib_method``, ``onnx_simplify``, ``opset``, ``max_accuracy_drop``);
    ``None`` values in it mean "not set". See ``export_checkpoint`` for the folders written."""

    backends: str | list[str] | tuple[str, ...]
    precisions: str | list[str] | tuple[str, ...]
    out_dir: str | os.PathLike
    calib_dir: str | os.PathLike | None = None
    calib_size: int = DEFAULT_CALIB_SIZE
    calib_split: str = "train"
    calib_method: str = "auto"
    data_dir: str | os.PathLike | None = None
    data_split: str = "val"
    parity_images: int = DEFAULT_IMAGES
    parity_threshold: float = DEFAULT_THRESHOLD
    input_size: str | tuple[int, int] | None = None
    dynamic_batch: bool = False
    force: bool = False
    arch: str | None = None
    num_classes: int | None = None
    keep_subnormals: bool = False
    exporter: str = "torchscript"
    backend_options: dict[str, Any] = field(default_factory=dict)
    embed_pre_post: bool = False
    camera_size: str | tuple[int, int] | None = None
    channel_order: str = "rgb"
    class_map_size: str = "network"
    # derived in __post_init__
    combos: list[tuple[Backend, str]] = field(init=False, repr=False, compare=False)
    options: dict[str, Any] = field(init=False, repr=False, compare=False)
    sizes: list[tuple[int, int]] = field(init=False, repr=False, compare=False)
    embed: EmbedRequest | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        combos = plan_combinations(self.backends, self.precisions)
        options = check_options({k: v for k, v in (self.backend_options or {}).items() if v is not None}, combos)
        method = check_method(options.get("calib_method", self.calib_method))
        if any(p == "int8" for _, p in combos):
            options["calib_method"] = method
        if self.exporter not in EXPORTERS:
            raise EdgekdError(f"unknown ONNX exporter {self.exporter!r}{nearest(self.exporter, list(EXPORTERS))}; "
                              f"use one of {', '.join(EXPORTERS)}")
        self._check_counts()
        sizes = parse_input_sizes(self.input_size)
        embed = check_embed(EmbedRequest(parse_input_size(self.camera_size), self.channel_order, self.class_map_size),
                            [b for b, _ in combos], self.dynamic_batch) if self.embed_pre_post else None
        if embed is None and (self.camera_size is not None or str(self.channel_order).lower() != "rgb"
                              or self.class_map_size != "network"):
            raise EdgekdError("--camera-size, --channel-order and --class-map-size describe a fused artifact; add --embed-pre-post")
        for name, value in (("combos", combos), ("options", options), ("sizes", sizes), ("embed", embed)):
            object.__setattr__(self, name, value)

    def _check_counts(self) -> None:
        if isinstance(self.calib_size, bool) or not isinstance(self.calib_size, int) or self.calib_size < 1:
            raise EdgekdError(f"calib_size {self.calib_size!r}: the number of calibration images must be a whole number, "
                              "at least 1 (default 100)")
        if isinstance(self.parity_images, bool) or not isinstance(self.parity_images, int) or self.parity_images < 0:
            raise EdgekdError(f"--parity-images {self.parity_images!r}: give a whole number of images, 0 or more (0 skips parity)")
        if isinstance(self.parity_threshold, bool) or not isinstance(self.parity_threshold, (int, float)) \
                or not self.parity_threshold >= 0:
            raise EdgekdError(f"--parity-threshold {self.parity_threshold!r}: give an argmax agreement such as 0.98 (0 or more)")
        if self.num_classes is not None and (isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int)
                                             or self.num_classes < 1):
            raise EdgekdError(f"--num-classes {self.num_classes!r}: give the class count, at least 1, or leave it out to infer it")

    @property
    def int8(self) -> bool:
        return any(p == "int8" for _, p in self.combos)
