"""``${VAR}`` and ``${VAR:-default}`` in configuration values, from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from erpbridge.config.problems import Loc, Problems

__all__ = ["expand_env"]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, loc: Loc, problems: Problems, env: Mapping[str, str]) -> Any:
    """``value`` with every reference replaced; ``$${`` is a literal ``${``."""
    if isinstance(value, str):
        if "$" not in value:
            return value

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.add(loc, f"environment variable {name} is not set")
            return ""

        return _ENV_REF.sub(replace, value.replace("$${", "\0")).replace("\0", "${")
    if isinstance(value, dict):
        return {k: expand_env(v, (*loc, k), problems, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, (*loc, i), problems, env) for i, v in enumerate(value)]
    return value
