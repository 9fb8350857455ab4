"""Errors from workers, reported in one place with the host and the operation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from textual.worker import Worker


class OperationError(Exception):
    """An operation against a host failed; `__cause__` holds the original error."""

    def __init__(self, operation: str, host: str, cause: BaseException) -> None:
        self.operation = operation
        self.host = host
        self.cause = cause
        super().__init__(f"{operation} on {host}: {cause}" if host else f"{operation}: {cause}")


@contextmanager
def operation(name: str, host: str = "") -> Iterator[None]:
    """Wrap I/O in a worker so a failure names what was being done, and where."""
    try:
        yield
    except OperationError:
        raise
    except Exception as e:  # noqa: BLE001 - every failure is reported, none is swallowed
        raise OperationError(name, host, e) from e


def describe(worker: Worker) -> tuple[str, str, str]:
    """(operation, host, message) for a worker that ended in error."""
    err = worker.error
    if isinstance(err, OperationError):
        cause = err.cause
        msg = str(cause) or type(cause).__name__
        return err.operation, err.host, msg
    msg = (str(err) or type(err).__name__) if err else "unknown error"
    return worker.name.replace("_", " ").strip(), "", msg
