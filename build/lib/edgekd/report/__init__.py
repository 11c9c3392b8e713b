"""Reports of benchmark results: a self-contained static HTML page (``write_report``)."""
from edgekd.report.html import REPORT_NAME, build_html, write_report

__all__ = ["REPORT_NAME", "build_html", "write_report"]
