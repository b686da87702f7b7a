"""The JSON API: thin routes over :class:`InboxService`, :class:`AnswerService`,
:class:`AuditAnswerService` and :class:`ConsoleControls` (the hand controls).

Every route refuses an anonymous caller with 401 before its body is read. Errors are
:class:`ErrorResponse` bodies: 400 a body that is not JSON, 401 anonymous or wrong token, 403 CSRF,
or a hand control by an operator who is not a supervisor, 404 no such card, audit or process, 409
card or audit gone, nothing to resume, release or confirm, or a promotion a pause holds, 422
invalid body, an id in the path that breaks its pattern, an action the grammar refuses (its
messages in ``violations``) or a cluster the process does not have, 503 the broker did not
acknowledge the answer, or the store is unavailable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, HTTPException, Path
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from selective_autonomy.console.deps import ApiCaller, AuthenticatedRoute, Context
from selective_autonomy.console.protocol import (
    AcceptRequest,
    AlternativeRequest,
    AnswerResponse,
    AuditAnswerResponse,
    AuditRightRequest,
    AuditsView,
    AuditView,
    AuditWrongRequest,
    CardView,
    ConfirmRequest,
    ControlResponse,
    ControlsView,
    CorrectRequest,
    CountersView,
    InboxView,
    PauseRequest,
    ReleaseRequest,
    ResumeRequest,
    StageRequest,
)
from selective_autonomy.schemas.grammar import action_json_schema
from selective_autonomy.schemas.identifiers import OPAQUE_ID_MAX, OPAQUE_ID_PATTERN, PROCESS_ID_MAX, PROCESS_ID_PATTERN
from selective_autonomy.webapi.errors import ErrorResponse

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": description}
    for code, description in (
        (400, "The body is not JSON."),
        (401, "No or a wrong bearer token (or session)."),
        (
            403,
            "A session-authenticated request without its CSRF token, or a hand control by an operator who is "
            "not a supervisor.",
        ),
        (404, "No such pending card or audit, or no such process for this operator."),
        (
            409,
            "The card or audit is gone, the state version is not the one shown, there is nothing to resume, "
            "release or confirm, or a pause or a stage set by hand holds the promotion to confirm.",
        ),
        (
            422,
            "An invalid body or path id, an action the process's grammar refuses (see violations), or a "
            "business cluster the process does not have.",
        ),
        (503, "The broker did not acknowledge the answer, or the feedback store is unavailable; retry."),
    )
}

# Documents the way in; the check itself is deps.api_identity's (a bearer token or a session cookie),
# so auto_error is off and the value is not used.
_bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth", description="Authorization: Bearer <operator token>.")

router = APIRouter(
    prefix="/api", tags=["api"], responses=ERRORS, dependencies=[Depends(_bearer)], route_class=AuthenticatedRoute
)

# Ids in paths are looked up, never used as paths; the patterns refuse control characters (422).
DeferralId = Annotated[str, Path(pattern=OPAQUE_ID_PATTERN, max_length=OPAQUE_ID_MAX)]
ActionId = Annotated[str, Path(pattern=OPAQUE_ID_PATTERN, max_length=OPAQUE_ID_MAX)]
ProcessIdPath = Annotated[str, Path(pattern=PROCESS_ID_PATTERN, max_length=PROCESS_ID_MAX)]

View = TypeVar("View")


async def _pending(read: Callable[[str, str], View | None], operator_id: str, item_id: str, what: str) -> View:
    """``read(operator_id, item_id)`` run off the event loop (rendering the masked view is CPU work); 404 when
    it gives None, as it does alike for an item that is not pending and for one of a process the operator does
    not answer for, so the answer tells nothing of other operators' processes."""
    view = await run_in_threadpool(read, operator_id, item_id)
    if view is None:
        raise HTTPException(status_code=404, detail=f"{what} {item_id} is not pending")
    return view


@router.get("/inbox")
async def inbox(ctx: Context, caller: ApiCaller) -> InboxView:
    """Pending deferrals of the caller's processes, oldest first, with the header counters."""
    return await run_in_threadpool(ctx.reader.inbox_view, caller.operator_id)


@router.get("/counters")
async def counters(ctx: Context, caller: ApiCaller) -> CountersView:
    return await run_in_threadpool(ctx.reader.counters, caller.operator_id)


@router.get("/deferrals/{deferral_id}")
async def deferral(deferral_id: DeferralId, ctx: Context, caller: ApiCaller) -> CardView:
    return await _pending(ctx.reader.card, caller.operator_id, deferral_id, "deferral")


@router.get("/processes/{process_id}/action-schema")
async def action_schema(process_id: ProcessIdPath, ctx: Context, caller: ApiCaller) -> dict[str, Any]:
    """JSON Schema of the actions an operator may send for this process."""
    visibility = ctx.reader.visibility(caller.operator_id)
    schema = ctx.catalog.schema(process_id)
    if schema is None or (visibility is not None and process_id not in visibility):
        raise HTTPException(status_code=404, detail=f"no process schema for {process_id!r}")
    return action_json_schema(schema)


@router.post("/deferrals/{deferral_id}/accept")
async def accept(
    deferral_id: DeferralId, ctx: Context, caller: ApiCaller, body: Annotated[AcceptRequest | None, Body()] = None
) -> AnswerResponse:
    """Execute the suggestion as the operator's action; feedback verdict ``accepted``."""
    visibility = ctx.reader.visibility(caller.operator_id)
    return await run_in_threadpool(
        ctx.answers.accept, deferral_id, caller.operator_id, visibility, body or AcceptRequest()
    )


@router.post("/deferrals/{deferral_id}/correct")
async def correct(deferral_id: DeferralId, ctx: Context, caller: ApiCaller, body: CorrectRequest) -> AnswerResponse:
    """Execute the operator's action instead of the suggestion; feedback verdict ``corrected``."""
    visibility = ctx.reader.visibility(caller.operator_id)
    return await run_in_threadpool(ctx.answers.correct, deferral_id, caller.operator_id, visibility, body)


@router.post("/deferrals/{deferral_id}/alternative")
async def alternative(
    deferral_id: DeferralId, ctx: Context, caller: ApiCaller, body: AlternativeRequest
) -> AnswerResponse:
    """The suggestion was fine too; the operator's action executes; verdict ``acceptable_alternative``."""
    visibility = ctx.reader.visibility(caller.operator_id)
    return await run_in_threadpool(ctx.answers.alternative, deferral_id, caller.operator_id, visibility, body)


# -- audits of unattended steps ---------------------------------------------------------------------


@router.get("/audits")
async def audits(ctx: Context, caller: ApiCaller) -> AuditsView:
    """Unattended steps of the caller's processes waiting for an audit, oldest first."""
    return await run_in_threadpool(ctx.reader.audits_view, caller.operator_id)


@router.get("/audits/{action_id}")
async def audit(action_id: ActionId, ctx: Context, caller: ApiCaller) -> AuditView:
    return await _pending(ctx.reader.audit, caller.operator_id, action_id, "audit")


@router.post("/audits/{action_id}/right")
async def audit_right(
    action_id: ActionId, ctx: Context, caller: ApiCaller, body: Annotated[AuditRightRequest | None, Body()] = None
) -> AuditAnswerResponse:
    """The step was right: publishes audit feedback with verdict ``accepted``; nothing is executed."""
    visibility = ctx.reader.visibility(caller.operator_id)
    return await run_in_threadpool(
        ctx.audit_answers.right, action_id, caller.operator_id, visibility, body or AuditRightRequest()
    )


@router.post("/audits/{action_id}/wrong")
async def audit_wrong(
    action_id: ActionId, ctx: Context, caller: ApiCaller, body: AuditWrongRequest
) -> AuditAnswerResponse:
    """The step was wrong: publishes audit feedback with verdict ``corrected`` and the operator's
    action (checked against the grammar); nothing is executed."""
    visibility = ctx.reader.visibility(caller.operator_id)
    return await run_in_threadpool(ctx.audit_answers.wrong, action_id, caller.operator_id, visibility, body)


# -- hand controls: stages and pauses set by hand, promotions confirmed ------------------------------


@router.get("/processes/{process_id}/controls")
async def controls(process_id: ProcessIdPath, ctx: Context, caller: ApiCaller) -> ControlsView:
    """Stages, holds and pauses in force for the process, and the newest hand controls and stage moves."""
    visibility = ctx.reader.visibility(caller.operator_id)
    return await run_in_threadpool(ctx.controls.view, caller.operator_id, visibility, process_id)


@router.post("/processes/{process_id}/stage")
async def set_stage(process_id: ProcessIdPath, ctx: Context, caller: ApiCaller, body: StageRequest) -> ControlResponse:
    """Supervisors: set a cluster's stage; the learning loop holds it there until it is set again or released.
    A move is announced on ``stage.changes`` (``published`` says whether the broker took it)."""
    visibility = ctx.reader.visibility(caller.operator_id)
    return await run_in_threadpool(ctx.controls.set_stage, caller.operator_id, visibility, process_id, body)


@router.post("/processes/{process_id}/stage/release")
async def release_stage(
    process_id: ProcessIdPath, ctx: Context, caller: ApiCaller, body: ReleaseRequest
) -> ControlResponse:
    """Supervisors: give a cluster's stage back to the learning loop."""
    visibility = ctx.reader.visibility(caller.operator_id)
    return await run_in_threadpool(ctx.controls.release, caller.operator_id, visibility, process_id, body)


@router.post("/processes/{process_id}/stage/confirm")
async def confirm_promotion(
    process_id: ProcessIdPath, ctx: Context, caller: ApiCaller, body: ConfirmRequest
) -> ControlResponse:
    """Supervisors: confirm the promotion to selective the learning loop proposed for a cluster
    (``learning.promotion = confirmed``; the controls list them). The cluster runs what the certificate behind
    the proposal passes; the move is announced on ``stage.changes``. 409 ``nothing_to_change`` when no promotion
    is pending (or its certificate was replaced), 409 ``held`` while the cluster is paused or held by hand."""
    visibility = ctx.reader.visibility(caller.operator_id)
    return await run_in_threadpool(ctx.controls.confirm, caller.operator_id, visibility, process_id, body)


@router.post("/processes/{process_id}/pause")
async def pause(process_id: ProcessIdPath, ctx: Context, caller: ApiCaller, body: PauseRequest) -> ControlResponse:
    """Supervisors: the kill switch. Nothing of the process (or of one cluster) runs unattended until resumed;
    each step that would have run goes to an operator with reason ``paused``, within one worker reload."""
    visibility = ctx.reader.visibility(caller.operator_id)
    return await run_in_threadpool(ctx.controls.pause, caller.operator_id, visibility, process_id, body)


@router.post("/processes/{process_id}/resume")
async def resume(process_id: ProcessIdPath, ctx: Context, caller: ApiCaller, body: ResumeRequest) -> ControlResponse:
    """Supervisors: lift the pause of the process (no cluster) or of one cluster; the other pauses stay."""
    visibility = ctx.reader.visibility(caller.operator_id)
    return await run_in_threadpool(ctx.controls.resume, caller.operator_id, visibility, process_id, body)
