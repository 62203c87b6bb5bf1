"""What Route53 committed during a chaos case, read back from the sandbox's change history.

Every case judges the same record: the splits the zone held change by change (none outside the
declared steps and 100/0), and the state generation each deployment change wrote (none twice).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def committed_splits(
    changes: Sequence[dict[str, Any]], report_split: Callable[..., bool], steps: Sequence[int]
) -> list[dict[str, int]]:
    """Every split Route53 held, change by change (the seed's included), each reported to the results."""
    splits = [change["weights"] for change in changes]
    stray = [split for split in splits if report_split(split, list(steps), candidate=None)]
    assert not stray, f"splits outside the declared steps {list(steps)} and 100/0: {stray}"
    return splits


def distinct(splits: list[dict[str, int]]) -> list[dict[str, int]]:
    """The splits in order, repeats (the state-only changes between two moves) folded."""
    return [s for i, s in enumerate(splits) if i == 0 or s != splits[i - 1]]


def generations(changes: Sequence[dict[str, Any]]) -> list[int]:
    """The state generation each deployment change wrote, from the change comments, in order."""
    found = []
    for change in changes:
        comment = change["comment"] or ""
        if comment.startswith("bluegreen ") and " gen " in comment and "landed, answer lost" not in comment:
            found.append(int(comment.split(" gen ", 1)[1].split(":", 1)[0]))
    return found
