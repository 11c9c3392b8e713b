"""The KD evaluation metrics of a finished distillation run, stored in the student checkpoint.

Teacher‖student KL and probability correlation on val images, relative error E_s/E_t and
distillation factor P_t/P_s (teacher = the first teacher of the run).
"""
from __future__ import annotations

from pathlib import Path

import torch

from edgekd.checkpoint import count_params, load_checkpoint, save_checkpoint
from edgekd.evaluate import evaluate_model


@torch.inference_mode()
def kd_metrics(student, teacher, val_set, *, max_images: int | None, device) -> dict:
    from edgekd.distill.losses.kd_metrics import KDAgreement, distillation_factor, relative_error

    info = val_set.info
    agreement = KDAgreement(ignore_index=info.ignore_index)
    n = len(val_set) if max_images is None else min(max_images, len(val_set))
    student.eval()
    flushed = torch.set_flush_denormal(True)
    try:
        for i in range(n):
            image, mask = val_set[i]
            image, mask = image[None].to(device), mask[None].to(device)
            s = student(student.normalization.apply(image))
            t = teacher(teacher.normalization.apply(image))
            agreement.update(t, s, mask)
    finally:
        torch.set_flush_denormal(False)
    # Both mIoUs on the same images, so E_s/E_t compares like with like.
    teacher_eval = evaluate_model(teacher, teacher.normalization, val_set, max_images=max_images, device=device)
    student_miou = evaluate_model(student, student.normalization, val_set, max_images=max_images, device=device)["miou"]
    return {
        "teacher_student_kl": agreement.kl(), "probability_correlation": agreement.pearson(),
        "teacher_miou": teacher_eval["miou"], "student_miou": student_miou,
        "relative_error": relative_error(student_miou, teacher_eval["miou"]),
        "distillation_factor": distillation_factor(count_params(teacher), count_params(student)),
        "images": n, "flush_denormal": flushed,
    }


def attach_kd_metrics(checkpoint: Path, teachers, val_set, cfg, runtime) -> dict:
    """Compute the KD metrics for the saved student and rewrite its metadata with them."""
    student, meta = load_checkpoint(checkpoint)
    student.to(runtime.device)
    result = kd_metrics(student, teachers[0].model, val_set, max_images=cfg.kd_metric_images,
                        device=runtime.device)
    meta.metrics["kd"] = result
    save_checkpoint(checkpoint, student, meta)
    return result
