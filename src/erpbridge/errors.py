"""One exception tree for erpbridge.

The engine decides what to do from the class alone:

- :class:`ConfigError` — the configuration is wrong; nothing runs until it is fixed.
- :class:`FatalError` — a run cannot go on (a read-only violation, a schema mismatch).
- :class:`RetriableError` — a passing condition (source down, timeout, lock clash); try again later.
- :class:`DataError` — one record is wrong; it is rejected with its field path and the rest goes on.

Every message names the place (file and line, channel, flow, record, field path) and the cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from erpbridge.pci import redact_card_numbers

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "CredentialNotSet",
    "DataError",
    "DataErrors",
    "ErpbridgeError",
    "FatalError",
    "FlowBusy",
    "FlowDisabled",
    "FlowPaused",
    "LockLost",
    "ReadOnlyViolation",
    "RetriableError",
    "SourceUnavailable",
    "StoreError",
    "StoreUnavailable",
]


class ErpbridgeError(Exception):
    """Base class of every error erpbridge raises on purpose.

    A card number in a message is replaced (PCI DSS): messages end up in rejections, run and
    delivery errors, API answers and logs, and some quote the input that caused them.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_card_numbers(a) if isinstance(a, str) else a for a in args))


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a configuration file, with its place: ``file:line path: message``."""

    file: str
    line: int | None
    path: str
    message: str
    #: A suggestion printed under the problem by ``erpbridge check`` ("did you mean …"); kept
    #: out of the message, so that the ``file:line path: message`` line never changes.
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(ErpbridgeError):
    """The configuration is invalid; carries every problem found, not only the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class FatalError(ErpbridgeError):
    """A run cannot go on and retrying will not help until someone changes something."""


class ReadOnlyViolation(FatalError):
    """A write was attempted through a channel that is read-only; refused before it left us."""


class RetriableError(ErpbridgeError):
    """A passing failure: the same call may succeed later (source down, timeout, lock clash).

    ``retry_after`` carries a target's own hint (HTTP 429/503 ``Retry-After``, in seconds); the
    worker honours it, but never below the flow's ``min_delay_s`` floor.
    """

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SourceUnavailable(RetriableError):
    """A channel could not be reached or read (refused, DNS, timeout, missing folder)."""


class CredentialNotSet(RetriableError):
    """A channel credential left to the hub store (``stored``) has not been set yet."""


class StoreError(ErpbridgeError):
    """The hub store could not be opened or migrated."""


class StoreUnavailable(StoreError):
    """The hub store stayed unreachable or unwritable for the whole retry budget.

    The message names the store (URL without its password), the cause and how long it was
    tried; ``store`` and ``cause`` carry the parts.
    """

    def __init__(self, store: str, cause: str, waited_s: float, attempts: int) -> None:
        self.store, self.cause = store, cause
        self.waited_s, self.attempts = waited_s, attempts
        #: The run it ended, if any, and whether that run could still be marked failed.
        self.run_id: int | None = None
        self.closed = False
        super().__init__(
            f"the hub store {store} is unavailable: {cause} "
            f"(gave up after {waited_s:.0f} s, {attempts} attempt(s))"
        )


class FlowBusy(ErpbridgeError):
    """Another run of the same IN flow holds its run lock; this one did not start."""

    def __init__(self, flow: str, run_id: int, pid: int, host: str, since: str) -> None:
        self.flow, self.run_id, self.pid, self.host, self.since = flow, run_id, pid, host, since
        super().__init__(
            f"flow {flow!r} is already running in run {run_id} "
            f"(pid {pid}, host {host}, since {since})"
        )


class FlowPaused(ErpbridgeError):
    """The flow is paused: it neither runs, takes events nor delivers until it is resumed."""

    def __init__(self, flow: str, by: str, since: str) -> None:
        self.flow, self.by, self.since = flow, by, since
        super().__init__(
            f"flow {flow!r} is paused (by {by} since {since} UTC): resume it with "
            f"`erpbridge flows resume {flow}` or POST /api/v1/flows/{flow}/resume"
        )


class FlowDisabled(FlowPaused):
    """The flow is off in the configuration (``enabled: false``) and was never resumed."""

    def __init__(self, flow: str) -> None:
        self.flow, self.by, self.since = flow, "the configuration", ""
        ErpbridgeError.__init__(self, f"flow {flow!r} is disabled in the configuration")


class LockLost(FatalError):
    """A run's flow lock expired and was taken by another run (its process stalled past the
    lease); the batch in hand was not stored and the run stops."""


class DataError(ErpbridgeError):
    """One record is invalid: rejected with the field path and the reason, the batch goes on."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = redact_card_numbers(path)
        self.reason = redact_card_numbers(reason)
        super().__init__(f"{self.path}: {self.reason}" if path else self.reason)

    @property
    def problems(self) -> tuple[tuple[str, str], ...]:
        """Every failing field of the record as ``(path, reason)``: here the one."""
        return ((self.path, self.reason),)


class DataErrors(DataError):
    """Several fields of one record are invalid: every one with its path and reason.

    ``path`` and ``reason`` are the first problem's (where one place is shown), ``problems``
    all of them, so an operator fixes a record in one go, not one field per attempt.
    """

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        first_path, first_reason = problems[0]
        super().__init__(first_path, first_reason)
        self._all = tuple((redact_card_numbers(p), redact_card_numbers(r)) for p, r in problems)
        if len(problems) > 1:
            more = ", ".join(p or "(record)" for p, _ in self._all[1:])
            self.args = (f"{self}; and {len(problems) - 1} more field(s): {more}",)

    @property
    def problems(self) -> tuple[tuple[str, str], ...]:
        return self._all

    @staticmethod
    def of(problems: Sequence[tuple[str, str]]) -> DataError:
        """One :class:`DataError` for one problem, :class:`DataErrors` for several."""
        if len(problems) == 1:
            return DataError(*problems[0])
        return DataErrors(problems)
