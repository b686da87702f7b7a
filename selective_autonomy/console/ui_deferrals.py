"""The HTML side of deferrals: the correction forms (htmx fragments) and the answers from the page.

Form answers build the same pydantic bodies as the JSON API and call the same service; success
removes the card, 409 removes it with a notice, 422 shows the grammar's messages in the form.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from selective_autonomy.console.auth import Identity
from selective_autonomy.console.cards import action_options, argument_fields
from selective_autonomy.console.context import ConsoleContext
from selective_autonomy.console.deps import Context, PageCaller, first, read_form
from selective_autonomy.console.errors import ConsoleError
from selective_autonomy.console.htmx import arguments_fragment, form_action, form_errors, gone, refused, toast
from selective_autonomy.console.protocol import (
    AcceptRequest,
    AlternativeRequest,
    AnswerResponse,
    CardView,
    CorrectRequest,
)
from selective_autonomy.schemas.event_parts import Verdict

router = APIRouter(tags=["ui"], include_in_schema=False)


def _pending_view(ctx: ConsoleContext, caller: Identity, deferral_id: str) -> CardView | None:
    return ctx.reader.card(caller.operator_id, deferral_id)


@router.get("/ui/deferrals/{deferral_id}/form", response_class=HTMLResponse)
async def answer_form(
    deferral_id: str, ctx: Context, caller: PageCaller, mode: Annotated[str, Query(pattern="^(correct|alternative)$")]
) -> Response:
    card = _pending_view(ctx, caller, deferral_id)
    if card is None:
        return gone("This deferral was answered or moved on.")
    schema = ctx.catalog.schema(card.process_id)
    allowed = Verdict.corrected if mode == "correct" else Verdict.acceptable_alternative
    if schema is None or allowed not in card.answers:
        return refused("Not possible here.", "warn")
    action_type = ""
    prefill = None
    if card.suggestion is not None and schema.action(card.suggestion.action_type) is not None:
        action_type, prefill = card.suggestion.action_type, card.suggestion.arguments
    fields = argument_fields(schema, action_type, prefill) if action_type else []
    return HTMLResponse(ctx.views.form(card, mode, action_options(schema), action_type, fields))


@router.get("/ui/deferrals/{deferral_id}/arguments", response_class=HTMLResponse)
async def argument_inputs(
    deferral_id: str, ctx: Context, caller: PageCaller, action_type: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    card = _pending_view(ctx, caller, deferral_id)
    if card is None:
        return gone("This deferral was answered or moved on.")
    prefill = card.suggestion.arguments if card.suggestion and card.suggestion.action_type == action_type else None
    return arguments_fragment(ctx, card, action_type, prefill)


# -- answers from the page ------------------------------------------------------------------------


def _state_version(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


async def _answered(ctx: ConsoleContext, call: str, *args: object) -> Response:
    try:
        result: AnswerResponse = await run_in_threadpool(getattr(ctx.answers, call), *args)
    except ConsoleError as exc:
        if exc.status_code == 409:
            return gone("Already answered, or the session moved on.")
        if exc.status_code == 422 and call != "accept":
            return form_errors(ctx, exc.messages)
        if exc.status_code == 422:
            # Accepting has no form: a toast says why, with the messages in the (unswapped) body.
            return HTMLResponse(
                ctx.views.errors(exc.messages),
                status_code=422,
                headers={"HX-Reswap": "none", "HX-Trigger": toast(exc.message, "error")},
            )
        return refused(exc.message, status_code=exc.status_code)
    verb = {"accepted": "Accepted", "corrected": "Corrected", "acceptable_alternative": "Done"}[result.verdict.value]
    # After the swap, like audit answers: the live stream may already have removed the card.
    return Response(
        status_code=200, headers={"HX-Trigger-After-Swap": toast(f"{verb}: {result.executed_action.action_type}")}
    )


@router.post("/ui/deferrals/{deferral_id}/accept")
async def accept_from_page(deferral_id: str, request: Request, ctx: Context, caller: PageCaller) -> Response:
    form = await read_form(request)
    body = AcceptRequest(state_version=_state_version(first(form, "state_version")))
    visibility = ctx.reader.visibility(caller.operator_id)
    return await _answered(ctx, "accept", deferral_id, caller.operator_id, visibility, body)


@router.post("/ui/deferrals/{deferral_id}/correct")
async def correct_from_page(deferral_id: str, request: Request, ctx: Context, caller: PageCaller) -> Response:
    return await _own_action(deferral_id, request, ctx, caller, Verdict.corrected)


@router.post("/ui/deferrals/{deferral_id}/alternative")
async def alternative_from_page(deferral_id: str, request: Request, ctx: Context, caller: PageCaller) -> Response:
    return await _own_action(deferral_id, request, ctx, caller, Verdict.acceptable_alternative)


async def _own_action(
    deferral_id: str, request: Request, ctx: ConsoleContext, caller: Identity, verdict: Verdict
) -> Response:
    form = await read_form(request)
    visibility = ctx.reader.visibility(caller.operator_id)
    card = ctx.inbox.get(deferral_id, visibility)
    if card is None:
        return gone("Already answered, or the session moved on.")
    action = form_action(ctx, card.process_id, form)
    if action is None:
        return form_errors(ctx, ["choose an action"])
    version = _state_version(first(form, "state_version"))
    if verdict is Verdict.corrected:
        body: CorrectRequest | AlternativeRequest = CorrectRequest(action=action, state_version=version)
        return await _answered(ctx, "correct", deferral_id, caller.operator_id, visibility, body)
    body = AlternativeRequest(action=action, state_version=version)
    return await _answered(ctx, "alternative", deferral_id, caller.operator_id, visibility, body)
