"""`edgekd demo`: the whole loop on embedded synthetic AR scenes, sized for a 2-core CPU.

synthetic data → teacher → students with and without KD → export (ONNX Runtime, OpenVINO
FP32/INT8, Core ML when coremltools is installed) → bench on ``host`` → compare, plots, report.
Every step writes under ``out``; steps whose outputs exist are reused, so a rerun resumes.
"""
from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgekd.errors import EdgekdError

IMAGE_SIZE = (96, 128)  # H×W of the synthetic scenes and of every exported model
TEACHER = ("deeplabv3_resnet", {"depth": 18, "width": 32, "output_stride": 16})
STUDENTS = ("unet_tiny", "lraspp_mobilenetv3_small")
KD_LOSSES = ["ce", "kd:1", "cwd:2"]


@dataclass
class DemoConfig:
    out: Path = Path("demo_out")
    num_train: int = 160
    num_val: int = 32
    teacher_epochs: int = 5
    student_epochs: int = 3
    batch_size: int = 8
    bench_seconds: float = 1.0
    seed: int = 0
    coreml: str = "auto"  # auto | on | off


@dataclass
class DemoResult:
    paths: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    pick: str = ""
    table: object = None  # the comparison DataFrame


Step = Callable[[str], None]


DEMO_INT8_BUDGET = 2.0  # mIoU points


def _timed(result: DemoResult, name: str, say: Step):
    class _T:
        def __enter__(self):
            say(f"[bold]{name}[/bold] …")
            self.t0 = time.perf_counter()

        def __exit__(self, *exc):
            result.timings[name] = time.perf_counter() - self.t0
            if exc[0] is None:
                say(f"  {name} done in {result.timings[name]:.1f} s")

    return _T()


def _train_teacher(cfg: DemoConfig, data: Path, say: Step, progress) -> Path:
    from edgekd.training import TrainConfig, train_supervised

    out = cfg.out / "checkpoints" / "teacher.safetensors"
    arch, kwargs = TEACHER
    train_supervised(TrainConfig(
        arch=arch, arch_kwargs=kwargs, data=str(data), out=str(out), epochs=cfg.teacher_epochs, batch_size=cfg.batch_size,
        lr=0.05, crop_size=IMAGE_SIZE, scale_range=(0.75, 1.5), seed=cfg.seed, resume=True,
    ), progress=progress)
    return out


def _train_students(cfg: DemoConfig, data: Path, teacher: Path, progress) -> list[Path]:
    from edgekd.training.distill import DistillConfig, distill

    common = dict(data=str(data), epochs=cfg.student_epochs, batch_size=cfg.batch_size, lr=0.05, crop_size=IMAGE_SIZE,
                  scale_range=(0.75, 1.5), seed=cfg.seed, resume=True)
    outs = []
    for arch in STUDENTS:
        base = cfg.out / "checkpoints" / f"{arch}-baseline.safetensors"
        # the no-KD baseline runs through the same trainer (same augmentation), cross-entropy only
        distill(DistillConfig(arch=arch, out=str(base), losses=["ce"], **common), progress=progress)
        kd = cfg.out / "checkpoints" / f"{arch}-kd.safetensors"
        distill(DistillConfig(arch=arch, out=str(kd), teachers=[str(teacher)], losses=KD_LOSSES, temperature=4.0,
                              cache_dir=str(cfg.out / "teacher_cache"), **common), progress=progress)
        outs += [base, kd]
    return outs


def _want_coreml(cfg: DemoConfig) -> bool:
    if cfg.coreml not in ("auto", "on", "off"):
        raise EdgekdError(f"coreml {cfg.coreml!r} is not one of auto, on, off")
    return cfg.coreml == "on" or (cfg.coreml == "auto" and importlib.util.find_spec("coremltools") is not None)


def _export(cfg: DemoConfig, data: Path, checkpoints: list[Path], say: Step) -> Path:
    from edgekd.export import export_checkpoint

    root = cfg.out / "artifacts"
    backends = ["onnxruntime", "openvino"]
    for ckpt in checkpoints:
        if (root / ckpt.stem).is_dir():
            say(f"  reuse {root / ckpt.stem}")
            continue
        # INT8 budget 2 mIoU points: the demo's students are small and its 8 parity images too few for the
        # default 1%-of-FP32 gate to tell a real loss from noise (a user's export keeps the default).
        export_checkpoint(ckpt, backends=backends, precisions=["fp32", "int8"], out_dir=root, calib_dir=data,
                          calib_size=32, data_dir=data, parity_images=8, options={"max_accuracy_drop": DEMO_INT8_BUDGET},
                          log=lambda m: say(f"  {ckpt.stem}: {m}"))
        if _want_coreml(cfg) and ckpt.stem.endswith("-kd"):
            export_checkpoint(ckpt, backends=["coreml"], precisions=["fp16"], out_dir=root, data_dir=data,
                              log=lambda m: say(f"  {ckpt.stem}: {m}"))
    return root


def _bench(cfg: DemoConfig, data: Path, artifacts: Path, progress) -> Path:
    from edgekd.bench.runner import BenchOptions, run_bench
    from edgekd.profiles import load_profile

    s = cfg.bench_seconds
    opts = BenchOptions(duration_s=s, min_iters=20, warmup_max_s=s, e2e_s=s / 2, paced_s=s / 2, throughput_s=s / 2,
                        data=data, accuracy_images=cfg.num_val)
    out = cfg.out / "bench_results"
    reporter = None
    if progress is not None:
        from edgekd.bench.display import RichReporter

        reporter = RichReporter()
    run_bench(load_profile("host"), [artifacts], opts, out, resume=(out / "host").is_dir(), reporter=reporter)
    return out / "host"


def _compare(cfg: DemoConfig, results: Path, say: Step):
    from edgekd.compare import compare_results, make_plots, pick_best
    from edgekd.compare.format import render
    from edgekd.report import write_report

    df = compare_results([results])
    table = cfg.out / "compare.md"
    table.write_text(render(df, "md"))
    make_plots(df, cfg.out / "plots")
    report = write_report([results], cfg.out / "report")
    pick = pick_best(df, "host").text()
    return df, table, report, pick


def run_demo(cfg: DemoConfig, say: Step = print, progress=None) -> DemoResult:
    """Run every step; ``say`` prints progress lines (rich markup allowed)."""
    from edgekd.data import generate_synthetic_dataset

    cfg.out.mkdir(parents=True, exist_ok=True)
    result = DemoResult()
    with _timed(result, "synthetic data", say):
        data = cfg.out / "data"
        if not (data / "dataset.yaml").is_file():
            generate_synthetic_dataset(data, num_train=cfg.num_train, num_val=cfg.num_val, size=IMAGE_SIZE, seed=cfg.seed)
        result.paths["data"] = data
    with _timed(result, "teacher training", say):
        result.paths["teacher"] = _train_teacher(cfg, data, say, progress)
    with _timed(result, "students with and without KD", say):
        students = _train_students(cfg, data, result.paths["teacher"], progress)
        result.paths["checkpoints"] = students[0].parent
    with _timed(result, "export", say):
        result.paths["artifacts"] = _export(cfg, data, students, say)
    with _timed(result, "bench on host", say):
        result.paths["bench_results"] = _bench(cfg, data, result.paths["artifacts"], progress)
    with _timed(result, "compare, plots, report", say):
        result.table, result.paths["compare"], result.paths["report"], result.pick = _compare(cfg, result.paths["bench_results"], say)
        result.paths["plots"] = cfg.out / "plots"
    return result
