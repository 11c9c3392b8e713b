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


@dataclass(frozen=True)
class StudentRecipe:
    """How the demo's students are trained (docs/distillation.md, "The demo's recipe", says how it was
    chosen; ``tools/demo_kd_check.py`` re-checks a recipe over several seeds).

    ``supervised`` terms are shared by the KD student and its no-KD twin; ``kd`` terms (those that
    need the teacher) are the KD student's only.
    """

    supervised: tuple[str, ...] = ("ce",)
    kd: tuple[str, ...] = ("dist(tau=1):1",)  # DIST; kd:1+cwd:2 at τ 4 and kd:1 at τ 1 lost to their twins on some seed
    temperature: float = 1.0
    teacher_tta: str | None = "flip"  # flip-averaged teacher logits, cached once
    class_weights: str | None = None
    lr: float = 0.05


@dataclass
class DemoConfig:
    out: Path = Path("demo_out")
    num_train: int = 160
    num_val: int = 32
    teacher_epochs: int = 20  # at 5 epochs the teacher (24-28 % val mIoU) is no better than the LR-ASPP student
    student_epochs: int = 3  # 6 epochs close the students' gap to the teacher and KD's gain with it
    # Each student pair is trained with seeds seed, seed+1, …: one 60-step run's Δ swings by several points with
    # nothing but the thread count changed (LR-ASPP seed 0: −1.76 on 2 threads, +5.22 on 1), so the table
    # reports every seed's Δ and their mean. The first seed's students go on to export and bench.
    student_seeds: int = 3
    batch_size: int = 8
    bench_seconds: float = 1.0
    seed: int = 0
    coreml: str = "auto"  # auto | on | off
    recipe: StudentRecipe = field(default_factory=StudentRecipe)


@dataclass
class DemoResult:
    paths: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    pick: str = ""
    table: object = None  # the comparison DataFrame
    kd_pairs: list["KDPair"] = field(default_factory=list)


HELDOUT_SPLIT = "val"  # synthetic images drawn from their own random stream; no training step ever sees them


@dataclass(frozen=True)
class KDPair:
    """A KD student and its no-KD twin (same arch, seed, schedule, augmentation), scored in PyTorch
    FP32 on every image of the held-out split at the end of training."""

    student: str
    no_kd_miou: float
    kd_miou: float
    images: int
    seed: int | None = None

    @property
    def delta_points(self) -> float:
        return 100.0 * (self.kd_miou - self.no_kd_miou)


@dataclass(frozen=True)
class KDSummary:
    """One student's pairs over the seeds: a single short run's Δ is mostly seed noise, their mean is the verdict."""

    student: str
    pairs: tuple[KDPair, ...]

    @property
    def no_kd_mean(self) -> float:
        return sum(p.no_kd_miou for p in self.pairs) / len(self.pairs)

    @property
    def kd_mean(self) -> float:
        return sum(p.kd_miou for p in self.pairs) / len(self.pairs)

    @property
    def mean_delta_points(self) -> float:
        return 100.0 * (self.kd_mean - self.no_kd_mean)

    @property
    def wins(self) -> int:
        return sum(p.kd_miou > p.no_kd_miou for p in self.pairs)

    def per_seed(self, digits: int = 2, sep: str = " / ") -> str:
        return sep.join(f"{p.delta_points:+.{digits}f}" for p in self.pairs)

    def seeds(self) -> str:
        return " / ".join("?" if p.seed is None else str(p.seed) for p in self.pairs)


def kd_pairs(checkpoints: list[Path]) -> list[KDPair]:
    """Pair ``ARCH-baseline`` with ``ARCH-kd`` checkpoints of the same folder (one folder per seed), in the order given."""
    from edgekd.checkpoint import read_meta

    by_key = {(p.parent, p.stem): p for p in checkpoints}
    pairs = []
    for (folder, stem), path in by_key.items():
        if not stem.endswith("-kd") or (folder, f"{stem[:-3]}-baseline") not in by_key:
            continue
        kd_meta = read_meta(path)
        kd, base = kd_meta.metrics, read_meta(by_key[folder, f"{stem[:-3]}-baseline"]).metrics
        if kd.get("images") != base.get("images"):
            raise EdgekdError(f"{stem} was scored on {kd.get('images')} images, its twin on {base.get('images')}; rerun the demo in a new --out")
        pairs.append(KDPair(stem[:-3], float(base["miou"]), float(kd["miou"]), int(kd["images"]), kd_meta.trained_with.get("seed")))
    return pairs


def kd_summaries(pairs: list[KDPair]) -> list[KDSummary]:
    """Group the pairs by student (first-seen order)."""
    by_student: dict[str, list[KDPair]] = {}
    for p in pairs:
        by_student.setdefault(p.student, []).append(p)
    return [KDSummary(student, tuple(group)) for student, group in by_student.items()]


def kd_pairs_title(pairs: list[KDPair], split: str = HELDOUT_SPLIT) -> str:
    images = pairs[0].images if pairs else 0
    seeds = len(kd_summaries(pairs)[0].pairs) if pairs else 0
    return (f"KD students vs their no-KD twins, mIoU (%) on the held-out synthetic split '{split}' ({images} images no "
            f"training step saw; PyTorch FP32; {seeds} seed(s), each pair sharing seed, schedule and augmentation; "
            "no KD / KD = mean over the seeds)")


def kd_pairs_markdown(pairs: list[KDPair], split: str = HELDOUT_SPLIT) -> str:
    """The KD-vs-no-KD table, naming the split it was measured on."""
    lines = [kd_pairs_title(pairs, split), "",
             "| student | no KD | KD | Δ mean (points) | Δ per seed | seeds | KD ahead |", "|---|---:|---:|---:|---|---|---|"]
    lines += [f"| {s.student} | {100 * s.no_kd_mean:.2f} | {100 * s.kd_mean:.2f} | {s.mean_delta_points:+.2f} | {s.per_seed()} "
              f"| {s.seeds()} | {s.wins} of {len(s.pairs)} |" for s in kd_summaries(pairs)]
    return "\n".join(lines) + "\n"


Step = Callable[[str], None]


DEMO_INT8_BUDGET = 2.0  # mIoU points


def _timed(result: DemoResult, name: str, say: Step):
    class _T:
        def __enter__(self):
            say(f"{name} …")
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


def student_seeds(cfg: DemoConfig) -> list[int]:
    return [cfg.seed + i for i in range(cfg.student_seeds)]


def student_configs(cfg: DemoConfig, data: Path, teacher: Path, seed: int | None = None) -> list[tuple["DistillConfig", "DistillConfig"]]:
    """(no-KD twin, KD student) per student arch, for one student seed (default ``cfg.seed``).

    The first seed's checkpoints are ``checkpoints/ARCH-{baseline,kd}`` (those go on to export and
    bench); another seed's are under ``checkpoints/seedN/``.

    The twin runs through the same trainer with the same seed, schedule, augmentation and
    supervised terms; it only lacks the teacher terms (``recipe.kd``), so the pair's difference is
    what distillation adds.
    """
    from edgekd.training.distill import DistillConfig

    r = cfg.recipe
    seed = cfg.seed if seed is None else seed
    common = dict(data=str(data), epochs=cfg.student_epochs, batch_size=cfg.batch_size, lr=r.lr, crop_size=IMAGE_SIZE,
                  scale_range=(0.75, 1.5), seed=seed, resume=True, class_weights=r.class_weights)
    folder = cfg.out / "checkpoints" / ("" if seed == cfg.seed else f"seed{seed}")
    pairs = []
    for arch in STUDENTS:
        base = folder / f"{arch}-baseline.safetensors"
        kd = folder / f"{arch}-kd.safetensors"
        pairs.append((
            DistillConfig(arch=arch, out=str(base), losses=list(r.supervised), **common),
            DistillConfig(arch=arch, out=str(kd), teachers=[str(teacher)], losses=[*r.supervised, *r.kd],
                          temperature=r.temperature, teacher_tta=r.teacher_tta, cache_dir=str(cfg.out / "teacher_cache"), **common),
        ))
    return pairs


def _train_students(cfg: DemoConfig, data: Path, teacher: Path, progress) -> list[Path]:
    """Every seed's pairs, the first seed's first (they are the ones exported and benched)."""
    from edgekd.training.distill import distill

    outs = []
    for seed in student_seeds(cfg):
        for twin, student in student_configs(cfg, data, teacher, seed):
            for run in (twin, student):
                distill(run, progress=progress)
                outs.append(Path(run.out))
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


def train_demo_models(cfg: DemoConfig, result: DemoResult, say: Step = print, progress=None) -> list[Path]:
    """Data, teacher and the student pairs of every seed (the part of the demo a recipe changes); fills
    ``result`` and returns the first seed's students, the ones exported and benched."""
    from edgekd.data import generate_synthetic_dataset

    if cfg.student_seeds < 1:
        raise EdgekdError(f"--student-seeds {cfg.student_seeds}: give at least 1 (1 for a quick run, {DemoConfig.student_seeds} by default)")
    cfg.out.mkdir(parents=True, exist_ok=True)
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
        result.kd_pairs = kd_pairs(students)
        result.paths["kd_vs_no_kd"] = cfg.out / "kd_vs_no_kd.md"
        result.paths["kd_vs_no_kd"].write_text(kd_pairs_markdown(result.kd_pairs))
    return [p for p in students if p.parent == result.paths["checkpoints"]]


def run_demo(cfg: DemoConfig, say: Step = print, progress=None) -> DemoResult:
    """Run every step; ``say`` prints progress lines (rich markup allowed)."""
    result = DemoResult()
    students = train_demo_models(cfg, result, say, progress)
    data = result.paths["data"]
    with _timed(result, "export", say):
        result.paths["artifacts"] = _export(cfg, data, students, say)
    with _timed(result, "bench on host", say):
        result.paths["bench_results"] = _bench(cfg, data, result.paths["artifacts"], progress)
    with _timed(result, "compare, plots, report", say):
        result.table, result.paths["compare"], result.paths["report"], result.pick = _compare(cfg, result.paths["bench_results"], say)
        result.paths["plots"] = cfg.out / "plots"
    return result
