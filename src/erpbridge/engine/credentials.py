"""Channel credentials kept in the hub store instead of the environment.

A credential written as ``stored`` in the configuration (``credentials: {password: stored}``) is
set through ``PUT /api/v1/channels/{name}/credentials/{credential}`` and kept encrypted
(:mod:`erpbridge.store.secretbox`). Every process that talks to channels fills these in from the
store when it starts (:func:`apply_stored_credentials`); a missing one stops it with a message
that says how to set it.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr, ValidationError
from sqlalchemy import Engine

from erpbridge.config.loader import STORED, LoadedConfig
from erpbridge.errors import ConfigProblem
from erpbridge.store.secretbox import SecretBox, channel_credentials
from erpbridge.systems import system_types

__all__ = ["apply_stored_credentials", "stored_names"]


def stored_names(config: LoadedConfig, channel: str) -> list[str]:
    """The credentials of ``channel`` that the configuration leaves to the store."""
    credentials = config.model.channels[channel].credentials
    return sorted(n for n, v in credentials.items() if v.get_secret_value() == STORED)


def apply_stored_credentials(
    config: LoadedConfig, engine: Engine, box: SecretBox
) -> list[ConfigProblem]:
    """Rebuild the options of every channel with ``stored`` credentials from the store.

    Returns the channels it could not fill (a credential never set); the caller decides whether
    that stops it (``sync``, ``worker``) or is a warning (``run``, ``api``, where the operator
    sets it through the API).
    """
    problems: list[ConfigProblem] = []
    for channel, model in config.model.channels.items():
        names = stored_names(config, channel)
        if not names or channel not in config.transports:
            continue
        with engine.connect() as conn:
            found = channel_credentials(conn, box, channel)
        missing = [n for n in names if n not in found]
        if missing:
            problems.append(
                ConfigProblem(
                    config.path.name,
                    None,
                    f"channels.{channel}.credentials",
                    f"{', '.join(missing)} is `stored` but was never set: "
                    f"PUT /api/v1/channels/{channel}/credentials/{missing[0]}",
                )
            )
            continue
        credentials = {
            k: SecretStr(found[k]) if v.get_secret_value() == STORED else v
            for k, v in model.credentials.items()
        }
        system = system_types()[model.system]
        transport = model.transport or system.transport
        implied = system.defaults if transport == system.transport else {}
        raw: dict[str, Any] = {**implied, **model.options, "credentials": credentials}
        try:
            config.channel_options[channel] = config.transports[
                channel
            ].channel_options.model_validate(raw)
        except ValidationError as exc:
            problems.append(
                ConfigProblem(config.path.name, None, f"channels.{channel}.options", str(exc))
            )
    return problems
