"""Figures, their targets, the printed table, docs/benchmarks.md and the chart."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCENARIOS = {
    1: "GET /me: cost of verification",
    2: "GET /notes/{id}: share of authentication",
    3: "Token endpoint throughput",
    4: "Login storm",
    5: "Growth: 1 thousand vs 1 million sessions",
    6: "Revocation latency",
    7: "Timing parity at /token",
    8: "Cold start and memory",
    9: "Authorization code round trip",
}


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p99 of 100 samples is the 99th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


@dataclass
class Target:
    op: str  # ">=", "<=", "<", "between", "check"
    bound: float | tuple[float, float] | None = None
    text: str = ""

    def describe(self, unit: str) -> str:
        if self.text:
            return self.text
        if self.op == "between":
            assert isinstance(self.bound, tuple)
            return f"{_num(self.bound[0], unit)} to {_num(self.bound[1], unit)}"
        assert isinstance(self.bound, int | float)
        symbol = {">=": "≥", "<=": "≤", "<": "<"}[self.op]
        return f"{symbol} {_num(self.bound, unit)}{_suffix(unit)}"

    def met(self, value: float | None) -> bool | None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        if self.op == "between":
            assert isinstance(self.bound, tuple)
            return self.bound[0] <= value <= self.bound[1]
        assert isinstance(self.bound, int | float)
        if self.op == ">=":
            return value >= self.bound
        if self.op == "<=":
            return value <= self.bound
        if self.op == "<":
            return value < self.bound
        raise ValueError(self.op)


def _suffix(unit: str) -> str:
    return {"x": "\u00d7", "ms": " ms", "s": " s", "MiB": " MiB", "/s": "/s", "%": "%"}.get(
        unit, ""
    )


def _num(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}"
    if unit == "/s":
        return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"
    if unit == "ms":
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    if unit == "s":
        return f"{value:.2f}"
    if unit == "MiB":
        return f"{value:.0f}"
    if unit == "%":
        return f"{value:.0f}"
    return f"{value:g}"


@dataclass
class Figure:
    scenario: int
    name: str
    value: float | None
    unit: str
    target: Target | None = None
    met: bool | None = None
    note: str = ""
    check_text: str = ""  # for "check" targets: what was observed

    def value_text(self) -> str:
        if self.check_text:
            return self.check_text
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return "n/a"
        return _num(self.value, self.unit) + _suffix(self.unit)

    def status(self) -> str:
        if self.target is None:
            return ""
        return "met" if self.met else "short"


@dataclass
class Report:
    quick: bool
    figures: list[Figure] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def add(
        self,
        scenario: int,
        name: str,
        value: float | None,
        unit: str,
        target: Target | None = None,
        note: str = "",
    ) -> Figure:
        figure = Figure(scenario, name, value, unit, target, note=note)
        if target is not None:
            figure.met = target.met(value)
        self.figures.append(figure)
        print(f"  {_line(figure)}", flush=True)
        return figure

    def add_check(
        self, scenario: int, name: str, observed: str, met: bool, target_text: str, note: str = ""
    ) -> Figure:
        figure = Figure(
            scenario,
            name,
            None,
            "",
            Target("check", text=target_text),
            met=met,
            note=note,
            check_text=observed,
        )
        self.figures.append(figure)
        print(f"  {_line(figure)}", flush=True)
        return figure

    # -- output ---------------------------------------------------------------------------------

    def table_text(self) -> str:
        lines = []
        for number, title in SCENARIOS.items():
            figures = [f for f in self.figures if f.scenario == number]
            if not figures:
                continue
            lines.append(f"{number}. {title}")
            lines.extend(f"   {_line(f)}" for f in figures)
        targets = [f for f in self.figures if f.target is not None]
        met = sum(1 for f in targets if f.met)
        lines.append(f"targets: {met} of {len(targets)} met")
        return "\n".join(lines)

    def markdown_table(self) -> str:
        rows = ["| # | figure | value | target | |", "|---|---|---|---|---|"]
        for f in self.figures:
            target = f.target.describe(f.unit) if f.target else ""
            status = {"met": "**met**", "short": "**short**", "": ""}[f.status()]
            name = f.name + (f" <br><sub>{f.note}</sub>" if f.note else "")
            rows.append(f"| {f.scenario} | {name} | {f.value_text()} | {target} | {status} |")
        return "\n".join(rows)


def _line(f: Figure) -> str:
    target = f"target {f.target.describe(f.unit)}" if f.target else ""
    status = f.status().upper() if f.status() else ""
    note = f"  ({f.note})" if f.note else ""
    return f"{f.name:<58} {f.value_text():>16}  {target:<24} {status}{note}"


def chart(report: Report, path: Path) -> None:
    """Three panels: /me throughput relative to the bare app; p99 latencies during a login
    storm; token-endpoint throughput."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    raw = report.raw
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))

    ax = axes[0]
    rel = raw.get("scenario1_relative", {})
    if rel:
        names = list(rel)
        values = [rel[n] for n in names]
        colors = [
            "#777777" if n.split()[0] in {"bare", "naive", "introspection"} else "#2a6fb0"
            for n in names
        ]
        bars = ax.barh(names[::-1], values[::-1], color=colors[::-1])
        ax.axvline(0.85, color="#c0392b", linestyle="--", linewidth=1)
        ax.text(0.86, -0.45, "target 0.85", color="#c0392b", fontsize=8)
        for bar, value in zip(bars, values[::-1], strict=True):
            ax.text(value + 0.01, bar.get_y() + bar.get_height() / 2, f"{value:.2f}", va="center")
        ax.set_xlim(0, 1.15)
        ax.set_xlabel("throughput relative to the bare FastAPI app (median of rounds)")
        ax.set_title("1. GET /me, wrk -t1 -c32")

    ax = axes[1]
    storm = raw.get("scenario4_p99", {})
    if storm:
        names = list(storm)
        idle = [storm[n]["idle"] for n in names]
        busy = [storm[n]["storm"] for n in names]
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], idle, width=0.4, label="idle", color="#95a5a6")
        ax.bar([x + 0.2 for x in xs], busy, width=0.4, label="during login storm", color="#e67e22")
        ax.set_xticks(list(xs), names)
        ax.axhline(10, color="#c0392b", linestyle="--", linewidth=1)
        ax.set_yscale("log")
        ax.set_ylabel("p99 latency, ms (log)")
        ax.set_title("4. Auth server p99 during a 16-way login storm")
        ax.legend(fontsize=8)

    ax = axes[2]
    tokens = raw.get("scenario3_rps", {})
    if tokens:
        names = list(tokens)
        values = [tokens[n] for n in names]
        bars = ax.bar(names, values, color="#27ae60")
        ax.axhline(1000, color="#c0392b", linestyle="--", linewidth=1)
        for bar, value in zip(bars, values, strict=True):
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                value,
                f"{value:,.0f}",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_ylabel("successful requests/s (median of rounds)")
        ax.set_title("3. POST /token (PostgreSQL)")
        ax.tick_params(axis="x", labelsize=8)

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
