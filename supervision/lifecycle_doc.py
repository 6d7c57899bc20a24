"""Regenerate docs/lifecycle.md from the transition table: ``python -m supervision.lifecycle_doc``."""
from __future__ import annotations

from pathlib import Path

from supervision.lifecycle import mermaid

DOC = Path(__file__).resolve().parent.parent / "docs" / "lifecycle.md"

HEADER = """# The case lifecycle

One table, `supervision.lifecycle.TRANSITIONS`, holds every allowed (state, event) -> state.
`apply()` is the only way a case changes state; an event not in the table raises
`IllegalTransition`, and every transition is kept in the case history (who, when in UTC, from, to,
why). Norfolk's profile sends a new request to `manager_review` first (`submit_for_manager`);
the others go straight to the coordinators' queue (`submit`). Agreement starts the clock.
Each stage's deadline comes from the profile's timescales and the nation's working-day calendar
(`supervision.lifecycle.Deadlines`).

This diagram is generated from the table (a test checks it is current):

```mermaid
"""


def render() -> str:
    return HEADER + mermaid() + "\n```\n"


if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC}")
