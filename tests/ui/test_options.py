"""A channel's settings as the back office shows them: secrets never."""

from __future__ import annotations

from pydantic import SecretStr

from erpbridge.config.models import ChannelConfig
from erpbridge.ui.pages.channels import HIDDEN, shown_options


def test_secrets_are_hidden_by_name_and_by_value() -> None:
    channel = ChannelConfig(
        system="rest",
        options={
            "base_url": "https://erp.example/api",
            "password": "hunter2-long",
            "headers": {"X-Api-Key": "k-123456", "Accept": "application/json"},
            "dsn": "postgresql://erp:s3cr3t-pw@db/erp",
            "login": "s3cr3t-pw",
            "oauth": {"client_secret": "zzz", "scopes": ["a", "b"]},
        },
        credentials={"db_password": SecretStr("s3cr3t-pw")},
    )
    shown = shown_options(channel)
    assert shown == {
        "base_url": "https://erp.example/api",
        "password": HIDDEN,
        "headers": {"X-Api-Key": HIDDEN, "Accept": "application/json"},
        "dsn": HIDDEN,
        "login": HIDDEN,
        "oauth": HIDDEN,
    }
