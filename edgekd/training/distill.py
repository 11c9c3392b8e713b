"""Offline knowledge distillation: frozen teacher(s) → student, with optional teacher-logit cache.

Images are loaded at one size (``image_size``, default the dataset's), augmented on the batch
by ``JointAugment`` (same geometry for image, labels and cached teacher logits), and the
student is trained on the objective built from ``losses`` (see edgekd.losses). When every
loss uses only the teachers' logits, they are computed once and cached (``cache="auto"``);
feature and relation losses run the teacher live.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from edgekd.checkpoint import load_checkpoint, sha256_file
from edgekd.errors import EdgekdError
from edgekd.models import create_model
from edgekd.qat import record as qat_record
from edgekd.training.augment import JointAugment, PhotometricAugment, cutmix
from edgekd.training.class_balance import check_method, class_weights_for
from edgekd.training.crop import apply_crop_size, first_image_hw
from edgekd.training.loop import TrainOutcome, run_loop
from edgekd.training.multi_teacher import mix_teacher_logits
from edgekd.training.run_parts import base_meta, make_evaluator, train_loader, wrap_ddp
from edgekd.training.runtime import Runtime, barrier, seed_everything, setup_runtime, sync_batchnorm
from edgekd.training.supervised import TrainConfig
from edgekd.training.teacher_cache import build_or_open_cache
from edgekd.training.teacher_tta import TeacherTTA, tta_logits


@dataclass
class DistillConfig(TrainConfig):
    teachers: list[str] = field(default_factory=list)
    teacher_archs: list[str | None] = field(default_factory=list)
    teacher_weights: list[float] | None = None
    teacher_mixing: str = "average"
    losses: list[str] = field(default_factory=lambda: ["ce", "kd"])
    temperature: float = 4.0
    cache: str = "auto"  # auto | on | off
    cache_dir: str | None = None
    image_size: tuple[int, int] | None = None
    kd_metric_images: int | None = 20
    # Start from weights (a pretrained student, or a pruned model to recover); its arch is the student's.
    init: str | None = None
    init_arch: str | None = None
    # Resolution distillation: the student runs at this input size; teacher and labels stay at the crop size.
    student_size: tuple[int, int] | None = None
    # Function matching (live teacher only): colour jitter strength and CutMix probability per batch.
    color_jitter: float = 0.0
    cutmix: float = 0.0
    # Class-balanced CE/OHEM: weights computed once from the train split's labels ("enet" or "median").
    class_weights: str | None = None
    # Stronger teacher targets: logits averaged over flip / scales ("flip", "flip,scales=0.75,1.25").
    teacher_tta: str | None = None
    # Quantisation-aware distillation: fake-quantise the student (NNCF), the FP32 init as teacher by default.
    qat: bool = False
    qat_calib_images: int = 32


class _LogitsForward(torch.nn.Module):
    """A QAT student trained through ``forward``: its fake quantisers hook ``forward``, not ``forward_features``."""

    def __init__(self, student: torch.nn.Module) -> None:
        super().__init__()
        self.student = student

    def forward(self, x: torch.Tensor):
        return self.student(x), {}


class _FeatureForward(torch.nn.Module):
    """Makes ``forward`` return (logits, features) so DDP's gradient hooks see the call."""

    def __init__(self, student: torch.nn.Module) -> None:
        super().__init__()
        self.student = student

    def forward(self, x: torch.Tensor):
        return self.student.forward_features(x)


class _Indexed(Dataset):
    """Adds the item index so cached teacher logits can be looked up."""

    def __init__(self, base) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        image, mask = self.base[i]
        return image, mask, torch.tensor(i)


@dataclass
class Teacher:
    model: torch.nn.Module
    sha256: str
    path: str
    arch: str


def load_teachers(cfg: DistillConfig, device) -> list[Teacher]:
    archs = list(cfg.teacher_archs) + [None] * (len(cfg.teachers) - len(cfg.teacher_archs))
    teachers = []
    for path, arch in zip(cfg.teachers, archs):
        model, meta = load_checkpoint(path, arch=arch)
        for p in model.parameters():
            p.requires_grad_(False)
        teachers.append(Teacher(model.eval().to(device), sha256_file(path), str(path), meta.arch))
    return teachers


def _check_classes(teachers: list[Teacher], num_classes: int) -> None:
    for t in teachers:
        if t.model.num_classes != num_classes:
            raise EdgekdError(
                f"teacher {t.path} predicts {t.model.num_classes} classes, the dataset has {num_classes}; "
                "distil from a teacher trained on the same label set"
            )


def distill(cfg: DistillConfig, progress=None) -> TrainOutcome:
    """Distil ``cfg.arch`` from ``cfg.teachers`` on ``cfg.data``; returns the outcome with history."""
    from edgekd.data import build_eval_transform, open_dataset
    from edgekd.losses import build_objective

    out = Path(cfg.out)
    if out.suffix != ".safetensors":
        raise EdgekdError(f"--out {cfg.out!r} must end in .safetensors")
    tta = TeacherTTA.parse(cfg.teacher_tta)
    if cfg.class_weights is not None:
        check_method(cfg.class_weights)
    seed_everything(cfg.seed)
    runtime = setup_runtime(cfg.device)
    if cfg.student_size is not None and cfg.eval_size is None:
        cfg.eval_size = tuple(cfg.student_size)  # judge the student at the input size it is made for
    train_set = open_dataset(cfg.data, cfg.train_split, transform=build_eval_transform(cfg.image_size))
    apply_crop_size(cfg, cfg.image_size or first_image_hw(train_set),
                    "--image-size images" if cfg.image_size else "train images")
    val_set = open_dataset(cfg.data, cfg.val_split, transform=build_eval_transform(None))
    info = train_set.info
    if cfg.qat:
        _qat_defaults(cfg)
    student, init = build_student(cfg, info)
    student = student.to(runtime.device)
    teachers = load_teachers(cfg, runtime.device) if cfg.teachers else []
    balance = class_weights_for(train_set, cfg.class_weights) if cfg.class_weights else None
    objective = build_objective(
        cfg.losses, student=student, teacher=teachers[0].model if teachers else None, temperature=cfg.temperature,
        ignore_index=info.ignore_index, class_weights=balance["values"] if balance else None,
    ).to(runtime.device)
    if objective.needs_teacher and not teachers:
        raise EdgekdError(f"losses {', '.join(cfg.losses)} need a teacher: pass --teacher CKPT")
    if not objective.needs_teacher:
        teachers = []  # a CE-only run: the no-KD baseline with exactly the distillation data pipeline
        if tta is not None:
            raise EdgekdError(f"--teacher-tta {cfg.teacher_tta} needs a teacher term among the losses ({', '.join(cfg.losses)})")
    _check_classes(teachers, info.num_classes)
    use_cache = bool(teachers) and _decide_cache(cfg, objective, teachers)
    if use_cache and (cfg.color_jitter > 0 or cfg.cutmix > 0):
        raise EdgekdError("--color-jitter / --cutmix change the pixels the teacher must see: run it live with --cache off")
    cache = _open_caches(cfg, teachers, train_set, runtime, progress, tta) if use_cache else None
    meta = base_meta(cfg, student, train_set, method="distill" if teachers else "supervised")
    meta.trained_with.update(_provenance(cfg, teachers, objective, use_cache, cache))
    meta.trained_with.update({"class_weights": balance, "teacher_tta": None if tta is None else tta.to_dict()})
    if cfg.qat:
        student = _fake_quantize(cfg, student, train_set, runtime)
        meta.quantization = qat_record(student, calib_images=min(cfg.qat_calib_images, len(train_set)))
        meta.trained_with["method"] = "qat-distill"
    if init is not None:
        meta.arch, meta.arch_kwargs, meta.structure = init.arch, dict(init.arch_kwargs), init.structure
        meta.init = {"path": Path(cfg.init).name, "sha256": sha256_file(cfg.init), "arch": init.arch,
                     "val_miou": init.metrics.get("miou")}
    if cfg.student_size is not None:
        meta.input_size = list(cfg.student_size)
    student = sync_batchnorm(student, runtime)
    trainable, unwrap_ddp = wrap_ddp((_LogitsForward if cfg.qat else _FeatureForward)(student), runtime)

    def unwrap(m):
        return unwrap_ddp(m).student

    loss_fn = _make_loss_fn(cfg, runtime, student_norm=student.normalization, teachers=teachers,
                            objective=objective, cache=cache, ignore_index=info.ignore_index, tta=tta)
    loader = _loader(cfg, train_set, runtime)
    outcome = run_loop(
        model=trainable, extra_modules=objective, loss_fn=loss_fn, train_loader=loader,
        evaluate_fn=make_evaluator(cfg, val_set, runtime), meta=meta, out=out, cfg=cfg.loop_config(),
        runtime=runtime, resume=cfg.resume, progress=progress, unwrap=unwrap,
    )
    if runtime.is_main and teachers:
        from edgekd.training.kd_report import attach_kd_metrics

        attach_kd_metrics(out, teachers, val_set, cfg, runtime)
    barrier(runtime)  # a recipe's next stage (on every rank) reads the checkpoint rank 0 just finished
    outcome.teacher_cache = [c.describe() for c in cache] if cache else []
    return outcome


def build_student(cfg: DistillConfig, info):
    """The student network: fresh from ``cfg.arch``, or the ``cfg.init`` checkpoint's (pruned) network.

    Returns (model, init checkpoint metadata or None). With ``--init``, ``--student`` may be left
    out (the init's architecture is used); naming another architecture is an error that lists the
    keys that do not fit. The class count must be the dataset's, or one more when the extra
    channel is the dataset's void label (ESPNet's CamVid head).
    """
    from edgekd.checkpoint import build_model, load_state_strict

    if cfg.init is None:
        if not cfg.arch:
            raise EdgekdError("name the student with --student ARCH (or start it from weights with --init CKPT)")
        return create_model(cfg.arch, num_classes=info.num_classes, **cfg.arch_kwargs), None
    model, init_meta = load_checkpoint(cfg.init, arch=cfg.init_arch)
    if cfg.arch and cfg.arch != init_meta.arch:
        other = create_model(cfg.arch, num_classes=model.num_classes, **cfg.arch_kwargs)
        load_state_strict(other, model.state_dict(), f"--init {cfg.init} ({init_meta.arch})")  # raises, naming the keys
        init_meta.arch = cfg.arch
        model = other
    void_head = model.num_classes == info.num_classes + 1 and info.ignore_index == info.num_classes
    if model.num_classes != info.num_classes and not void_head:
        raise EdgekdError(
            f"--init {cfg.init} predicts {model.num_classes} classes, the dataset has {info.num_classes}; "
            "start from a model trained on the same label set"
        )
    cfg.arch = init_meta.arch
    return model.train(), init_meta


def _qat_defaults(cfg: DistillConfig) -> None:
    """QAT fine-tunes a trained student; without --teacher its own FP32 weights are the teacher."""
    if cfg.init is None:
        raise EdgekdError("--qat fine-tunes a trained student with fake quantisation: pass --init CKPT (the FP32 model)")
    if cfg.qat_calib_images < 1:
        raise EdgekdError(f"--qat-calib-images {cfg.qat_calib_images} must be at least 1 (default 32)")
    from edgekd.losses import parse_specs

    features = [s.key for s in parse_specs(cfg.losses) if s.uses_features]
    if features:
        raise EdgekdError(f"--qat trains through the fake-quantised forward (logits only); drop the feature losses {', '.join(features)}")
    if not cfg.teachers:
        cfg.teachers, cfg.teacher_archs = [cfg.init], [cfg.init_arch]


def _fake_quantize(cfg: DistillConfig, student, train_set, runtime: Runtime):
    """The student with NNCF fake quantisers, ranges from the first ``qat_calib_images`` training images."""
    from edgekd.qat import prepare

    count = min(cfg.qat_calib_images, len(train_set))
    norm = student.normalization
    images = (norm.apply(train_set[i][0][None].float()).to(runtime.device) for i in range(count))
    return prepare(student, images, num_images=count)


def _open_caches(cfg: DistillConfig, teachers, train_set, runtime: Runtime, progress, tta) -> list:
    """The teachers' logit caches, built once per node: local rank 0 builds, the other ranks wait, then open."""
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else None

    def open_all(build: bool) -> list:
        return [build_or_open_cache(t.model, t.model.normalization, train_set, teacher_sha=t.sha256, cache_dir=cache_dir,
                                    progress=progress if build else None, tta=tta, build=build) for t in teachers]

    if runtime.is_local_main:
        caches = open_all(build=True)
        barrier(runtime)
        return caches
    barrier(runtime)
    return open_all(build=False)


def _decide_cache(cfg: DistillConfig, objective, teachers) -> bool:
    if cfg.cache not in ("auto", "on", "off"):
        raise EdgekdError(f"--cache {cfg.cache!r} is not one of auto, on, off")
    logits_only = not objective.uses_teacher_features
    if cfg.cache == "on" and not logits_only:
        raise EdgekdError("--cache on needs logit-only losses; feature/relation losses run the teacher live (use --cache auto)")
    return cfg.cache == "on" or (cfg.cache == "auto" and logits_only)


def _provenance(cfg, teachers, objective, use_cache, cache) -> dict:
    return {
        "teachers": [{"path": Path(t.path).name, "sha256": t.sha256, "arch": t.arch} for t in teachers],
        "teacher_sha256": [t.sha256 for t in teachers],
        "teacher_weights": cfg.teacher_weights, "teacher_mixing": cfg.teacher_mixing,
        "losses": objective.weights_dict(), "loss_terms": objective.describe(), "temperature": cfg.temperature,
        "teacher_cache": {"used": use_cache, "build_seconds": sum(c.build_seconds for c in cache) if cache else None},
        "student_size": list(cfg.student_size) if cfg.student_size else None,
        "augment": {"crop_size": list(cfg.crop_size), "scale_range": list(cfg.scale_range), "flip": True,
                    "color_jitter": cfg.color_jitter, "cutmix": cfg.cutmix},
    }


def _loader(cfg: DistillConfig, train_set, runtime: Runtime) -> DataLoader:
    return train_loader(_Indexed(train_set), cfg, runtime)


def _make_loss_fn(cfg, runtime, *, student_norm, teachers, objective, cache, ignore_index, tta=None):
    augment = JointAugment(tuple(cfg.crop_size), tuple(cfg.scale_range), ignore_index=ignore_index)
    photometric = PhotometricAugment(cfg.color_jitter)
    generator = torch.Generator().manual_seed(cfg.seed + 1)

    def student_view(images):
        """What the student sees: the crop, resized to its own input size for resolution distillation."""
        if cfg.student_size is None or tuple(images.shape[-2:]) == tuple(cfg.student_size):
            return images
        return F.interpolate(images, size=tuple(cfg.student_size), mode="bilinear", align_corners=False)

    def teacher_targets(images):
        """Live teachers: features from the plain view; logits averaged over the TTA views when asked."""
        xs = [t.model.normalization.apply(images) for t in teachers]
        if tta is not None and not objective.uses_teacher_features:
            return mix_teacher_logits([tta_logits(t.model, x, tta) for t, x in zip(teachers, xs)],
                                      cfg.teacher_weights, cfg.teacher_mixing), None
        outs = [t.model.forward_features(x) for t, x in zip(teachers, xs)]
        logits = [o[0] for o in outs] if tta is None else [tta_logits(t.model, x, tta) for t, x in zip(teachers, xs)]
        return mix_teacher_logits(logits, cfg.teacher_weights, cfg.teacher_mixing), outs[0][1]

    def loss_fn(model, batch):
        images, masks, index = batch
        cached = None
        if cache is not None:
            cached = [c.batch(index.cpu()).to(images.device) for c in cache]
            cached = mix_teacher_logits(cached, cfg.teacher_weights, cfg.teacher_mixing)
        images, masks, cached = augment(generator, images.float(), masks, cached)
        if cached is None:
            images = photometric(generator, images)
            images, masks = cutmix(generator, images, masks, cfg.cutmix)
        x = student_norm.apply(student_view(images))
        if runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        s_logits, s_feats = model(x)
        if s_logits.shape[-2:] != masks.shape[-2:]:  # resolution distillation: judged at the label size
            s_logits = F.interpolate(s_logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
        if cached is not None:
            t_logits, t_feats = cached, None
        elif teachers:
            with torch.no_grad():
                t_logits, t_feats = teacher_targets(images)
        else:  # supervised-only objective
            t_logits, t_feats = None, None
        teacher_out = t_logits if t_feats is None else (t_logits, t_feats)
        return objective((s_logits, s_feats), teacher_out, masks)

    return loss_fn
