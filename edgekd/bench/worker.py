"""``python -m edgekd.bench.worker [--spec FILE] [--timeout S]``: measure one cell in this fresh process.

The spec (a ``CellSpec`` as JSON, on stdin unless ``--spec`` names a file) says which artifact, runtime options and
measurement budgets; the result comes back on stdout as one line ``EDGEKD_RESULT {json}`` (anything
else a runtime prints on stdout is ignored by the runner), progress as ``EDGEKD_STAGE name`` lines
on stderr. The same module runs locally and on a remote device over ssh, so it imports nothing
heavy up front (no PyTorch unless accuracy is asked for) and needs only the runtime, numpy,
OpenCV and the edgekd sources. A cell that cannot run gives ``status: unavailable``; one that
breaks gives ``failed`` with the error and whatever was measured before it broke.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import traceback
from typing import Any

from edgekd.backends.base import BackendUnavailable
from edgekd.bench.cellspec import CellSpec
from edgekd.core.host import host_facts, load_average
from edgekd.errors import EdgekdError
from edgekd.results.schema import clean_json

RESULT_MARKER = "EDGEKD_RESULT "


def run_spec(spec: CellSpec) -> dict[str, Any]:
    """Measure what ``spec`` asks; never raises for a cell's own failure (it is reported in the result)."""
    from edgekd.bench.cell import measure_accuracy_only, measure_cell

    out: dict[str, Any] = {"host": host_facts(), "status": "ok", "error": None}
    try:
        if spec.mode == "accuracy":
            measure_accuracy_only(spec, out)
        else:
            measure_cell(spec, out)
    except BackendUnavailable as err:
        out.update(status="unavailable", error=str(err))
    except Exception as err:  # the row records the failure and the run goes on
        tail = "".join(traceback.format_exception(err)[-3:]).strip()
        out.update(status="failed", error=f"{type(err).__name__}: {err}\n{tail}")
    out["host"]["load_avg_end"] = load_average()
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m edgekd.bench.worker", description=__doc__.splitlines()[0])
    p.add_argument("--spec", help="spec JSON file (default: read the spec from stdin)")
    p.add_argument("--timeout", type=int, default=0,
                   help="kill this process after S seconds (SIGALRM), so a remote worker never outlives its runner")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.timeout > 0 and hasattr(signal, "alarm"):
        signal.alarm(args.timeout)
    text = open(args.spec, encoding="utf-8").read() if args.spec else sys.stdin.read()
    try:
        spec = CellSpec.from_json(text)
    except EdgekdError as err:  # a runner/worker mismatch: a failed row that says which key
        result = {"host": host_facts(), "status": "failed", "error": str(err)}
    else:
        result = run_spec(spec)
    sys.stdout.write(RESULT_MARKER + json.dumps(clean_json(result), allow_nan=False) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
