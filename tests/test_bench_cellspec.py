"""The bench cell spec: typed, JSON across the process boundary, unknown or mistyped keys refused."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from edgekd.bench.cellspec import AccuracySpec, CellSpec, E2ESpec, PacedSpec, SensorSpec, SustainedSpec
from edgekd.bench.plan import Cell
from edgekd.bench.process import LocalTarget
from edgekd.bench.runner import BenchOptions, build_spec
from edgekd.core.timing import LoopPolicy, WarmupPolicy
from edgekd.errors import EdgekdError


def full_spec() -> CellSpec:
    return CellSpec(artifact_dir="/a/b", backend="onnxruntime", runtime_options={"threads": 2, "providers": ["CPU"]},
                    input_size=(64, 96), camera_hw=(360, 480), timing=LoopPolicy(duration_s=0.5, min_iters=7),
                    warmup=WarmupPolicy(window=4, max_seconds=1.5), e2e=E2ESpec(0.3), paced=PacedSpec(30.0, 33.3, 2.0),
                    throughput_s=1.0, sustained=SustainedSpec(60.0, 10.0), sensors=SensorSpec(rapl=True, thermal_zones=True),
                    accuracy=AccuracySpec("/data/camvid", "val", 5))


def test_round_trip_through_json_keeps_every_field() -> None:
    spec = full_spec()
    again = CellSpec.from_json(spec.to_json())
    assert again == spec
    assert again.input_size == (64, 96) and isinstance(again.timing, LoopPolicy) and again.accuracy.limit == 5
    assert json.loads(spec.to_json())["paced"] == {"target_fps": 30.0, "deadline_ms": 33.3, "duration_s": 2.0}


def test_missing_keys_take_the_defaults() -> None:
    spec = CellSpec.from_json('{"artifact_dir": "/x"}')
    assert spec.mode == "cell" and spec.runtime_options == {} and spec.timing == LoopPolicy()
    assert spec.e2e is None and spec.accuracy is None and spec.throughput_s == 0.0
    assert spec.sensors == SensorSpec(thermal_zones=False)  # a spec without sensors reads none


@pytest.mark.parametrize("data, message", [
    ({"artifact_dir": "/x", "artifact": "/y"}, "unknown key 'artifact'"),
    ({"artifact_dir": "/x", "timing": {"min_iter": 5}}, r"'timing': unknown key 'min_iter'.*Did you mean 'min_iters'"),
    ({"artifact_dir": "/x", "throughput_s": "5"}, "'throughput_s' must be float, got str"),
    ({"artifact_dir": "/x", "timing": {"min_iters": 2.5}}, "'min_iters' must be int"),
    ({"artifact_dir": "/x", "sensors": {"rapl": 1}}, "'rapl' must be bool"),
    ({"artifact_dir": "/x", "input_size": [64]}, "'input_size' must be a list of 2 ints"),
    ({"artifact_dir": "/x", "e2e": 3}, "'e2e': expected an object"),
    ({"backend": "torch"}, "missing key 'artifact_dir'"),
    ({"artifact_dir": "/x", "mode": "timing"}, "mode 'timing' is not one of cell, accuracy"),
    ({"artifact_dir": "/x", "mode": "accuracy"}, "mode 'accuracy' needs an 'accuracy' block"),
])
def test_bad_specs_are_refused_naming_the_key(data, message) -> None:
    with pytest.raises(EdgekdError, match=message):
        CellSpec.from_json(json.dumps(data))


def test_not_json_is_one_line_error() -> None:
    with pytest.raises(EdgekdError, match="cell spec: not JSON"):
        CellSpec.from_json("{artifact_dir")


def test_worker_answers_a_bad_spec_with_a_failed_row(monkeypatch, capsys) -> None:
    from edgekd.bench import worker

    monkeypatch.setattr(sys, "stdin", io.StringIO('{"artifact_dir": "/x", "warm_up": {}}'))
    assert worker.main([]) == 0
    line = capsys.readouterr().out.strip()
    row = json.loads(line[len(worker.RESULT_MARKER):])
    assert row["status"] == "failed" and "unknown key 'warm_up'" in row["error"]


def test_build_spec_serialises_the_profile_and_options(tmp_path: Path) -> None:
    from edgekd.profiles import load_profile

    profile = load_profile("host")
    cell = Cell(artifact_dir=tmp_path, backend=profile.backend, precision="fp32", input_size=(64, 96), artifact_id="a" * 64,
                checkpoint_sha256=None, manifest={})
    opts = BenchOptions(duration_s=0.5, min_iters=3, e2e_s=0, paced_s=1.0, data=tmp_path)
    spec = build_spec(cell, profile, opts, LocalTarget())
    assert CellSpec.from_json(spec.to_json()) == spec
    assert spec.e2e is None and spec.paced.deadline_ms == pytest.approx(1000.0 / profile.real_time.target_fps)
    assert spec.timing.hard_limit_s == 120.0 and spec.accuracy.data == str(tmp_path.resolve())
