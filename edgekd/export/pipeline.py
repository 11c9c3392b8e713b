"""``export_checkpoint``: one checkpoint → one artifact folder per (backend, precision).

Every input is checked before anything is written (backends, precisions and their pairing,
options, calibration data for INT8, the input size against the model's output stride, existing
output folders). Each artifact is built in a hidden temporary folder beside its final place and
renamed only once its files, parity and manifest are complete, so a failure leaves nothing
half-written. The ONNX graph is exported once and shared by the ONNX-based backends.
"""
from __future__ import annotations

import copy
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekd.backends.base import Backend, BackendUnavailable, ExportRequest
from edgekd.backends.int8_budget import AccuracyGateError, gate_from_parity
from edgekd.backends.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx
from edgekd.errors import EdgekdError
from edgekd.backends.prepost import FOLDER_SUFFIX
from edgekd.export.temporaries import WORK_PREFIX, missing_ancestors, clean_stale_temporaries
from edgekd.export.fused import EmbedRequest, fused_parity_block, manifest_fields
from edgekd.export.inputs import ImageSample, load_sample
from edgekd.export.manifest import build_manifest, write_manifest
from edgekd.export.options import ExportOptions
from edgekd.export.weights import count_subnormals, flush_subnormals, nonfinite_weights
from edgekd.input_sizes import check_input_size, format_size, parse_input_size
from edgekd.metrics import check_class_count
from edgekd.parity import DEFAULT_THRESHOLD, compare, reference_logits, run_session, skipped, unavailable
from edgekd.qat import export_qdq_onnx, float_copy, is_qat

Log = Callable[[str], None]


@dataclass
class _Context:
    """What every artifact of one export shares."""

    model: Any
    meta: dict[str, Any]
    source: dict[str, Any]
    input_size: tuple[int, int]
    dynamic_batch: bool
    options: dict[str, Any]
    root: Path
    output_stride: int
    calib: ImageSample | None = None
    val: ImageSample | None = None
    val_images: np.ndarray | None = None
    reference: np.ndarray | None = None
    reference_model: Any = None
    onnx_path: Path | None = None
    onnx_info: dict[str, Any] | None = None
    subnormals: dict[str, Any] = field(default_factory=dict)
    parity_threshold: float = DEFAULT_THRESHOLD
    parity_reason: str = ""
    size_note: str | None = None
    folder_suffix: str = ""  # "-HxW" when one call exports several input sizes
    size_sweep: list[str] | None = None
    embed: EmbedRequest | None = None  # --embed-pre-post: fused frame -> class-map artifacts
    parity_source: Any = None  # labelled dataset folder and split for parity (fused parity reloads at camera size)
    parity_split: str = "val"
    parity_count: int = 0
    qat_model: Any = None  # a QAT checkpoint's fake-quantised network (its INT8 is exported as trained)
    qat_onnx_path: Path | None = None
    nonfinite: str = ""  # why the weights are unusable (NaN/Inf), or ""


def export_checkpoint(checkpoint: str | os.PathLike, *, options: dict[str, Any] | None = None, log: Log | None = None,
                      **kwargs: Any) -> list[Path]:
    """``export_artifacts(checkpoint, ExportOptions(...))`` from keywords (the ``ExportOptions`` fields;
    ``options`` is its ``backend_options``), for scripts and tests that call it with keywords."""
    return export_artifacts(checkpoint, ExportOptions(backend_options=dict(options or {}), **kwargs), log=log)


def export_artifacts(checkpoint: str | os.PathLike, opts: ExportOptions, *, log: Log | None = None) -> list[Path]:
    """Export ``checkpoint`` for every (backend, precision) of ``opts``; returns the artifact folders written.

    Artifacts go to ``<out_dir>/<checkpoint stem>/<backend>-<precision>/``; with several input sizes
    (``"360x480,240x320"``) to ``<backend>-<precision>-<H>x<W>/``, one per size. INT8 calibrates on
    ``calib_size`` real images of ``calib_dir``'s ``calib_split``; parity runs on
    ``parity_images`` images of ``data_dir`` (default ``calib_dir``) split ``data_split``.
    ``embed_pre_post`` makes fused artifacts instead (``<backend>-<precision>-fused/``): the graph
    takes the ``camera_size`` uint8 HWC frame in ``channel_order`` and returns the uint8 class map
    at ``class_map_size`` (network | camera); see ``edgekd.backends.prepost``.
    """
    log = log or (lambda message: None)
    checkpoint = Path(checkpoint)
    combos, options, sizes, embed, int8 = opts.combos, dict(opts.options), opts.sizes, opts.embed, opts.int8
    if int8 and opts.calib_dir is None and not _is_qat(checkpoint, opts.arch):
        raise EdgekdError("INT8 needs real calibration images: pass --calib DIR (a dataset folder with a "
                          f"{opts.calib_split!r} split); edgekd never calibrates on random noise")
    root = Path(opts.out_dir) / checkpoint.stem
    fused = FOLDER_SUFFIX if embed else ""
    suffixes = [f"-{format_size(s)}" for s in sizes] if len(sizes) > 1 else [""]
    _refuse_existing([root / f"{b.name}-{p}{x}{fused}" for x in suffixes for b, p in combos], opts.force)
    ctx = _prepare(checkpoint, opts.arch, opts.num_classes, sizes[0] if sizes else None, opts.dynamic_batch,
                   opts.keep_subnormals, options, root, log)
    ctx.parity_threshold, ctx.embed = opts.parity_threshold, embed
    notes = {s: check_input_size(ctx.reference_model, s, ctx.output_stride, ctx.meta["arch"]) for s in sizes[1:]}
    created = missing_ancestors(root)  # --out and the checkpoint folder, when this call makes them
    root.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(root, log)
    work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}pid{os.getpid()}-", dir=root))
    try:
        written: list[Path] = []
        try:
            for i, suffix in enumerate(suffixes):  # one pass per input size (the resolution curve), same checkpoint
                if i:
                    ctx.input_size, ctx.size_note = sizes[i], notes[sizes[i]]
                    ctx.meta["macs"] = _network_macs(ctx.reference_model, sizes[i], log)  # MACs grow with the pixels
                    ctx.onnx_path = ctx.onnx_info = ctx.calib = ctx.val = ctx.val_images = ctx.reference = None
                    if ctx.size_note:
                        log(ctx.size_note)
                ctx.folder_suffix, ctx.size_sweep = suffix, [format_size(s) for s in sizes] if suffix else None
                _load_images(ctx, combos, opts.calib_dir, opts.calib_size, opts.calib_split, opts.data_dir, opts.data_split,
                             opts.parity_images, log)
                if any(b.needs_onnx for b, _ in combos):
                    ctx.onnx_path = work / f"model{suffix}.onnx"
                    log(f"ONNX export ({opts.exporter}) at {ctx.input_size[0]}x{ctx.input_size[1]}")
                    ctx.onnx_info = export_onnx(ctx.model, ctx.input_size, ctx.onnx_path, dynamic_batch=opts.dynamic_batch, exporter=opts.exporter,
                                                opset=options.get("opset"), simplify=bool(options.get("onnx_simplify", True)))
                if ctx.qat_model is not None and int8:
                    ctx.qat_onnx_path = work / f"model{suffix}-qat-qdq.onnx"
                    log("QAT checkpoint: QDQ ONNX with its trained quantiser scales")
                    export_qdq_onnx(ctx.qat_model, ctx.qat_onnx_path, ctx.input_size, input_name=INPUT_NAME, output_name=OUTPUT_NAME,
                                    opset=options.get("opset") or 17)
                for backend, precision in combos:
                    written.append(_export_one(backend, precision, ctx, log))
        except AccuracyGateError:  # an unmet INT8 budget fails the whole export: no artifact from this call stays
            for path in written:
                shutil.rmtree(path, ignore_errors=True)
            raise
        return written
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for folder in created:  # deepest first: a failed call (e.g. a backend package missing) leaves no empty --out
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def _is_qat(checkpoint: Path, arch: str | None) -> bool:
    """A quantisation-aware-trained edgekd checkpoint carries its INT8 scales: it needs no calibration images."""
    from edgekd.checkpoint import read_meta
    from edgekd.qat import is_qat

    return checkpoint.suffix == ".safetensors" and arch is None and checkpoint.is_file() and is_qat(read_meta(checkpoint).quantization)


def _refuse_existing(targets: list[Path], force: bool) -> None:
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise EdgekdError(f"output folder {existing[0]} exists; pass --force to replace it, or choose another --out")


def _network_macs(model, size: tuple[int, int], log: Log) -> int | None:
    """MACs of the network itself at ``size`` (a pruned checkpoint's layers are smaller than its
    architecture's): bench reads them from the manifest instead of rebuilding the unpruned architecture."""
    from edgekd.models.complexity import count_macs

    try:
        return count_macs(model, size)
    except Exception as err:  # a model the counter cannot run: bench then counts the architecture, and says so
        log(f"MACs not counted ({type(err).__name__}: {err}); bench will count the base architecture")
        return None


def _prepare(checkpoint: Path, arch: str | None, num_classes: int | None, input_size: Any, dynamic_batch: bool,
             keep_subnormals: bool, options: dict[str, Any], root: Path, log: Log) -> _Context:
    from edgekd.checkpoint import load_checkpoint, sha256_file

    model, meta = load_checkpoint(checkpoint, arch=arch, num_classes=num_classes)
    stride = int(getattr(model, "output_stride", 1))
    size = parse_input_size(input_size) or (int(meta.input_size[0]), int(meta.input_size[1]))
    size_note = check_input_size(model, size, stride, meta.arch)
    if size_note:
        log(size_note)
    meta_dict = asdict(meta)
    meta_dict["macs"] = _network_macs(model, size, log)
    meta_dict["normalization"] = {"mean": list(meta.mean), "std": list(meta.std), "channel_order": meta.channel_order,
                                  "formula": "x = (pixel[channel_order] - mean) / std, pixels RGB 0..255"}
    qat_model = None
    if is_qat(meta.quantization):  # FP32 artifacts: the trained weights without quantisers; INT8: the QDQ graph as trained
        from edgekd.models import create_model

        qat_model = model
        export_model = float_copy(model, lambda: create_model(meta.arch, num_classes=meta.num_classes, **meta.arch_kwargs))
        log("QAT checkpoint: INT8 uses its trained quantisers; FP32 is its weights without them")
    else:
        export_model = copy.deepcopy(model).eval()
    found = count_subnormals(export_model)
    flushed = 0 if keep_subnormals else flush_subnormals(export_model)
    if found:
        log(f"{found} subnormal weights found; {'kept (keep_subnormals)' if keep_subnormals else 'flushed to zero'}")
    source = {"checkpoint": str(checkpoint.resolve()), "name": checkpoint.name, "sha256": sha256_file(checkpoint),
              "trained_with": meta.trained_with, "metrics": meta.metrics}
    ctx = _Context(export_model, meta_dict, source, size, dynamic_batch, dict(options), root, stride)
    ctx.subnormals = {"found": found, "flushed": flushed, "keep": keep_subnormals}
    bad = nonfinite_weights(model)
    if bad:
        ctx.nonfinite = (f"the checkpoint holds {sum(bad.values())} NaN/Inf weight values in {len(bad)} tensors "
                         f"(first: {next(iter(bad))}): its outputs are not numbers; re-train or fix the checkpoint")
        log(ctx.nonfinite)
    ctx.size_note = size_note
    ctx.reference_model = model  # original weights: parity includes the effect of flushing (QAT: the fake-quantised model)
    ctx.qat_model = qat_model
    return ctx


def _load_images(ctx: _Context, combos: list[tuple[Backend, str]], calib_dir: Any, calib_size: int, calib_split: str,
                 data_dir: Any, data_split: str, parity_images: int, log: Log) -> None:
    """Calibration images (INT8 only) and labelled parity images with their PyTorch FP32 logits.

    Parity data defaults to the calibration folder; when that folder has no ``data_split``,
    parity is skipped with the reason instead of failing the export (an explicit ``--data``
    without that split is an error).
    """
    from edgekd.data.info import DataError

    if any(p == "int8" for _, p in combos) and ctx.qat_model is None:
        ctx.calib = load_sample(calib_dir, calib_split, calib_size, ctx.input_size)
        _check_calibration(ctx.calib, ctx.meta, ctx.input_size, calib_dir)
        log(f"calibration: {ctx.calib.description['num_images']} images of {calib_dir} [{calib_split}]")
    source = data_dir if data_dir is not None else calib_dir
    ctx.parity_source, ctx.parity_split, ctx.parity_count = source, data_split, parity_images
    if source is None or parity_images < 1:
        ctx.parity_reason = "no labelled images given: pass --data DIR (or --calib DIR) to measure parity"
    else:
        try:
            ctx.val = load_sample(source, data_split, parity_images, ctx.input_size)
        except DataError as err:
            if data_dir is not None:
                raise
            ctx.parity_reason = f"the --calib folder has no usable {data_split!r} split ({err}); pass --data DIR"
    if ctx.val is not None:
        check_class_count(ctx.meta["num_classes"], ctx.val.num_classes, ctx.val.ignore_index,
                          model=f"checkpoint {ctx.source['name']} ({ctx.meta['arch']})", dataset=f"{source} [{data_split}] for parity")
    if ctx.val is None:
        # plain PTQ (the gate off) needs no labels; a budget (explicit or default) does
        if ctx.options.get("max_accuracy_drop") not in (None, "off"):
            raise EdgekdError(f"--max-accuracy-drop needs labelled validation images: {ctx.parity_reason}")
        return
    ctx.val_images = ctx.val.normalized(ctx.meta["normalization"])
    ctx.reference = reference_logits(ctx.reference_model, ctx.val_images)


def _check_calibration(calib: ImageSample, meta: dict[str, Any], size: tuple[int, int], calib_dir: Any) -> None:
    """Calibration images must be of the model's task (class count) and of the export's aspect ratio."""
    check_class_count(meta["num_classes"], calib.num_classes, calib.ignore_index, model=meta["arch"],
                      dataset=f"{calib_dir} (--calib)")
    native_h, native_w = calib.description["native_size"]
    if abs(native_w / native_h - size[1] / size[0]) > 0.05 * size[1] / size[0]:
        raise EdgekdError(f"calibration images are {native_h}x{native_w} (HxW), the export input is {size[0]}x{size[1]}: resizing "
                          "would distort them and the INT8 ranges with them; pass images of that aspect ratio, or --input-size to match")


def _export_one(backend: Backend, precision: str, ctx: _Context, log: Log) -> Path:
    final = ctx.root / f"{backend.name}-{precision}{ctx.folder_suffix}{FOLDER_SUFFIX if ctx.embed else ''}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.pid{os.getpid()}.", suffix=".tmp", dir=ctx.root))
    try:
        log(f"{final.name}: converting")
        norm = ctx.meta["normalization"]
        request = ExportRequest(
            model=ctx.model, input_size=ctx.input_size, precision=precision, out_dir=tmp, dynamic_batch=ctx.dynamic_batch,
            options=dict(ctx.options), onnx_path=ctx.onnx_path, metadata=ctx.meta,
            calib_images=ctx.calib.normalized(norm) if ctx.calib and precision == "int8" else None,
            calib_pixels=ctx.calib.pixels if ctx.calib and precision == "int8" else None,
            val_images=ctx.val_images, val_masks=ctx.val.masks if ctx.val else None,
            val_num_classes=ctx.val.num_classes if ctx.val else None, val_ignore_index=ctx.val.ignore_index if ctx.val else None,
            log=log, qat_onnx_path=ctx.qat_onnx_path if precision == "int8" else None,
        )
        fields = backend.export(request)
        contract = ctx.embed.contract(ctx.input_size, ctx.meta) if ctx.embed else None
        if contract is not None:
            log(f"{final.name}: embedding pre/post-processing ({contract.camera_hw[0]}x{contract.camera_hw[1]} "
                f"{contract.channel_order} uint8 frame -> uint8 class map at {contract.class_map_at} size)")
            fields.update(manifest_fields(backend.embed_pre_post(request, contract)))
        calibration = dict(ctx.calib.description, method=ctx.options["calib_method"]) if ctx.calib and precision == "int8" else None
        manifest = build_manifest(
            source=ctx.source, meta=ctx.meta, output_stride=ctx.output_stride, backend=backend.name,
            backend_version=backend.version(), precision=precision, input_size=ctx.input_size,
            dynamic_batch=ctx.dynamic_batch, onnx_info=ctx.onnx_info if backend.needs_onnx else None,
            options=dict(ctx.options, keep_subnormals=ctx.subnormals["keep"], exporter=ctx.onnx_info["exporter"] if ctx.onnx_info else None),
            calibration=calibration, subnormals_flushed=ctx.subnormals["flushed"], fields=fields,
            parity={"status": "pending"}, folder=tmp,
        )
        manifest["complete"] = False  # until parity is in: a bench takes only artifacts whose manifest says complete
        manifest["subnormals_found"] = ctx.subnormals["found"]
        if precision == "int8" and "accuracy_gate" not in manifest:
            manifest["accuracy_gate"] = {"status": "not measured", "reason": ctx.parity_reason or "the backend has no INT8 gate"}
        if ctx.size_note:
            manifest["input_size_note"] = ctx.size_note
        manifest["input_size"] = list(ctx.input_size)
        if ctx.size_sweep:
            manifest["input_size_sweep"] = ctx.size_sweep  # the sizes exported together (one resolution curve)
        write_manifest(tmp, manifest)  # parity loads the artifact exactly as users will, manifest included
        manifest["parity"] = fused_parity_block(backend, precision, tmp, ctx, contract) if contract else _parity(backend, precision, tmp, ctx)
        if precision == "int8" and "max_accuracy_drop" not in backend.export_options and not ctx.qat_onnx_path:
            # a backend without its own INT8 search: accept or refuse the one configuration it wrote
            manifest["accuracy_gate"] = gate_from_parity(backend.name, ctx.options.get("max_accuracy_drop"), manifest["parity"])
        manifest["complete"] = True
        write_manifest(tmp, manifest)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _parity(backend: Backend, precision: str, folder: Path, ctx: _Context) -> dict[str, Any]:
    """Parity for each of the backend's parity runs; the first is the headline, the others ``variants``."""
    if ctx.nonfinite:
        return {"status": "failed", "reason": ctx.nonfinite}
    if ctx.val is None or ctx.reference is None:
        return skipped(ctx.parity_reason)
    results: dict[str, dict[str, Any]] = {}
    for name, runtime_options in backend.parity_runs(precision).items():
        try:
            session = backend.load(folder, **runtime_options)
            logits = run_session(session.run, ctx.val_images)
        except BackendUnavailable as err:
            return unavailable(str(err))
        except Exception as err:  # a runtime crash on a fresh artifact must be visible, not fatal to the others
            results[name] = {"status": "failed", "reason": f"{type(err).__name__}: {err}",
                             "warning": f"the artifact failed to run here: {err}"}
            continue
        result = compare(ctx.reference, logits, ctx.val.masks, num_classes=ctx.val.num_classes,
                         ignore_index=ctx.val.ignore_index, threshold=ctx.parity_threshold)
        results[name] = {**result, "runtime_options": runtime_options, "ran_as": session.describe(),
                         "data": {k: ctx.val.description[k] for k in ("dataset", "split", "num_images", "selection")}}
    first = next(iter(results))
    headline = {**results[first], "variant": first}
    if len(results) > 1:
        headline["variants"] = {k: v for k, v in results.items() if k != first}
    return headline
