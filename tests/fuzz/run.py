"""Runs schemathesis' engine (every phase, every check: what its CLI runs) on a loaded schema and
tallies what it found: cases tried, 5xx answers, conformance failures by check.

Used by tests/fuzz (one engine run per operation) and by `make fuzz` (scripts/fuzz.py).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Any

from schemathesis.engine import events, from_schema


@dataclass
class Tally:
    """What one run found. A failure is counted once per operation and kind, as the CLI does."""

    name: str
    cases: int = 0
    server_errors: int = 0
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    details: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    statuses: dict[str, collections.Counter[int]] = field(default_factory=dict)
    elapsed: collections.defaultdict[str, float] = field(
        default_factory=lambda: collections.defaultdict(float)
    )
    seconds: float = 0.0

    @property
    def conformance_failures(self) -> int:
        return sum(self.failures.values())

    @property
    def clean(self) -> bool:
        return not (self.server_errors or self.failures or self.errors)

    def add(self, other: Tally) -> None:
        self.cases += other.cases
        self.server_errors += other.server_errors
        self.failures.update(other.failures)
        for check, lines in other.details.items():
            self.details.setdefault(check, []).extend(lines)
        self.errors += other.errors
        for label, counter in other.statuses.items():
            self.statuses.setdefault(label, collections.Counter()).update(counter)
        for label, seconds in other.elapsed.items():
            self.elapsed[label] += seconds
        self.seconds += other.seconds

    def summary(self, *, every: bool = False) -> str:
        lines = [
            f"{self.name}: {self.cases} cases in {self.seconds:.1f} s, "
            f"{self.server_errors} 5xx, {self.conformance_failures} conformance failures"
        ]
        for check, count in sorted(self.failures.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"  {check}: {count}")
            lines += [f"    - {line}" for line in self.details[check][: None if every else 5]]
        lines += [f"  error: {error}" for error in self.errors]
        return "\n".join(lines)


def run(name: str, schema: Any) -> Tally:
    tally = Tally(name)
    started = time.monotonic()
    seen: set[tuple[str, str, Any]] = set()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _record(tally, event.recorder, seen)
            tally.elapsed[event.recorder.label] += event.elapsed_time
        elif isinstance(event, events.NonFatalError):
            tally.errors.append(f"{event.label}: {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            tally.errors.append(f"fatal: {event.exception!r}")
    tally.seconds = time.monotonic() - started
    return tally


def _record(tally: Tally, recorder: Any, seen: set[tuple[str, str, Any]]) -> None:
    tally.cases += len(recorder.cases)
    statuses = tally.statuses.setdefault(recorder.label, collections.Counter())
    for interaction in recorder.interactions.values():
        if interaction.response is None:
            continue
        statuses[interaction.response.status_code] += 1
        if interaction.response.status_code >= 500:
            tally.server_errors += 1
    for case_id, checks in recorder.checks.items():
        for check in checks:
            if check.failure_info is None:
                continue
            failure = check.failure_info.failure
            key = (recorder.label, check.name, failure)
            if key in seen:
                continue
            seen.add(key)
            tally.failures[check.name] += 1
            line = f"{recorder.label}: {failure.title}: {failure.message.splitlines()[0]}"
            interaction = recorder.interactions.get(case_id)
            if interaction is not None and interaction.response is not None:
                body = (interaction.request.body or b"")[:200]
                line += (
                    f" [{interaction.request.method} {interaction.request.uri} {body!r}"
                    f" -> {interaction.response.status_code}]"
                )
            tally.details.setdefault(check.name, []).append(line)


__all__ = ["Tally", "run"]
