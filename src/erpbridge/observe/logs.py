"""Structured logs (structlog): JSON lines or a console format, secrets and card numbers out.

Every log line of a serving process (``erpbridge run``, ``api``, ``worker``) goes through one
chain: the hub's own events (:mod:`erpbridge.observe.events`) and the plain ``logging`` lines of
the hub and its libraries (uvicorn, SQLAlchemy) alike. Before rendering, :class:`Redactor` replaces
each known secret value (channel credentials, the store's password, notifier secrets, the secret
key) with ``[secret]`` and each payment card number with the scanner's marker, in every string of
the event, the traceback included.

Processes that never call :func:`configure_logging` (``erpbridge sync`` and the other commands)
keep their console output as it was: the events logger then has a null handler.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal, TextIO, get_args

import structlog

from erpbridge.pci import redact_card_numbers

__all__ = [
    "EVENTS_LOGGER",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "LogFormat",
    "Redactor",
    "add_secrets",
    "configure_logging",
    "redactor",
]

LogFormat = Literal["json", "console"]
LOG_FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)
LOG_LEVELS = ("debug", "info", "warning", "error")
#: The stdlib logger the hub's events are written to.
EVENTS_LOGGER = "erpbridge.events"
SECRET_MARK = "[secret]"  # noqa: S105 - the marker, not a secret
#: Shorter values are not redacted (``"1"`` would blank every digit of every line).
_MIN_SECRET_LEN = 4


class Redactor:
    """A structlog processor: known secret values and card numbers out of every string."""

    def __init__(self) -> None:
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def add(self, values: Iterable[str | None]) -> None:
        """Remember secret ``values`` (thread-safe; a reload adds the new ones)."""
        fresh = {v for v in values if v and len(v) >= _MIN_SECRET_LEN}
        with self._lock:
            self._secrets = self._secrets | fresh

    def text(self, value: str) -> str:
        """``value`` with every known secret and card number taken out."""
        # Longest first: a secret that contains another is replaced whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in value:
                value = value.replace(secret, SECRET_MARK)
        return redact_card_numbers(value)

    def value(self, value: Any) -> Any:
        """Any JSON-like ``value`` with its strings cleaned (dicts, lists, tuples walked)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, item in list(event.items()):
            if isinstance(item, str | dict | list | tuple):
                event[key] = self.value(item)
            elif isinstance(item, BaseException):
                event[key] = self.text(f"{type(item).__name__}: {item}")
        return event


#: The process's redactor (one set of known secrets per process).
redactor = Redactor()


def add_secrets(values: Iterable[str | None]) -> None:
    """Never log these values (a loaded configuration's credentials, a notifier's secret)."""
    redactor.add(values)


def _format_exception(
    logger: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Render ``exc_info`` to text here, so that the redactor sees the traceback."""
    info = event.pop("exc_info", None)
    if info:
        if info is True:
            info = sys.exc_info()
        elif isinstance(info, BaseException):
            info = (type(info), info, info.__traceback__)
        if info[0] is not None:
            event["exception"] = logging.Formatter().formatException(info)
    return event


def _shared_chain() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _format_exception,
        redactor,
    ]


def _setup_structlog() -> None:
    """Route structlog through the stdlib ``logging`` module (idempotent, import time)."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_chain(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    events = logging.getLogger(EVENTS_LOGGER)
    if not events.handlers:
        events.addHandler(logging.NullHandler())  # no lastResort lines in the plain commands
    events.setLevel(logging.INFO)


#: Keys the console format leaves out (JSON keeps them): the service manager stamps each line.
_CONSOLE_HIDDEN = ("timestamp", "level", "logger", "exception")


def _console(logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
    """One readable line: a plain log line's message as it is; an event's name, then its
    fields as ``key=value``; a traceback (already redacted) below."""
    message = str(event.get("event", ""))
    fields = [
        f"{key}={_shown(value)}"
        for key, value in event.items()
        if key != "event" and key not in _CONSOLE_HIDDEN
    ]
    line = " ".join([message, *fields])
    trace = event.get("exception")
    return f"{line}\n{trace}" if trace else line


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text) if any(c.isspace() for c in text) or not text else text


def configure_logging(
    fmt: LogFormat = "console", level: str = "info", stream: TextIO | None = None
) -> None:
    """Send every log line of this process to ``stream`` (stderr) as ``fmt``, from ``level`` on.

    ``fmt`` and ``level`` default to ``ERPBRIDGE_LOG_FORMAT`` and ``ERPBRIDGE_LOG_LEVEL`` when the
    command line did not set them (the CLI passes its options here).
    """
    renderer: Any
    renderer = structlog.processors.JSONRenderer(sort_keys=False) if fmt == "json" else _console
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_chain(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_erpbridge", False):
            root.removeHandler(old)
    handler._erpbridge = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    logging.getLogger(EVENTS_LOGGER).setLevel(logging.NOTSET)
    add_secrets([os.environ.get("ERPBRIDGE_SECRET_KEY")])


_setup_structlog()
