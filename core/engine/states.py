"""The states of a migration and the transitions allowed between them.

One variable holds a migration's state; it changes only through `transition()`, which
checks the old state (QEMU's `migrate_set_state` is the model). The journal's `result`
follows from the final state.

    new → preflight → prepare → [precopy] → checkpoint → transfer → restore → [lazy] → verify
      → commit → committed → cleanup → succeeded | incomplete

    any state before `committed` → rolling-back → rolled-back | in-doubt
    any state                    → interrupted   (the task was cancelled; recovery finishes it)

`committed` is the commit point: from there on the move stands and nothing is rolled back.
`in-doubt` and `interrupted` keep the migration lock; `ferryman recover` finishes them.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    NEW = "new"
    PREFLIGHT = "preflight"
    PREPARE = "prepare"
    PRECOPY = "precopy"
    CHECKPOINT = "checkpoint"
    TRANSFER = "transfer"
    RESTORE = "restore"
    LAZY = "lazy"
    VERIFY = "verify"
    COMMIT = "commit"
    COMMITTED = "committed"
    CLEANUP = "cleanup"
    SUCCEEDED = "succeeded"
    INCOMPLETE = "incomplete"
    ROLLING_BACK = "rolling-back"
    ROLLED_BACK = "rolled-back"
    IN_DOUBT = "in-doubt"
    INTERRUPTED = "interrupted"


S = State
BEFORE_COMMIT = (
    S.NEW,
    S.PREFLIGHT,
    S.PREPARE,
    S.PRECOPY,
    S.CHECKPOINT,
    S.TRANSFER,
    S.RESTORE,
    S.LAZY,
    S.VERIFY,
    S.COMMIT,
)
FINAL = (S.SUCCEEDED, S.INCOMPLETE, S.ROLLED_BACK, S.IN_DOUBT, S.INTERRUPTED)

TRANSITIONS: dict[State, tuple[State, ...]] = {
    S.NEW: (S.PREFLIGHT,),
    S.PREFLIGHT: (S.PREPARE,),
    S.PREPARE: (S.PRECOPY, S.CHECKPOINT),
    S.PRECOPY: (S.CHECKPOINT,),
    S.CHECKPOINT: (S.TRANSFER,),
    S.TRANSFER: (S.RESTORE,),
    S.RESTORE: (S.LAZY, S.VERIFY),
    S.LAZY: (S.VERIFY,),
    S.VERIFY: (S.COMMIT,),
    S.COMMIT: (S.COMMITTED,),
    S.COMMITTED: (S.CLEANUP, S.INCOMPLETE),
    S.CLEANUP: (S.SUCCEEDED, S.INCOMPLETE),
    S.ROLLING_BACK: (S.ROLLED_BACK, S.IN_DOUBT),
}
for _s in BEFORE_COMMIT:
    TRANSITIONS[_s] = (*TRANSITIONS[_s], S.ROLLING_BACK)
for _s in State:
    if _s not in FINAL:
        TRANSITIONS[_s] = (*TRANSITIONS.get(_s, ()), S.INTERRUPTED)

# What the journal says of a migration that ended in each final state.
RESULT = {
    S.SUCCEEDED: "succeeded",
    S.INCOMPLETE: "incomplete",
    S.ROLLED_BACK: "rolled back",
    S.IN_DOUBT: "in doubt",
    S.INTERRUPTED: "running",  # unfinished: `ferryman recover` finishes it
}


class TransitionError(RuntimeError):
    pass


def transition(old: State, new: State) -> State:
    """`new`, if a migration in `old` may go there; else TransitionError."""
    if new not in TRANSITIONS.get(old, ()):
        raise TransitionError(f"a migration cannot go from {old} to {new}")
    return new


def table() -> str:
    """The transitions, one state a line (printed in the README)."""
    return "\n".join(f"{s:13} → {', '.join(TRANSITIONS.get(s, ())) or '(final)'}" for s in State)
