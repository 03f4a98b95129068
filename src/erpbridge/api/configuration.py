"""``/api/v1/config``: the configuration version each process runs, the versions kept in the
hub (text, diff), reload without a restart, rollback. Admin only: the text names every
system the hub talks to."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from erpbridge.api.context import ApiError, Hub
from erpbridge.api.deps import Admin, HubDep, Limit, RowId, Stamp
from erpbridge.engine.reloader import (
    ConfigRefused,
    Reloaded,
    Reloader,
    VersionConflict,
    check_text,
)
from erpbridge.store.configversions import (
    ConfigVersion,
    get_version,
    list_processes,
    list_versions,
    text_diff,
    unified,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")

VersionId = Annotated[int, Query(ge=1, le=2**63 - 1)]


class ProcessOut(BaseModel):
    """A serving process and the configuration version it runs."""

    host: str
    pid: int
    role: str = Field(description="run or api")
    version: int
    loaded_at: Stamp
    seen_at: Stamp = Field(description="Its last poll of the hub (every 2 s while it runs).")


class ConfigOut(BaseModel):
    """This process's configuration and every serving process's version."""

    version: int | None = Field(description="The version this process runs.")
    path: str
    processes: list[ProcessOut]


class VersionOut(BaseModel):
    """A configuration version kept in the hub: who made it current, how and when."""

    id: int
    sha256: str
    actor: str
    action: str = Field(description="start, reload or rollback")
    created_at: Stamp


class VersionTextOut(VersionOut):
    """A version with its YAML text, comments included."""

    text: str


class DiffOut(BaseModel):
    """A unified diff between two versions' texts (empty: the same)."""

    from_version: int
    to_version: int
    diff: str


class ConfigTextIn(BaseModel):
    """An edited configuration file; ``base_version``: the version it was edited from (a save
    over a newer one is refused with 409)."""

    text: str = Field(max_length=2_000_000)
    base_version: int | None = Field(None, ge=1)


class CheckOut(BaseModel):
    """What ``erpbridge check`` says of a text (empty: it passes) and how it differs from the
    file this process runs."""

    problems: list[str]
    diff: str


class ReloadOut(BaseModel):
    """The version this process now runs; ``changed``: the file differed from the running one.
    The other processes pick a change up within seconds (their poll of the hub)."""

    version: int
    changed: bool


def _reloader(hub: Hub) -> Reloader:
    if hub.reloader is None:
        raise ApiError(409, "no_reload", "this process does not reload its configuration")
    return hub.reloader


def _version(hub: Hub, version_id: int) -> ConfigVersion:
    with hub.engine.connect() as conn:
        version = get_version(conn, version_id)
    if version is None:
        raise ApiError(404, "not_found", f"no configuration version {version_id}")
    return version


def _refused(exc: ConfigRefused) -> ApiError:
    return ApiError(
        422,
        "config_invalid",
        "configuration refused; the running one stays: " + "; ".join(exc.problems),
    )


def _out(done: Reloaded) -> ReloadOut:
    return ReloadOut(version=done.version_id, changed=done.changed)


@router.get("/config", tags=["config"])
def show_config(hub: HubDep, who: Admin) -> ConfigOut:
    """The configuration version this process runs, and every serving process's."""
    with hub.engine.connect() as conn:
        processes = list_processes(conn)
    return ConfigOut(
        version=None if hub.reloader is None else hub.reloader.version_id,
        path=str(hub.config.path),
        processes=[
            ProcessOut(
                host=p.host,
                pid=p.pid,
                role=p.role,
                version=p.version_id,
                loaded_at=p.loaded_at,
                seen_at=p.seen_at,
            )
            for p in processes
        ],
    )


@router.get("/config/versions", tags=["config"])
def config_versions(hub: HubDep, who: Admin, limit: Limit = 50) -> list[VersionOut]:
    """The versions kept in the hub, newest first."""
    with hub.engine.connect() as conn:
        versions = list_versions(conn, limit)
    return [VersionOut.model_validate(v, from_attributes=True) for v in versions]


@router.get("/config/versions/{version_id}", tags=["config"])
def config_version(version_id: RowId, hub: HubDep, who: Admin) -> VersionTextOut:
    """One version with its text."""
    return VersionTextOut.model_validate(_version(hub, version_id), from_attributes=True)


@router.get("/config/diff", tags=["config"])
def config_diff(
    hub: HubDep,
    who: Admin,
    from_version: Annotated[int, Query(alias="from", ge=1, le=2**63 - 1)],
    to_version: Annotated[int, Query(alias="to", ge=1, le=2**63 - 1)],
) -> DiffOut:
    """What changed from one version to another (unified diff of the YAML texts)."""
    old, new = _version(hub, from_version), _version(hub, to_version)
    return DiffOut(from_version=old.id, to_version=new.id, diff=unified(old, new))


@router.post("/config/reload", tags=["config"])
def reload_config(hub: HubDep, who: Admin) -> ReloadOut:
    """Load the configuration file again, here and now; 422 ``config_invalid`` with every
    problem when it does not pass the check (the running configuration stays)."""
    reloader = _reloader(hub)
    try:
        done = reloader.reload(who.name)
    except ConfigRefused as exc:
        hub.audit(who.name, who.address, "config.reload", str(reloader.path), "refused",
                  detail={"problems": exc.problems})  # fmt: skip
        raise _refused(exc) from None
    hub.audit(who.name, who.address, "config.reload", str(reloader.path),
              detail={"version": done.version_id, "changed": done.changed})  # fmt: skip
    return _out(done)


@router.post("/config/rollback/{version_id}", tags=["config"])
def rollback_config(version_id: RowId, hub: HubDep, who: Admin) -> ReloadOut:
    """Write version ``version_id`` back to the configuration file and reload it (every
    process sharing the file follows); 422 if that version no longer passes the check."""
    reloader = _reloader(hub)
    _version(hub, version_id)
    try:
        done = reloader.rollback(version_id, who.name)
    except ConfigRefused as exc:
        hub.audit(who.name, who.address, "config.rollback", str(version_id), "refused",
                  detail={"problems": exc.problems})  # fmt: skip
        raise _refused(exc) from None
    hub.audit(who.name, who.address, "config.rollback", str(version_id),
              detail={"version": done.version_id})  # fmt: skip
    return _out(done)


@router.post("/config/check", tags=["config"])
def check_config(body: ConfigTextIn, hub: HubDep, who: Admin) -> CheckOut:
    """Check an edited configuration as ``erpbridge check`` does, and diff it against the
    running file, without saving anything."""
    reloader = _reloader(hub)
    try:
        check_text(body.text, reloader.path)
        problems: list[str] = []
    except ConfigRefused as exc:
        problems = exc.problems
    running = reloader.path.read_text(encoding="utf-8")
    return CheckOut(problems=problems, diff=text_diff(running, body.text, "running", "edited"))


@router.put("/config", tags=["config"])
def save_config(body: ConfigTextIn, hub: HubDep, who: Admin) -> ReloadOut:
    """Save an edited configuration to the file (the text as sent: comments kept) and reload
    it; 422 ``config_invalid`` with every problem, 409 ``version_conflict`` when
    ``base_version`` is not the running version. The file stays as it was in both cases."""
    reloader = _reloader(hub)
    try:
        done = reloader.save(body.text, who.name, body.base_version)
    except ConfigRefused as exc:
        hub.audit(who.name, who.address, "config.save", str(reloader.path), "refused",
                  detail={"problems": exc.problems})  # fmt: skip
        raise _refused(exc) from None
    except VersionConflict as exc:
        raise ApiError(409, "version_conflict", str(exc)) from None
    hub.audit(who.name, who.address, "config.save", str(reloader.path),
              detail={"version": done.version_id, "changed": done.changed})  # fmt: skip
    return _out(done)
