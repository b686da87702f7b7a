"""``selauto process ...`` and ``selauto models ...``: onboard a process and put its models in
service from the command line. Thin commands: each parses its options, opens the registry and the
store from the settings, and calls :mod:`~selective_autonomy.onboarding.processes` or
:mod:`~selective_autonomy.onboarding.deploy`, which do the work (and are tested on their own)."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from selective_autonomy.config import Settings, load_settings
from selective_autonomy.errors import SelautoError
from selective_autonomy.inference.registry import ModelRegistry
from selective_autonomy.onboarding.deploy import deploy, list_models, rollback
from selective_autonomy.onboarding.events import publish_stage_changes
from selective_autonomy.onboarding.processes import add_process, list_processes, read_schema
from selective_autonomy.onboarding.protocol import ChangeOutcome, ChangeRequest, ModelListing
from selective_autonomy.schemas.event_parts import Stage
from selective_autonomy.schemas.identifiers import InvalidIdentifier
from selective_autonomy.store import FeedbackStore
from selective_autonomy.store.models import ModelKind, ServiceChangeKind

process_app = typer.Typer(
    help="Register support processes (their schemas) and see their stages and models.", no_args_is_help=True
)
models_app = typer.Typer(
    help="Put policy and critic artefacts in service, list them, roll back. Workers hot-reload the change.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML settings file (also SELAUTO_CONFIG_FILE); env SELAUTO_* wins over it."),
]
ByOption = Annotated[
    str | None, typer.Option("--by", help="Who makes the change, recorded with it (default: the OS user).")
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why, recorded with the change.")]
ProcessOption = Annotated[str, typer.Option("--process", "-p", help="Process id (as in its schema).")]


@contextmanager
def _opened(config: Path | None) -> Iterator[tuple[Settings, ModelRegistry, FeedbackStore]]:
    """The settings, the models registry and the feedback store; a refusal ends the command with
    its message and exit code 1."""
    try:
        settings = load_settings(config)
        url = settings.store.resolved_url(settings.data_dir)
        with FeedbackStore.open(url) as store:
            yield settings, ModelRegistry(settings.models_dir), store
    except (SelautoError, InvalidIdentifier) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from error


def _request(by: str | None, reason: str) -> ChangeRequest:
    try:
        return ChangeRequest(by=by or _os_user(), reason=reason)
    except ValidationError as error:
        typer.echo(f"error: {error.errors()[0]['loc'][0]}: {error.errors()[0]['msg']}", err=True)
        raise typer.Exit(code=1) from error


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry and no LOGNAME/USER
        return "unknown"


def _report(settings: Settings, outcome: ChangeOutcome) -> None:
    for line in outcome.voided:
        typer.echo(f"  voided: {line}")
    for change in outcome.stage_changes:
        typer.echo(
            f"  {change.business_cluster}: {change.from_stage.value} -> {change.to_stage.value} ({change.reason})"
        )
    for line in outcome.held:
        typer.echo(f"  {line}")
    if outcome.stage_changes:
        failed = publish_stage_changes(settings, outcome.stage_changes)
        if failed is None:
            typer.echo(f"  {len(outcome.stage_changes)} stage change(s) published on {settings.topics.stage_changes}")
        else:
            typer.echo(
                f"warning: stage changes not published on {settings.topics.stage_changes} ({failed}); "
                "the store has them (selauto status)",
                err=True,
            )


def _in_service(outcome: ChangeOutcome) -> str:
    return f"policy {outcome.policy or '-'}, critic {outcome.critic or 'policy-confidence'}"


@process_app.command("add")
def process_add(
    schema: Annotated[
        Path, typer.Argument(help="Process schema YAML (format: selauto schema export).", dir_okay=False)
    ],
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Replace the schema of a registered process; voids its models and certificates."
        ),
    ] = False,
    by: ByOption = None,
    reason: ReasonOption = "",
    config: ConfigOption = None,
) -> None:
    """Register a process from its schema; it starts in stage logging, with no model in service.

    The same schema again changes nothing; another schema for a registered process is refused,
    with what replacing it would void, unless --replace.
    """
    request = _request(by, reason)
    with _opened(config) as (settings, registry, store):
        parsed = read_schema(schema)
        outcome = add_process(registry, store, parsed, request, replace=replace)
        pointer = registry.pointer(parsed.process_id)
        clusters = ", ".join(c.id for c in parsed.business_clusters if pointer.stage(c.id) is Stage.logging) or "none"
        where = f"schema version {parsed.version}, hash {parsed.schema_hash()}, revision {outcome.revision}"
        if not outcome.changed:
            typer.echo(f"process {parsed.process_id} is registered with this schema already ({where}): nothing changed")
            return
        verb = "added process" if outcome.kind is ServiceChangeKind.process_added else "replaced the schema of"
        typer.echo(f"{verb} {parsed.process_id} ({where}); clusters {clusters} in logging")
        _report(settings, outcome)
        typer.echo(
            f"next: train a policy on its traces (selauto train policy --schema "
            f"{registry.process_dir(parsed.process_id) / 'schema.yaml'} --cases CASES --out DIR), then "
            f"selauto models deploy --process {parsed.process_id} --policy DIR/<version>"
        )


@process_app.command("list")
def process_list(config: ConfigOption = None) -> None:
    """Registered processes: schema, models in service and the stage of each business cluster."""
    with _opened(config) as (settings, registry, _store):
        summaries = list_processes(registry)
        if not summaries:
            typer.echo(f"no process in {settings.models_dir}: add one with selauto process add SCHEMA.yaml")
            return
        for p in summaries:
            typer.echo(
                f"{p.process_id} (schema version {p.schema_version}, hash {p.schema_hash}; revision {p.revision}): "
                f"policy {p.policy or '-'}, critic {p.critic or 'policy-confidence'}, thresholds {p.thresholds_version}"
            )
            typer.echo(
                "  "
                + "  ".join(f"{c.cluster}: {c.stage.value}{' (certified)' if c.certified else ''}" for c in p.clusters)
            )


@models_app.command("deploy")
def models_deploy(
    process: ProcessOption,
    policy: Annotated[
        Path | None,
        typer.Option(exists=True, file_okay=False, help="Policy artefact directory (selauto train policy --out)."),
    ] = None,
    critic: Annotated[
        Path | None, typer.Option(exists=True, file_okay=False, help="Critic artefact directory.")
    ] = None,
    by: ByOption = None,
    reason: ReasonOption = "",
    config: ConfigOption = None,
) -> None:
    """Check a policy and/or critic artefact (it loads, and was built for the process's registered
    schema), copy it into the registry and put it in service; workers hot-reload it.

    A new policy or critic voids every certificate earned with the old ones: selective clusters go
    back to copilot until the learning loop certifies the new models. Clusters in logging go to
    copilot once a policy is in service.
    """
    request = _request(by, reason)
    with _opened(config) as (settings, registry, store):
        outcome = deploy(registry, store, process, request, policy=policy, critic=critic, rules=settings.learning)
        if not outcome.changed:
            typer.echo(f"{process}: {_in_service(outcome)} in service already (revision {outcome.revision})")
            return
        typer.echo(f"deployed to {process} (revision {outcome.revision}): {_in_service(outcome)}")
        _report(settings, outcome)
        typer.echo(f"workers load it within their reload interval ({settings.worker.reload_interval_s:g} s)")


@models_app.command("rollback")
def models_rollback(
    process: ProcessOption,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="A policy or critic version: back to the models in service when it last was (selauto models list).",
        ),
    ] = None,
    by: ByOption = None,
    reason: ReasonOption = "",
    config: ConfigOption = None,
) -> None:
    """Back to the policy and critic in service before the current ones (from the pointer history),
    or with --to to those in service when that version last was. Certificates are void as for a
    deploy; a second rollback without --to undoes the first."""
    request = _request(by, reason)
    with _opened(config) as (settings, registry, store):
        outcome = rollback(registry, store, process, request, to=to, rules=settings.learning)
        typer.echo(f"rolled back {process} (revision {outcome.revision}): {_in_service(outcome)}")
        _report(settings, outcome)
        typer.echo(f"workers load it within their reload interval ({settings.worker.reload_interval_s:g} s)")


@models_app.command("list")
def models_list(process: ProcessOption, config: ConfigOption = None) -> None:
    """The policy and critic versions in the registry of a process, which is in service, when and by
    whom each went into service; and the pointer revisions that changed the models in service."""
    with _opened(config) as (_settings, registry, store):
        _print_listing(list_models(registry, store, process))


def _print_listing(listing: ModelListing) -> None:
    for kind, title in ((ModelKind.policy, "policies"), (ModelKind.critic, "critics")):
        rows = [r for r in listing.versions if r.kind is kind]
        typer.echo(
            f"{title}:"
            if rows
            else f"{title}: none" + (" (the policy's confidence judges)" * (kind is ModelKind.critic))
        )
        for row in rows:
            mark = "*" if row.in_service else " "
            deployed = (
                f"{row.how} {row.deployed_at:%Y-%m-%d %H:%M:%S} by {row.deployed_by}"
                if row.deployed_at is not None
                else row.how or "never in service"
            )
            typer.echo(
                f" {mark} {row.version}  {row.artefact_kind}, created {row.created_at:%Y-%m-%d %H:%M:%S}, "
                f"{row.train_cases} training cases; {deployed}"
            )
    typer.echo("model changes (pointer revisions):")
    for entry in listing.history:
        change = entry.change
        who = (
            f"{change.kind} by {change.changed_by} at {change.at:%Y-%m-%d %H:%M:%S}"
            + (f": {change.reason}" if change.reason else "")
            if change is not None
            else "the learning loop (no hand change recorded)"
        )
        typer.echo(
            f"  r{entry.revision}: policy {entry.policy or '-'}, critic {entry.critic or 'policy-confidence'}; {who}"
        )
    typer.echo("* in service")
