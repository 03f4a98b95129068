"""The ``erpbridge`` command line: check a configuration, sync flows, look into the hub.

Start-up time: the command modules import what a command needs inside the command, and
:func:`main` freezes what the imports made (it lives as long as the process), so that the
collections during the command and the one at exit do not walk it again.
"""

from __future__ import annotations

import gc
import os
import sys
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from erpbridge.cli.backfill import backfill, replay
from erpbridge.cli.channels import channels_app
from erpbridge.cli.clients import clients_app, secrets_app
from erpbridge.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    actor,
    bulk_gc,
    console,
    errors,
    known_choice,
    known_entity,
    known_flow,
    outline,
)
from erpbridge.cli.common import fail as _fail
from erpbridge.cli.common import fill_credentials as _fill_credentials
from erpbridge.cli.common import load as _load
from erpbridge.cli.common import serving_hub as _serving_hub
from erpbridge.cli.common import store as _store
from erpbridge.cli.configuration import config_app
from erpbridge.cli.configuration import reload as reload_command
from erpbridge.cli.cursor import cursor_app
from erpbridge.cli.db import db_app
from erpbridge.cli.flows import flows_app
from erpbridge.cli.preview import print_preview
from erpbridge.cli.prune import prune
from erpbridge.cli.reconcile import reconcile
from erpbridge.cli.search import search_app
from erpbridge.cli.serve import (
    LogFormatOption,
    LogLevelOption,
    MetricsListenOption,
    TlsCert,
    TlsClientCa,
    TlsKey,
    api,
    observability,
    reloading,
    serve,
    tls_options,
)
from erpbridge.cli.transitions import show_transitions, transition, transition_table
from erpbridge.cli.users import users_app
from erpbridge.errors import FlowBusy, FlowPaused, StoreUnavailable
from erpbridge.pci import install_log_redaction
from erpbridge.store.states import DELIVERY_STATES, ConflictStatus

if TYPE_CHECKING:
    from datetime import timedelta

    from rich.table import Table
    from sqlalchemy import Engine

    from erpbridge.config.loader import LoadedConfig
    from erpbridge.engine.runner import FlowRunner, RunResult
    from erpbridge.store.states import RejectionStatus

# Each command imports what it needs inside its body: `erpbridge --help` and the light commands
# must not pay for the engine, the API (FastAPI) or SQLAlchemy (issue 13: start in < 0.6 s).

app = typer.Typer(
    help="erpbridge — an ERP integration hub.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain click help: no `<bool>` after flags, and no Markdown/Pygments import (~0.3 s).
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},
)


def _print_version(value: bool) -> None:
    if value:
        from erpbridge import __version__

        console.print(f"erpbridge {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """erpbridge — an ERP integration hub."""


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the example.")] = DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example configuration."""
    if path.exists() and not force:
        raise _fail(f"{path} exists; use --force to overwrite it")
    text = files("erpbridge.config").joinpath("example.yaml").read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    console.print(f"wrote {path}; edit it, then run [bold]erpbridge check {path}[/]")


@app.command()
def check(
    path: Annotated[Path, typer.Argument(help="The configuration file.")] = DEFAULT_CONFIG,
) -> None:
    """Validate a configuration and report every problem with file, line and path."""
    from rich.markup import escape

    config = _load(path)
    model = config.model
    for warning in config.warnings:
        console.print(f"[yellow]warning[/] {escape(str(warning))}")
    console.print(
        f"[green]ok[/] {path}: {len(model.channels)} channel(s), {len(model.flows)} "
        f"flow(s), {len(model.entities)} declared entit(y/ies)"
        + (f", {len(model.workflows)} workflow(s)" if model.workflows else "")
        + (f", {len(config.warnings)} warning(s)" if config.warnings else "")
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of the configuration file (for editors), with each transport's
    options, source and target typed."""
    import json

    from erpbridge.config.schema import config_schema

    sys.stdout.write(json.dumps(config_schema(), indent=2) + "\n")


def _summary(results: list[RunResult]) -> Table:
    from rich.table import Table

    table = Table(title="runs")
    for column in (
        "run",
        "flow",
        "mode",
        "status",
        "read",
        "created",
        "updated",
        "unchanged",
        "deleted",
        "rejected",
        "seconds",
    ):
        table.add_column(
            column, justify="right" if column not in ("flow", "mode", "status") else "left"
        )
    for r in results:
        status = "[green]succeeded[/]" if r.status == "succeeded" else f"[red]{r.status}[/]"
        mode = r.mode + (" (dry run)" if r.dry_run else "")
        table.add_row(
            str(r.run_id),
            r.flow,
            mode,
            status,
            str(r.read),
            str(r.created),
            str(r.updated),
            str(r.unchanged),
            str(r.deleted),
            str(r.rejected),
            f"{r.duration_s:.2f}",
        )
    return table


@app.command()
def sync(
    flows: Annotated[list[str] | None, typer.Argument(help="Flow names.")] = None,
    config_path: ConfigOption = DEFAULT_CONFIG,
    all_flows: Annotated[bool, typer.Option("--all", help="Every enabled flow.")] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Read from the beginning (resumable).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Map and compare, commit nothing.")
    ] = False,
) -> None:
    """Run IN flows now and print what moved. A paused flow is not run (exit 75 when named;
    skipped with a note under --all); --dry-run looks at it anyway."""
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from erpbridge.engine.runner import FlowRunner

    config = _load(config_path)
    names = (
        [f.name for f in config.model.flows if f.enabled and f.direction == "in"]
        if all_flows
        else list(flows or [])
    )
    if not names:
        raise _fail("name one or more flows, or use --all")
    for name in names:
        known_flow(config, name)
        if config.flow(name).direction != "in":
            raise _fail(f"flow {name!r} is an OUT flow: `erpbridge worker` delivers it")
    _fill_credentials(config)
    runner = FlowRunner(config, _store(config))
    results = []
    busy: list[FlowBusy | FlowPaused] = []
    with (
        bulk_gc(),
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[read]} read, {task.fields[rejected]} rejected"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress,
    ):
        for name in names:
            task = progress.add_task(name, total=None, read=0, rejected=0)

            def advance(counts: Any, task: Any = task) -> None:
                fields = progress.tasks[task].fields
                progress.update(
                    task,
                    read=fields["read"] + counts.read,
                    rejected=fields["rejected"] + counts.rejected,
                )

            try:
                results.append(runner.run(name, full=full, dry_run=dry_run, progress=advance))
            except FlowBusy as exc:
                busy.append(exc)
            except FlowPaused as exc:
                if all_flows:  # the operator paused it: --all (cron) leaves it alone, quietly
                    console.print(f"skipped: {exc}", highlight=False, soft_wrap=True)
                else:
                    busy.append(exc)
            except StoreUnavailable as exc:
                progress.stop()
                raise _fail(_store_gone(name, exc, runner), EXIT_STORE_UNAVAILABLE) from None
    for clash in busy:
        errors.print(f"[bold red]error:[/] {clash}", highlight=False, soft_wrap=True)
    if results:
        console.print(_summary(results))
    for result in results:
        if result.dry_run:
            print_preview(result)
        for warning in result.warnings[:20]:
            console.print(f"[yellow]warning[/] {result.flow}: {warning}", highlight=False)
        if len(result.warnings) > 20:
            console.print(
                f"[yellow]… {len(result.warnings) - 20} more warning(s) in run {result.run_id}[/]"
            )
        if result.rejected:
            console.print(
                f"[yellow]{result.rejected} record(s) rejected[/] by {result.flow}: "
                f"see [bold]erpbridge rejected --flow {result.flow}[/]"
            )
        if result.error:
            errors.print(f"[red]run {result.run_id} failed:[/] {result.error}", highlight=False)
    if any(r.status != "succeeded" for r in results):
        raise typer.Exit(1)
    if busy:
        raise typer.Exit(EXIT_FLOW_BUSY)


#: ``erpbridge sync``'s exit codes beside 0 (every run succeeded), 1 (a run failed) and
#: 2 (configuration problems): a flow was already running or is paused (try again later); the
#: hub store stayed unavailable.
EXIT_FLOW_BUSY = 75
EXIT_STORE_UNAVAILABLE = 69


def _store_gone(flow: str, exc: StoreUnavailable, runner: FlowRunner) -> str:
    if exc.run_id is None:
        return f"flow {flow!r}: {exc}; no run was started"
    if exc.closed:
        return f"flow {flow!r}: {exc}; run {exc.run_id} is marked failed"
    lease = runner.lease.total_seconds()
    return (
        f"flow {flow!r}: {exc}; run {exc.run_id} could not be marked failed: it shows as "
        f"interrupted once its lease has passed ({lease:.0f} s) and the next run resumes "
        "after its last committed batch"
    )


@app.command(name="runs")
def list_runs(
    config_path: ConfigOption = DEFAULT_CONFIG,
    flow: Annotated[str | None, typer.Option(help="Only this flow.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
) -> None:
    """Show recent runs with their counts, cursors and errors."""
    from datetime import UTC, datetime

    from rich.table import Table

    from erpbridge.store.read.ledger import runs_page
    from erpbridge.store.read.scope import EVERYTHING
    from erpbridge.store.runlease import shown_status

    config = outline(config_path)  # the store and the flow names: no connector is loaded
    known_flow(config, flow)
    engine = _store(config)
    table = Table(title="runs")
    for column in (
        "run",
        "flow",
        "mode",
        "status",
        "started",
        "read",
        "created",
        "updated",
        "unchanged",
        "deleted",
        "rejected",
        "cursor after",
        "error",
    ):
        table.add_column(column)
    with engine.connect() as conn:
        at = datetime.now(UTC)
        for r in runs_page(conn, EVERYTHING, flow=flow, limit=limit):
            table.add_row(
                str(r.id),
                r.flow,
                r.mode + (" dry" if r.dry_run else ""),
                shown_status(r, at),
                f"{r.started_at:%Y-%m-%d %H:%M:%S}",
                str(r.read),
                str(r.created),
                str(r.updated),
                str(r.unchanged),
                str(r.deleted),
                str(r.rejected),
                (r.cursor_after or "")[:40],
                (r.error or "")[:80],
            )
    console.print(table)


@app.command(name="records")
def show_records(
    entity: Annotated[str, typer.Argument(help="Entity name.")],
    config_path: ConfigOption = DEFAULT_CONFIG,
    key: Annotated[str | None, typer.Option("--key", "-k", help="One record.")] = None,
    limit: Annotated[int, typer.Option(help="How many to list.")] = 20,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="As they were at this time (ISO 8601), rebuilt from the audit trail."
        ),
    ] = None,
    diff_from: Annotated[
        str | None,
        typer.Option(
            "--diff-from",
            help="Show what changed between this time and --as-of (default: now), field by field.",
        ),
    ] = None,
) -> None:
    """List an entity's records, or show one with its versions, bindings and audit trail; or
    as they were at a moment (--as-of), or what changed between two (--diff-from)."""
    from erpbridge.cli.asof import print_as_of, print_diff
    from erpbridge.moments import BadMoment, parse_moment
    from erpbridge.store.runs import now

    config = _load(config_path)
    known_entity(config, entity)
    try:
        moment = None if as_of is None else parse_moment("--as-of", as_of)
        start = None if diff_from is None else parse_moment("--diff-from", diff_from)
    except BadMoment as exc:
        raise _fail(str(exc), 2) from None
    if start is not None and moment is not None and start > moment:
        raise _fail(f"--diff-from {diff_from} is after --as-of {as_of}: swap them", 2)
    engine = _store(config)
    try:
        if start is not None:
            print_diff(engine, entity, key, start, moment or now(), limit)
        elif moment is not None:
            print_as_of(engine, entity, key, moment, limit)
        else:
            _print_records(engine, entity, key, limit)
    finally:
        engine.dispose()  # a PostgreSQL store's connections are closed, not left to the GC


def _print_records(engine: Engine, entity: str, key: str | None, limit: int) -> None:
    import orjson
    from rich.table import Table

    from erpbridge.store.read import (
        EVERYTHING,
        field_origins,
        is_deleted,
        record_view,
        records_page,
    )

    with engine.connect() as conn:
        if key is None:
            total, rows = records_page(conn, EVERYTHING, entity, limit)
            table = Table(title=f"{entity}: {total} record(s)")
            for column in ("id", "key", "version", "updated", "payload"):
                table.add_column(column)
            for r in rows:
                table.add_row(
                    str(r.id),
                    r.key,
                    f"{r.version} (deleted)" if is_deleted(r.content_hash) else str(r.version),
                    f"{r.updated_at:%Y-%m-%d %H:%M:%S}",
                    r.payload[:80],
                )
            console.print(table)
            return
        view = record_view(conn, EVERYTHING, entity, key)
        if view is None:
            raise _fail(f"no {entity} record with key {key!r}")
        row = view.row
        gone = " [red]DELETED[/] (its last payload below)" if view.deleted else ""
        console.print(
            f"[bold]{entity} {key}[/] v{row.version} (record {row.id}, hash {row.content_hash})"
            + gone
        )
        console.print_json(row.payload)
        table = Table(title="bindings")
        for column in ("channel", "external id", "since"):
            table.add_column(column)
        for b in view.bindings:
            table.add_row(b.channel, b.external_id, f"{b.created_at:%Y-%m-%d %H:%M:%S}")
        console.print(table)
        table = Table(title="versions (audit trail)")
        for column in ("version", "action", "at", "run", "flow", "source", "changed fields"):
            table.add_column(column)
        for a in (v.row for v in view.versions):
            changed = ", ".join(orjson.loads(a.changed_fields)) if a.changed_fields else ""
            table.add_row(
                str(a.version),
                a.action,
                f"{a.at:%Y-%m-%d %H:%M:%S}",
                str(a.run_id),
                a.flow or "",
                a.source_position or "",
                changed,
            )
        console.print(table)
        table = Table(title="fields (the version and flow that last set each)")
        for column in ("field", "version", "at", "flow", "channel"):
            table.add_column(column)
        for name, origin in sorted(field_origins(view.versions).items()):
            table.add_row(
                name,
                str(origin.version),
                f"{origin.at:%Y-%m-%d %H:%M:%S}",
                origin.flow or "",
                origin.channel or "",
            )
        console.print(table)
        if view.transitions:
            console.print(transition_table("status changes (transition log)", view.transitions))


@app.command(name="rejected")
def show_rejected(
    config_path: ConfigOption = DEFAULT_CONFIG,
    flow: Annotated[str | None, typer.Option(help="Only this flow.")] = None,
    status: Annotated[str, typer.Option(help="open, replayed, superseded or dismissed.")] = "open",
    ids: Annotated[
        list[int] | None,
        typer.Option("--id", help="Only this rejection (repeat); alone: show its payload."),
    ] = None,
    replay: Annotated[bool, typer.Option("--replay", help="Map the open ones again.")] = False,
    dismiss: Annotated[
        str | None, typer.Option("--dismiss", metavar="REASON", help="Dismiss them, saying why.")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many to list.")] = 50,
) -> None:
    """List rejected records with every failing field; --id shows one with its payload;
    --replay maps the open ones again after a fix; --dismiss REASON closes them."""
    from erpbridge.cli.rejected import dismiss_rejected, print_rejections, show_payloads
    from erpbridge.engine.runner import FlowRunner
    from erpbridge.errors import FlowPaused
    from erpbridge.store.adminaudit import record_action
    from erpbridge.store.states import REJECTION_STATUSES

    config = _load(config_path)
    known_flow(config, flow)
    known_choice("--status", status, REJECTION_STATUSES, "rejection status")
    if replay and dismiss is not None:
        raise _fail("--replay and --dismiss exclude each other", 2)
    engine = _store(config)
    if dismiss is not None:
        dismiss_rejected(engine, flow, ids, dismiss)
        return
    if ids and not replay:
        show_payloads(engine, ids)
        return
    if replay:
        try:
            results = FlowRunner(config, engine).replay_rejected(flow, ids)
        except FlowPaused as exc:
            raise _fail(str(exc), 75) from None
        runs = [{"run_id": r.run_id, "flow": r.flow, "still_rejected": r.rejected} for r in results]
        record_action(
            engine, actor(), None, "rejected.replay", flow, detail={"ids": ids, "runs": runs}
        )
        if not results:
            console.print("nothing to replay")
            return
        console.print(_summary(results))
    print_rejections(engine, flow, cast("RejectionStatus", status), limit)


StopTimeout = Annotated[
    float | None,
    typer.Option(
        envvar="ERPBRIDGE_STOP_TIMEOUT_S",
        help="Seconds a graceful stop (SIGTERM, Ctrl-C) may take before the process exits 1 "
        "(default 8).",
        show_default=False,
    ),
]


@app.command()
def worker(
    config_path: ConfigOption = DEFAULT_CONFIG,
    once: Annotated[bool, typer.Option("--once", help="Deliver what is due, then stop.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls when idle.")] = 1.0,
    lease: Annotated[
        float,
        typer.Option(
            envvar="ERPBRIDGE_WORKER_LEASE_S",
            help="Seconds a claim is held; a crashed worker's claims are taken over after it.",
        ),
    ] = 60.0,
    batch_size: Annotated[int, typer.Option(help="Deliveries claimed at a time.")] = 100,
    stop_timeout: StopTimeout = None,
    concurrency: Annotated[
        int, typer.Option(help="Scaled out: procrastinate jobs run at once.")
    ] = 4,
    stalled_after: Annotated[
        float,
        typer.Option(
            envvar="ERPBRIDGE_STALLED_AFTER_S",
            help="Scaled out: seconds without heartbeat before a worker's jobs are requeued.",
        ),
    ] = 30.0,
    sweep_interval: Annotated[
        float,
        typer.Option(
            envvar="ERPBRIDGE_SWEEP_INTERVAL_S",
            help="Scaled out: seconds between sweeps of the ledger for entries without a job.",
        ),
    ] = 30.0,
    log_format: LogFormatOption = "console",
    log_level: LogLevelOption = "info",
    metrics_listen: MetricsListenOption = None,
) -> None:
    """Deliver record changes to the OUT flows (until Ctrl-C, or once with --once)."""
    import threading
    from datetime import timedelta

    from erpbridge.engine.reloader import Reloader
    from erpbridge.engine.service import WakeListener, worker_loop
    from erpbridge.engine.shutdown import DEFAULT_STOP_TIMEOUT_S, GracefulStop
    from erpbridge.engine.worker import Worker

    config = _load(config_path)
    _fill_credentials(config)
    engine = _store(config)
    observability(config, engine, log_format, log_level, metrics_listen)
    if not once and _scaled_out(engine):
        _scaled_worker(
            config,
            engine,
            timedelta(seconds=lease),
            batch_size,
            concurrency=concurrency,
            stalled_after=stalled_after,
            sweep_interval=sweep_interval,
        )
        return
    delivery = Worker(config, engine, lease=timedelta(seconds=lease), batch_size=batch_size)
    console.print(f"worker {delivery.name}: {len(delivery.flows)} OUT flow(s)")
    try:
        if once:
            stats = delivery.run_once()
            console.print(
                f"claimed {stats.claimed}: {stats.delivered} delivered, {stats.retried} to "
                f"retry, {stats.dead} dead, {stats.lost} lost to another worker"
            )
            return
        wake, stop = threading.Event(), threading.Event()
        current = [delivery]  # a reloaded configuration's worker takes over between passes

        def apply(loaded: LoadedConfig) -> None:
            current[0] = Worker(
                loaded, engine, name=delivery.name, lease=delivery.lease, batch_size=batch_size
            )
            wake.set()

        reloader = Reloader(config, engine, "worker", apply)
        reloader.start()

        def begin() -> None:
            current[0].stopping.set()
            stop.set()
            wake.set()

        def abandon() -> str:
            released, writing = current[0].release_unwritten()
            return (
                f"{released} unwritten claim(s) released, {writing} write(s) abandoned in flight "
                "(due again when their lease ends)"
            )

        bound = DEFAULT_STOP_TIMEOUT_S if stop_timeout is None else stop_timeout
        graceful = GracefulStop(f"worker {delivery.name}", bound, begin, abandon)
        graceful.install()
        WakeListener(engine, wake, stop)
        try:
            worker_loop(lambda: current[0], wake, stop, interval, {})
        finally:
            reloader.close()
            delivery = current[0]
    except KeyboardInterrupt:
        console.print("stopped")
        return
    finally:
        delivery.close()
    graceful.done.set()
    console.print(
        f"worker {delivery.name}: stopped cleanly on {graceful.signal or 'request'} "
        "(claims finished or released, transports closed)"
    )


def _scaled_out(engine: Engine) -> bool:
    """``ERPBRIDGE_DISPATCHER=procrastinate``: hand the ledger out through procrastinate."""
    from erpbridge.engine.dispatcher import DISPATCHER_ENV, PROCRASTINATE, chosen_dispatcher

    chosen = chosen_dispatcher()
    if chosen not in ("", PROCRASTINATE):
        raise _fail(f"{DISPATCHER_ENV}={chosen!r}: use 'procrastinate' or leave it unset")
    if chosen and engine.dialect.name != "postgresql":
        raise _fail(f"{DISPATCHER_ENV}=procrastinate needs a PostgreSQL hub store")
    return bool(chosen)


def _scaled_worker(
    config: LoadedConfig,
    engine: Engine,
    lease: timedelta,
    batch_size: int,
    *,
    concurrency: int,
    stalled_after: float,
    sweep_interval: float,
) -> None:
    from erpbridge.engine.dispatch import ScaledWorker  # needs the postgres extra

    scaled = ScaledWorker(
        config, engine, lease=lease, batch_size=batch_size, stalled_after=stalled_after
    )
    console.print(
        f"worker {scaled.sweeper.name}: {len(scaled.flows)} OUT flow(s), procrastinate, "
        f"{concurrency} job(s) at once"
    )
    try:
        scaled.run(concurrency=concurrency, sweep_interval=sweep_interval)
    finally:
        scaled.close()
    console.print("stopped")


@app.command()
def run(
    config_path: ConfigOption = DEFAULT_CONFIG,
    host: Annotated[str, typer.Option(help="Address of the HTTP server.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the HTTP server.")] = 8080,
    interval: Annotated[float, typer.Option(help="Seconds between polls when idle.")] = 1.0,
    lease: Annotated[
        float, typer.Option(envvar="ERPBRIDGE_WORKER_LEASE_S", help="Claim lease, seconds.")
    ] = 60.0,
    stop_timeout: StopTimeout = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_client_ca: TlsClientCa = None,
    log_format: LogFormatOption = "console",
    log_level: LogLevelOption = "info",
    metrics_listen: MetricsListenOption = None,
) -> None:
    """Run the embedded hub: scheduler, worker and the API (/api/v1, /healthz, /metrics)."""
    from datetime import timedelta

    from erpbridge.api import create_app
    from erpbridge.engine.service import Service
    from erpbridge.engine.shutdown import DEFAULT_STOP_TIMEOUT_S
    from erpbridge.ui.mount import mount_ui

    config = _load(config_path)
    _fill_credentials(config, required=False)
    engine = _store(config)
    observability(config, engine, log_format, log_level, metrics_listen)
    service = Service(config, engine, interval=interval, lease=timedelta(seconds=lease))
    hub = _serving_hub(config, service.engine, wake=service.queued, health=service.health)
    tls = tls_options(config, tls_cert, tls_key, tls_client_ca)
    service.start()

    def apply(new: LoadedConfig) -> None:
        service.reload(new)
        hub.reload(new)

    reloader = reloading(hub, "run", apply)
    scheme = "https" if tls else "http"
    console.print(
        f"erpbridge {service.worker.name}: {len(service.scheduler.schedules)} scheduled flow(s), "
        f"{len(service.worker.flows)} OUT flow(s), API at {scheme}://{host}:{port}/api/v1 "
        f"(docs: /docs), configuration version {reloader.version_id}"
    )
    try:
        serve(mount_ui(create_app(hub, tls=bool(tls))), host, port, tls)
    finally:
        reloader.close()
        # the API has drained; now the scheduler and worker, within the bound
        clean = service.close(DEFAULT_STOP_TIMEOUT_S if stop_timeout is None else stop_timeout)
    if not clean:
        raise typer.Exit(1)
    console.print(
        f"erpbridge {service.worker.name}: stopped cleanly (runs and claims finished or "
        "released, transports closed)"
    )


@app.command(name="status")
def show_status(
    config_path: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """What is failing (flows, dead deliveries, old backlog, channels down, firing alerts);
    exit 1 when anything is, 0 when all is well (for cron and monitoring)."""
    from erpbridge.cli.status import print_status

    config = _load(config_path)
    if not print_status(config, _store(config), as_json=as_json):
        raise typer.Exit(1)


@app.command(name="alerts")
def show_alerts(
    config_path: ConfigOption = DEFAULT_CONFIG,
    rule: Annotated[str | None, typer.Option(help="Only this rule.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="History rows, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """The alerts firing now and their history: fired, repeated, resolved, and what each
    notifier answered (ok or the error)."""
    from erpbridge.cli.status import print_alerts

    config = _load(config_path)
    print_alerts(_store(config), rule=rule, limit=limit, as_json=as_json)


@app.command(name="deliveries")
def list_deliveries(
    config_path: ConfigOption = DEFAULT_CONFIG,
    state: Annotated[
        str | None, typer.Option(help=f"Only this state: {', '.join(DELIVERY_STATES)}.")
    ] = None,
    flow: Annotated[str | None, typer.Option(help="Only this flow.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
) -> None:
    """Show the delivery ledger with states, attempts and errors."""
    from rich.table import Table

    from erpbridge.store.read import EVERYTHING, deliveries_page
    from erpbridge.store.states import OPEN_DELIVERY_STATES
    from erpbridge.store.switches import paused_flows

    known_choice("--state", state, DELIVERY_STATES, "state")
    config = _load(config_path)
    known_flow(config, flow)
    engine = _store(config)
    table = Table(title="deliveries")
    for column in (
        "id",
        "flow",
        "record",
        "version",
        "state",
        "attempts",
        "next attempt",
        "external id",
        "error",
    ):
        table.add_column(column)
    with engine.connect() as conn:
        chosen = next((s for s in DELIVERY_STATES if s == state), None)  # the typed one
        rows = deliveries_page(conn, EVERYTHING, state=chosen, flow=flow, limit=limit)
        paused = paused_flows(conn)
        for d in rows:
            held = d.state in OPEN_DELIVERY_STATES and d.flow in paused
            table.add_row(
                str(d.id),
                d.flow,
                f"{d.entity} {d.key}",
                str(d.version),
                d.state + (" (flow paused)" if held else ""),
                f"{d.attempts}/{d.max_attempts}",
                f"{d.next_attempt_at:%H:%M:%S}",
                d.external_id or "",
                (d.last_error or "")[:80],
            )
    console.print(table)


@app.command()
def retry(
    ids: Annotated[list[int] | None, typer.Argument(help="Delivery ids.")] = None,
    config_path: ConfigOption = DEFAULT_CONFIG,
    dead: Annotated[bool, typer.Option("--dead", help="Every dead delivery.")] = False,
    flow: Annotated[str | None, typer.Option(help="With --dead: only this flow.")] = None,
) -> None:
    """Make dead, failed or cancelled deliveries due again (after fixing the cause); a version
    older than one its flow already delivered for that record is cancelled as superseded."""
    from erpbridge.store.deliveries import retry_deliveries
    from erpbridge.store.runs import now

    if not ids and not dead:
        raise _fail("name delivery ids, or use --dead")
    config = _load(config_path)
    known_flow(config, flow)
    engine = _store(config)
    with engine.begin() as conn:
        done = retry_deliveries(conn, ids, now(), dead_of_flow=flow, all_dead=dead)
    console.print(f"{done.due} deliver(y/ies) due again")
    if done.superseded:
        console.print(
            f"{done.superseded} cancelled as superseded: a newer version of the same record "
            "was already delivered by that flow (see `erpbridge deliveries`)"
        )


@app.command()
def cancel(
    ids: Annotated[list[int], typer.Argument(help="Delivery ids.")],
    config_path: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Cancel deliveries that have not gone out; they stay in the ledger."""
    from erpbridge.store.deliveries import cancel as cancel_deliveries
    from erpbridge.store.runs import now

    engine = _store(_load(config_path))
    with engine.begin() as conn:
        count = cancel_deliveries(conn, ids, now())
    console.print(f"{count} deliver(y/ies) cancelled")


@app.command(name="conflicts")
def show_conflicts(
    config_path: ConfigOption = DEFAULT_CONFIG,
    resolve: Annotated[int | None, typer.Option(help="Settle this open conflict.")] = None,
    take: Annotated[
        str | None, typer.Option(help="With --resolve: 'source' (the channel's change) or 'hub'.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Settled ones too.")] = False,
) -> None:
    """List two-way conflicts (open ones by default), or settle one with --resolve/--take."""
    from rich.table import Table

    from erpbridge.engine.runner import FlowRunner
    from erpbridge.store.read import EVERYTHING, conflicts_page

    config = _load(config_path)
    engine = _store(config)
    if resolve is not None:
        if take is None:
            raise _fail("--resolve needs --take source or --take hub", 2)
        known_choice("--take", take, ("source", "hub"), "side")
        try:
            FlowRunner(config, engine).resolve_conflict(resolve, take)
        except LookupError as exc:
            raise _fail(str(exc)) from None
        console.print(f"conflict {resolve} settled for the {take}")
        return
    table = Table(title="conflicts")
    for column in ("id", "flow", "record", "hub version", "policy", "status", "winner", "at"):
        table.add_column(column)
    with engine.connect() as conn:
        status: ConflictStatus | None = None if all_ else "open"
        for c in conflicts_page(conn, EVERYTHING, status=status, limit=None, order="oldest"):
            table.add_row(
                str(c.id),
                c.flow,
                f"{c.entity} {c.key}",
                str(c.hub_version),
                c.policy,
                c.status,
                c.winner or "",
                f"{c.created_at:%Y-%m-%d %H:%M:%S}",
            )
    console.print(table)


app.add_typer(channels_app, name="channels")
app.add_typer(clients_app, name="clients")
app.add_typer(flows_app, name="flows")
app.add_typer(cursor_app, name="cursor")
app.add_typer(config_app, name="config")
app.command(name="reload")(reload_command)
app.add_typer(secrets_app, name="secrets")
app.add_typer(search_app, name="search")
app.add_typer(users_app, name="users")
app.add_typer(db_app, name="db")
app.command()(api)
app.command()(prune)
app.command()(transition)
app.command(name="transitions")(show_transitions)
app.command()(backfill)
app.command()(replay)
app.command()(reconcile)


def main() -> None:
    """Entry point of the console script."""
    gc.freeze()  # what the imports made lives until the process ends
    os.environ.setdefault("COLUMNS", "160") if not sys.stdout.isatty() else None
    install_log_redaction()  # no log line of this process ever holds a card number
    try:
        app()
    finally:
        # What the command made (its configuration, the store's metadata) goes with the
        # process: the collection at exit need not walk it (about 0.2 s of CPU for `runs`).
        gc.freeze()
