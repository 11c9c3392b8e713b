"""Compare benchmarked candidates: the table, the Pareto front and pick, and the plots.

Library entry points (the CLI and ``edgekd demo`` call these):
``compare_results(paths_or_records, device=None) -> DataFrame``, ``pick_best(df, profile) -> Pick``,
``make_plots(df, out_dir) -> list[Path]``; the HTML report is ``edgekd.report.write_report``.
The plotting names are imported on first use, so a table-only run does not load matplotlib.
"""
from edgekd.compare.select import Pick, pareto_front, pick_best, pick_per_device
from edgekd.compare.table import Budget, compare_results

__all__ = ["Budget", "Pick", "Plot", "compare_results", "make_plots", "pareto_front", "pick_best", "pick_per_device", "render_plots"]
_PLOTS = ("Plot", "make_plots", "render_plots")


def __getattr__(name: str):
    if name in _PLOTS:
        from edgekd.compare import plots

        return getattr(plots, name)
    raise AttributeError(f"module 'edgekd.compare' has no attribute {name!r}")
