"""The KD evaluation metrics of a finished distillation run, stored in the student checkpoint.

One pass over val images: the teacher at the images' native size (how it was used for the
targets), the student at its evaluation size; teacher‖student KL and probability correlation
are computed at the student's output size, both mIoUs at the label size. Also relative error
E_s/E_t and distillation factor P_t/P_s (teacher = the first teacher of the run).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from edgekd.checkpoint import count_params, load_checkpoint, save_checkpoint
from edgekd.metrics import ConfusionMatrix
from edgekd.losses.combine import drop_void_channel


def _logits(model, image: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    x = model.normalization.apply(image)
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return model(x)


def _to(logits: torch.Tensor, size) -> torch.Tensor:
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


@torch.inference_mode()
def kd_metrics(student, teacher, val_set, *, max_images: int | None, device, eval_size=None) -> dict:
    from edgekd.losses.kd_metrics import KDAgreement, distillation_factor, relative_error

    info = val_set.info
    agreement = KDAgreement(ignore_index=info.ignore_index)
    cm_student = ConfusionMatrix(info.num_classes, info.ignore_index)
    cm_teacher = ConfusionMatrix(info.num_classes, info.ignore_index)
    n = len(val_set) if max_images is None else min(max_images, len(val_set))
    student.eval()
    teacher.eval()
    flushed = torch.set_flush_denormal(True)
    try:
        for i in range(n):
            image, mask = val_set[i]
            image, mask = image[None].to(device), mask[None].to(device)
            s = _logits(student, image, eval_size)
            t = _logits(teacher, image, None)
            small_mask = F.interpolate(mask[:, None].float(), size=s.shape[-2:], mode="nearest-exact")[:, 0].long()
            agreement.update(_to(t, s.shape[-2:]), drop_void_channel(s, t), small_mask)
            cm_student.update(_to(s, mask.shape[-2:]).argmax(1), mask)
            cm_teacher.update(_to(t, mask.shape[-2:]).argmax(1), mask)
    finally:
        torch.set_flush_denormal(False)
    return {
        "teacher_student_kl": agreement.kl(), "probability_correlation": agreement.pearson(),
        "teacher_miou": cm_teacher.miou(), "student_miou": cm_student.miou(),
        "relative_error": relative_error(cm_student.miou(), cm_teacher.miou()),
        "distillation_factor": distillation_factor(count_params(teacher), count_params(student)),
        "images": n, "student_eval_size": list(eval_size) if eval_size else "native", "flush_denormal": flushed,
    }


def attach_kd_metrics(checkpoint: Path, teachers, val_set, cfg, runtime) -> dict:
    """Compute the KD metrics for the saved student and rewrite its metadata with them."""
    student, meta = load_checkpoint(checkpoint)
    student.to(runtime.device)
    result = kd_metrics(student, teachers[0].model, val_set, max_images=cfg.kd_metric_images,
                        device=runtime.device, eval_size=cfg.eval_size)
    meta.metrics["kd"] = result
    save_checkpoint(checkpoint, student, meta)
    return result
