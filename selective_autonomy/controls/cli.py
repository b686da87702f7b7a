"""``selauto stage set|release|confirm|show``, ``selauto pause`` and ``selauto resume``: hand controls.

Mount them in ``selective_autonomy/cli.py`` with::

    from selective_autonomy.controls.cli import pause, resume, stage_app
    app.add_typer(stage_app, name="stage")
    app.command()(pause)
    app.command()(resume)

Each change goes to the service pointer (workers follow it within ``worker.reload_interval_s``) and
to the feedback store's history; a stage that moved is also published on ``stage.changes`` when the
broker acknowledges it within ``--publish-timeout`` (otherwise a warning says so, and the change
stays in force: the pointer is the source of truth).
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from selective_autonomy.cli_options import ConfigOption
from selective_autonomy.config import load_settings
from selective_autonomy.controls.errors import ControlError
from selective_autonomy.schemas.event_parts import Stage

if TYPE_CHECKING:  # the registry and the store load only when a command runs, not for `selauto --help`
    from selective_autonomy.controls.hand import HandChange
    from selective_autonomy.controls.service import ControlResult, ControlsOverview, HandControls
    from selective_autonomy.inference.registry import PendingPromotion

stage_app = typer.Typer(
    help="Set a business cluster's stage by hand (the learning loop then holds it), give it back, confirm a "
    "promotion the learning loop proposed, or show stages, pauses, proposals and their history.",
    no_args_is_help=True,
)

ProcessOption = Annotated[str, typer.Option("--process", "-p", help="Process id.")]
ClusterOption = Annotated[str, typer.Option("--cluster", help="Business cluster.")]
ScopeOption = Annotated[
    str | None, typer.Option("--cluster", help="Business cluster; default the whole process (every cluster).")
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why: kept in the history with who and when.")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who; default the login name.")]
PublishOption = Annotated[
    bool, typer.Option("--publish/--no-publish", help="Announce the move on stage.changes (kafka settings).")
]
PublishTimeout = Annotated[
    float,
    typer.Option("--publish-timeout", min=0.1, help="Longest wait for the broker to take the stage.changes event."),
]


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "unknown"


@contextmanager
def _controls(config: Path | None, publish_timeout_s: float | None = None) -> Iterator[HandControls]:
    from selective_autonomy.controls.service import HandControls, kafka_stage_publisher
    from selective_autonomy.inference.registry import ModelRegistry
    from selective_autonomy.store import FeedbackStore

    settings = load_settings(config)
    publish = kafka_stage_publisher(settings, publish_timeout_s) if publish_timeout_s is not None else None
    with FeedbackStore.open(settings.store.resolved_url(settings.data_dir)) as store:
        yield HandControls(ModelRegistry(settings.models_dir), store, publish)


def _run(action: Callable[[], ControlResult]) -> ControlResult:
    try:
        result = action()
    except (ControlError, ValidationError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(result.message)
    if result.published is False:
        typer.echo(
            f"warning: the change is in force (service pointer, store history) but was not published on "
            f"stage.changes: {result.publish_error}",
            err=True,
        )
    elif result.published:
        typer.echo("published on stage.changes")
    return result


def _change(process: str, reason: str, by: str | None) -> HandChange:
    from selective_autonomy.controls.hand import HandChange

    try:
        return HandChange(process_id=process, reason=reason, by=_who(by))
    except ValidationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc


def _apply(
    config: Path | None,
    process: str,
    reason: str,
    by: str | None,
    control: Callable[[HandControls, HandChange], ControlResult],
    publish_timeout_s: float | None = None,
) -> None:
    """Run one hand control of ``process`` (who, why) and print its result; exit 1 when it is refused."""
    change = _change(process, reason, by)
    with _controls(config, publish_timeout_s) as controls:
        _run(lambda: control(controls, change))


@stage_app.command("set")
def stage_set(
    stage: Annotated[Stage, typer.Argument(help="logging, copilot or selective.")],
    process: ProcessOption,
    cluster: ClusterOption,
    reason: ReasonOption,
    by: ByOption = None,
    publish: PublishOption = True,
    publish_timeout: PublishTimeout = 5.0,
    config: ConfigOption = None,
) -> None:
    """Set a cluster's stage by hand. The learning loop never moves it from there until a person sets it
    again or runs `selauto stage release`."""
    _apply(
        config,
        process,
        reason,
        by,
        lambda controls, change: controls.set_stage(change, cluster, stage),
        publish_timeout if publish else None,
    )


@stage_app.command("release")
def stage_release(
    process: ProcessOption,
    cluster: ClusterOption,
    reason: ReasonOption,
    by: ByOption = None,
    config: ConfigOption = None,
) -> None:
    """Give a cluster's stage back to the learning loop (the stage stays until the loop moves it)."""
    _apply(config, process, reason, by, lambda controls, change: controls.release(change, cluster))


@stage_app.command("confirm")
def stage_confirm(
    process: ProcessOption,
    cluster: ClusterOption,
    reason: ReasonOption = "promotion confirmed",
    by: ByOption = None,
    publish: PublishOption = True,
    publish_timeout: PublishTimeout = 5.0,
    config: ConfigOption = None,
) -> None:
    """Confirm the promotion to selective the learning loop proposed for a cluster (learning.promotion =
    confirmed; `selauto stage show` lists them). The cluster runs what the certificate behind the proposal
    passes; the stage stays the loop's, which may still demote it."""
    _apply(
        config,
        process,
        reason,
        by,
        lambda controls, change: controls.confirm(change, cluster),
        publish_timeout if publish else None,
    )


@stage_app.command("show")
def stage_show(
    process: ProcessOption,
    newest: Annotated[int, typer.Option(min=1, help="History entries shown.")] = 20,
    config: ConfigOption = None,
) -> None:
    """Stages, hand holds, pauses and proposed promotions, and the newest hand controls and stage moves."""
    with _controls(config) as controls:
        try:
            view = controls.overview(process, newest)
        except ControlError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from exc
    for line in overview_lines(view):
        typer.echo(line)


def overview_lines(view: ControlsOverview) -> list[str]:
    """``selauto stage show``'s text."""
    from selective_autonomy.inference.registry import WHOLE_PROCESS
    from selective_autonomy.store.models import HandControl

    lines = [f"{view.process_id} (pointer revision {view.pointer_revision})"]
    whole = view.paused.get(WHOLE_PROCESS)
    if whole is not None:
        lines.append(f"  PAUSED (whole process) by {whole.by} at {whole.at:%Y-%m-%d %H:%M}: {whole.reason}")
    for row in view.clusters:
        tags = [] if row.certified else ["no certificate"]
        if row.held_by_hand is not None:
            tags.append(f"held by hand by {row.held_by_hand.by}")
        own = view.paused.get(row.business_cluster)
        if own is not None:
            tags.append(f"PAUSED by {own.by}: {own.reason}")
        lines.append(f"  {row.business_cluster}: {row.stage.value}" + (f" ({'; '.join(tags)})" if tags else ""))
        if row.pending_promotion is not None:
            lines.append(f"    {pending_line(row.pending_promotion)}")
            lines.append(f"      selauto stage confirm --process {view.process_id} --cluster {row.business_cluster}")
    if view.history:
        lines.append("hand controls:")
    for entry in view.history:
        what = entry.control.value
        if entry.control is HandControl.stage and entry.stage is not None:
            what = f"set {entry.stage.value}"
        elif entry.control is HandControl.confirm:
            what = "confirmed the promotion of"
        scope = "the whole process" if entry.scope == WHOLE_PROCESS else entry.scope
        lines.append(f"  {entry.at:%Y-%m-%d %H:%M} {what} {scope} by {entry.changed_by}: {entry.reason}")
    if view.stage_history:
        lines.append("stage moves:")
    for move in view.stage_history:
        moved = f"{move.from_stage.value if move.from_stage else '-'} -> {move.to_stage.value}"
        source = move.changed_by or "learning loop"
        lines.append(f"  {move.at:%Y-%m-%d %H:%M} {move.business_cluster}: {moved} ({source}): {move.reason}")
    return lines


def pending_line(pending: PendingPromotion) -> str:
    """One proposed promotion, as ``selauto stage show`` and ``selauto status`` print it."""
    return (
        f"promotion to selective proposed {pending.proposed_at:%Y-%m-%d %H:%M}, waiting for confirmation: "
        f"{pending.reason} (certificate of {pending.certificate.issued_at:%Y-%m-%d %H:%M}, policy "
        f"{pending.certificate.policy_version})"
    )


def pause(
    process: ProcessOption,
    reason: ReasonOption,
    cluster: ScopeOption = None,
    by: ByOption = None,
    config: ConfigOption = None,
) -> None:
    """Kill switch: nothing of the process (or of one cluster) runs unattended until `selauto resume`.
    Every step that would have run goes to an operator with reason `paused`, within one worker reload."""
    _apply(config, process, reason, by, lambda controls, change: controls.pause(change, cluster))


def resume(
    process: ProcessOption,
    reason: ReasonOption,
    cluster: ScopeOption = None,
    by: ByOption = None,
    config: ConfigOption = None,
) -> None:
    """Lift a pause: of the whole process (no --cluster) or of one cluster; the other pauses stay."""
    _apply(config, process, reason, by, lambda controls, change: controls.resume(change, cluster))
