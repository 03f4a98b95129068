"""``erpbridge channels test``: is a channel reachable, do we get in, does its data fit?

A check changes nothing a flow would see on either side (an SFTP channel writes and removes an
empty hidden probe file, the only way SFTP tells whether a folder is writable). It asks the
transport for its own :meth:`~erpbridge.transports.base.Transport.health` (reachability, auth,
folders, tables), then
reads one sample record for each IN flow of the channel and maps it, which is where a schema
mismatch shows (a renamed column, a missing field, a value the mapping cannot take). The sample
batch is never acknowledged, so a file stays in the inbox and no cursor moves.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from erpbridge.config.loader import LoadedConfig
from erpbridge.errors import DataError, ErpbridgeError
from erpbridge.systems import system_types
from erpbridge.transports.base import Health, HealthCategory, Transport

__all__ = ["ChannelReport", "SampleCheck", "check_channel"]


@dataclass(frozen=True, slots=True)
class SampleCheck:
    """One IN flow's sample read: the first record, mapped (or why not)."""

    flow: str
    ok: bool
    detail: str
    category: HealthCategory = "ok"


@dataclass(slots=True)
class ChannelReport:
    """Everything ``erpbridge channels test`` found out about one channel."""

    channel: str
    transport: str
    health: Health
    samples: list[SampleCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the connection and every sample read are fine."""
        return self.health.ok and all(s.ok for s in self.samples)


def check_channel(config: LoadedConfig, channel: str, *, sample: bool = True) -> ChannelReport:
    """Check ``channel``: connection and auth, then (``sample``) one record per IN flow."""
    model = config.model.channels[channel]
    name = model.transport or system_types()[model.system].transport
    try:
        transport: Transport = config.open_transport(channel)
    except ErpbridgeError as exc:
        bad = Health(ok=False, detail=str(exc), category=getattr(exc, "category", "error"))
        return ChannelReport(channel, name, bad)
    try:
        report = ChannelReport(channel, name, _health(transport))
        if report.health.ok and sample:
            flows = [f for f in config.model.flows if f.channel == channel and f.direction == "in"]
            report.samples = [_sample(config, transport, f.name) for f in flows]
        return report
    finally:
        transport.close()


def _health(transport: Transport) -> Health:
    try:
        return transport.health()
    except ErpbridgeError as exc:
        return Health(ok=False, detail=str(exc), category=getattr(exc, "category", "error"))


def _sample(config: LoadedConfig, transport: Transport, flow: str) -> SampleCheck:
    mapping = config.mappings[flow]
    stream = config.streams[flow]
    batches = transport.read(stream, None, 1, mapping.required_fields)
    try:
        batch = next(iter(batches), None)
    except ErpbridgeError as exc:
        category: HealthCategory = getattr(exc, "category", "error")
        return SampleCheck(flow, False, str(exc), category)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    if batch is None or not (batch.records or batch.problems):
        return SampleCheck(flow, True, "reachable; no record waiting to sample")
    if batch.problems:
        problem = batch.problems[0]
        return SampleCheck(flow, False, f"{problem.position}: {problem.reason}", "schema")
    record = batch.records[0]
    missing = sorted(f for f in mapping.required_fields if f not in record.data)
    if missing:
        found = ", ".join(itertools.islice(sorted(map(str, record.data)), 12))
        return SampleCheck(
            flow,
            False,
            f"{record.position}: the sample lacks field(s) {', '.join(missing)} "
            f"the mapping needs (it has: {found})",
            "schema",
        )
    try:
        mapping(record.data)
    except DataError as exc:
        return SampleCheck(flow, False, f"{record.position}: {exc}", "schema")
    return SampleCheck(flow, True, f"{record.position} maps to {config.flow(flow).entity}")
