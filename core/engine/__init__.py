"""The migration engine: an explicit state machine that yields typed events (core/events.py).

- machine.py   the phase order, the events and the journal (states.py: the states)
- preflight_phase.py, prepare_phase.py, precopy_loop.py, arming.py, freeze.py,
  lazy_phase.py, finish.py   the phases, as functions of the migration (context.py)
- rollback.py  failure, rollback and the steps `ferryman recover` shares (undo.py: the stack)
- host_ops.py  host operations: commands, logs, where a container runs, the lock
- strategy.py, planner.py   the strategies and the pre-copy planner
- twin.py      the target container's configuration, from the source's inspect
- checkpoint.py, restore.py, transfer.py, heartbeat.py   the steps' I/O
"""
