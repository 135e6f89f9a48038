"""`make fuzz`: the long schema-fuzzing run (issue 9) against both services, in-process.

    .venv/bin/python -m scripts.fuzz [--examples N] [--seed S] [--no-stateful] [--verbose]

Every schemathesis check, every phase (examples, coverage, fuzzing, and the stateful phase where
the documents link operations), N examples per operation. Prints the cases tried, the 5xx
answers and the conformance failures by check, per service and in total; exits 1 if there was
any. The apps, their seeding and their credentials are tests/fuzz/harness.py (shared with the
bounded run in `make test`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import schemathesis

from tests.fuzz.harness import (
    Templates,
    build_auth_target,
    build_resource_target,
    running_lifespans,
)
from tests.fuzz.run import Tally, run
from tests.fuzz.settings import fuzz_config


def report(tally: Tally, *, verbose: bool) -> None:
    print()
    print(tally.summary(every=verbose))
    if verbose:
        print("  statuses by operation:")
        for label, counter in sorted(tally.statuses.items()):
            answers = ", ".join(f"{status} x{n}" for status, n in sorted(counter.items()))
            print(f"    {label} ({tally.elapsed[label]:.1f} s): {answers}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300, help="examples per operation")
    parser.add_argument("--seed", type=int, default=9, help="reproducible runs (issue 9)")
    parser.add_argument("--no-stateful", action="store_true", help="skip the stateful phase")
    parser.add_argument("--verbose", action="store_true", help="every failure, with its request")
    parser.add_argument("--only", choices=["auth", "resource"], help="fuzz one service only")
    args = parser.parse_args(argv)
    # The apps log every refused login and 4xx at INFO/WARNING; the figures are what matter here.
    logging.disable(logging.WARNING)

    config = fuzz_config(
        examples=args.examples, seed=args.seed, stateful=not args.no_stateful, long=True
    )
    total = Tally("both services")
    with tempfile.TemporaryDirectory(prefix="notes-auth-fuzz-") as tmp:
        root = Path(tmp)
        templates = Templates.build(root / "templates")
        with running_lifespans():
            builders: list[Any] = [
                build
                for name, build in (
                    ("auth", build_auth_target),
                    ("resource", build_resource_target),
                )
                if args.only in (None, name)
            ]
            for build in builders:
                target = build(templates, root / build.__name__, config)
                tally = run(target.name, target.schema)
                report(tally, verbose=args.verbose)
                total.add(tally)
    print(
        f"\n== total (schemathesis {schemathesis.__version__}, seed {args.seed}, "
        f"{args.examples} examples per operation and phase, stateful phase "
        f"{'off' if args.no_stateful else 'on'}): {total.cases} cases, "
        f"{total.server_errors} 5xx, {total.conformance_failures} conformance failures"
        + "".join(f"; {check} {n}" for check, n in sorted(total.failures.items()))
    )
    return 0 if total.clean else 1


if __name__ == "__main__":
    sys.exit(main())
