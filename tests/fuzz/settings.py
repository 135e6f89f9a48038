"""The schemathesis configuration of both fuzz runs: every check, seeded, bounded."""

from __future__ import annotations

from typing import Any

import schemathesis

# Every built-in check is on (schemathesis enables them all unless told otherwise), including
# `use_after_free` and `ensure_resource_availability`, which only report anything in the stateful
# phase (they follow a DELETE or a create to the next request on the same resource), and
# `object_level_authorization`, which compares several identities (schemathesis' WFC auth) and
# stays silent with the one each service gets here: the notes API's "another user's note is 404"
# is proved by tests/integration/resource instead.
ALL_CHECKS: dict[str, Any] = {
    "enabled": True,
    "negative_data_rejection": {
        # schemathesis' defaults, plus 413: a body over the cap is refused before it is parsed
        # (contract §7), which is a rejection like any other.
        "expected-statuses": [
            *("400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428"),
            *("429", "5xx"),
        ]
    },
}


def fuzz_config(
    *, examples: int, seed: int, stateful: bool = False, long: bool = False
) -> schemathesis.Config:
    """`examples` per operation and phase; `seed` makes the run reproducible."""
    return schemathesis.Config.from_dict(
        {
            "seed": seed,
            "workers": 1,
            # Every case runs, not just those before an operation's first failure.
            "continue-on-failure": True,
            "suppress-health-check": ["all"],
            "generation": {
                "mode": "all",  # schema-valid and schema-violating requests
                "max-examples": examples,
                # `make test`: the same cases every run; `make fuzz`: random, from `seed`.
                "deterministic": not long,
                "database": "none",  # nothing carried over from earlier runs
            },
            "checks": ALL_CHECKS,
            "operations": [
                {
                    # RFC 6749 §5.2: a `client_id` the server doesn't know, sent without a
                    # secret, is a 400 `invalid_client`, and with HTTP Basic as well a form
                    # `client_id` that isn't the authenticated one (or a second authentication
                    # method) is a 400 `invalid_request`: the fuzzer can't know the clients.
                    # (A refused credential is a 401, which schemathesis expects anyway.)
                    # schemathesis makes the same allowance for the token endpoint (its
                    # `tokenUrl`) by itself.
                    "include-path": ["/revoke", "/introspect"],
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": ["2xx", "400", "401", "403", "404", "429"]
                        }
                    },
                }
            ],
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": stateful},
            },
        }
    )
