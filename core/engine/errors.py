"""What a migration step raises: a failure in words for the user, or an abort."""

from __future__ import annotations


class MigrationError(Exception):
    """A step failed; `cause` and `fix` are words for the user."""

    def __init__(
        self, cause: str, fix: str = "", host: str = "", log: str = "", log_name: str = ""
    ) -> None:
        super().__init__(cause)
        self.cause, self.fix, self.host, self.log, self.log_name = cause, fix, host, log, log_name


class Aborted(Exception):
    pass


class Stuck(Exception):
    """A decisive rollback step cannot go on until the admin acts on `host` (its disk is
    full, say): the rollback stops there, in doubt, and changes nothing more; the message
    says what to do before `ferryman recover`."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(message)
        self.host = host
