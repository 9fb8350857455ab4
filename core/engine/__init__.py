"""The migration engine: an explicit state machine that yields typed events (core/events.py).

- machine.py   the states, their order, the undo stack (one rollback path per state)
- twin.py      the target container's configuration, from the source's inspect
- checkpoint.py, restore.py, transfer.py, heartbeat.py   the steps' I/O
"""
