"""What the doctor reports: findings (one problem each, with why it matters and the fix) and the report.

A finding is data, not text: ``code`` is stable so scripts and export can act on it, ``details``
carries the numbers behind it (counts per tensor, op names, megabytes), and ``device`` says which
device profile it concerns (``None`` when it is about the model whatever the device).
Severities: ``error`` = the deployment will fail or miss its budget as it stands (the CLI exits 1),
``warning`` = it will run but slower or less accurately than it could, ``info`` = worth knowing.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edgekd.errors import EdgekdError

SEVERITIES = ("info", "warning", "error")


@dataclass(frozen=True)
class Finding:
    severity: str
    code: str
    what: str
    why_it_matters: str
    fix: str
    device: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise EdgekdError(f"finding {self.code!r} has severity {self.severity!r}; use one of {', '.join(SEVERITIES)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DoctorReport:
    """Everything ``edgekd doctor`` found about one checkpoint or artifact on the given devices."""

    target: str
    kind: str  # "checkpoint" | "artifact"
    devices: list[str]
    facts: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    fix: dict[str, Any] | None = None

    def add(self, findings: list[Finding]) -> None:
        self.findings.extend(findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def exit_code(self) -> int:
        """0 when no finding is an error, 1 otherwise (what the CLI returns)."""
        return 1 if self.errors else 0

    def sorted_findings(self) -> list[Finding]:
        """Errors first, then warnings, then info; the order of discovery within a severity."""
        rank = {s: i for i, s in enumerate(reversed(SEVERITIES))}
        return sorted(self.findings, key=lambda f: rank[f.severity])

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target, "kind": self.kind, "devices": list(self.devices), "facts": self.facts,
            "summary": {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES},
            "exit_code": self.exit_code,
            "findings": [f.to_dict() for f in self.sorted_findings()], "fix": self.fix,
        }
