"""Secrets are never written into the file: credentials and URL passwords are ``${ENV}`` refs."""

from __future__ import annotations

import re
from typing import Any

from erpbridge.config.problems import Loc, Problems

__all__ = ["STORED", "check_plain_secrets"]

#: A credential value meaning "set through the API, kept encrypted in the hub store".
STORED = "stored"
_WHOLE_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$")
_URL_PASSWORD = re.compile(r"^[a-z0-9+]+://[^:/@\s]+:([^@\s]+)@", re.IGNORECASE)


def check_plain_secrets(data: Any, problems: Problems) -> None:
    """Refuse literal credentials and URL passwords in the raw (not yet expanded) data."""
    # Runs before validation, so any value may have any shape here.
    hub = data.get("hub") if isinstance(data, dict) else None
    if isinstance(hub, dict):
        _check_url(hub.get("database_url"), ("hub", "database_url"), problems)
    _check_notifiers(data.get("alerts") if isinstance(data, dict) else None, problems)
    channels = data.get("channels") if isinstance(data, dict) else None
    if not isinstance(channels, dict):
        return
    for name, channel in channels.items():
        if not isinstance(channel, dict):
            continue
        credentials, options = channel.get("credentials"), channel.get("options")
        for key, value in credentials.items() if isinstance(credentials, dict) else ():
            if value == STORED:
                continue  # kept encrypted in the hub store, set through the API
            if not (isinstance(value, str) and _WHOLE_REF.match(value)):
                problems.add(
                    ("channels", name, "credentials", key),
                    "write secrets as ${ENV_VAR} references (or `stored`), never as literal values",
                )
        for key, value in options.items() if isinstance(options, dict) else ():
            _check_url(value, ("channels", name, "options", key), problems)


def _check_url(value: Any, loc: Loc, problems: Problems) -> None:
    match = _URL_PASSWORD.match(value) if isinstance(value, str) else None
    if match and not _WHOLE_REF.match(match.group(1)):
        problems.add(loc, "the URL holds a literal password; write it as ${ENV_VAR}")


#: The secret settings of a notifier, by kind (``alerts.notifiers.<name>.<kind>.<setting>``).
_NOTIFIER_SECRETS = {"webhook": ("secret",), "email": ("password",)}


def _check_notifiers(alerts: Any, problems: Problems) -> None:
    notifiers = alerts.get("notifiers") if isinstance(alerts, dict) else None
    for name, notifier in notifiers.items() if isinstance(notifiers, dict) else ():
        for kind, settings in _NOTIFIER_SECRETS.items():
            given = notifier.get(kind) if isinstance(notifier, dict) else None
            for setting in settings:
                value = given.get(setting) if isinstance(given, dict) else None
                if value is not None and not (isinstance(value, str) and _WHOLE_REF.match(value)):
                    problems.add(
                        ("alerts", "notifiers", name, kind, setting),
                        "write secrets as ${ENV_VAR} references, never as literal values",
                    )
