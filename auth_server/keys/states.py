"""A signing key's lifecycle, and the only transitions it may make.

    next ──▶ active ──▶ retiring ──▶ retired
                 └──────(emergency)──────▲

*next* is published in the JWKS and signs nothing yet; *active* signs; *retiring* is published
until every token it signed has expired; *retired* is neither published nor used.
"""

from __future__ import annotations

from enum import StrEnum


class KeyState(StrEnum):
    NEXT = "next"
    ACTIVE = "active"
    RETIRING = "retiring"
    RETIRED = "retired"


TRANSITIONS: dict[KeyState, frozenset[KeyState]] = {
    KeyState.NEXT: frozenset({KeyState.ACTIVE}),
    KeyState.ACTIVE: frozenset({KeyState.RETIRING, KeyState.RETIRED}),
    KeyState.RETIRING: frozenset({KeyState.RETIRED}),
    KeyState.RETIRED: frozenset(),
}

# Published in the JWKS (while `publish_until` has not passed).
PUBLISHED = frozenset({KeyState.NEXT, KeyState.ACTIVE, KeyState.RETIRING})


class IllegalTransition(ValueError):
    pass


def check_transition(current: KeyState, target: KeyState) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"a {current} key can't become {target}")


__all__ = ["PUBLISHED", "TRANSITIONS", "IllegalTransition", "KeyState", "check_transition"]
