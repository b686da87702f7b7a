"""Import the ABCD (Action-Based Conversations Dataset) guidelines as a customer-support process.

ABCD's agent guidelines are a realistic definition of a support workflow: 30 UI buttons with typed
slots (``ontology.json``), 10 flows of customer intents, and for each of the 55 subflows the ordered
buttons an agent must press (``kb.json``). This module turns them into

* :func:`abcd_process_schema`: one :class:`ProcessSchema` (``process_id`` ``abcd``) whose controls are
  the 30 buttons with their slots as optional, typed arguments (enums where the ontology lists the
  values) and whose business clusters are the 10 flows;
* :func:`abcd_intent_sequences`: each subflow's required button sequence, for a session simulator;
* :func:`iter_abcd_sample_cases`: the three example conversations of ``abcd_sample.json`` as cases
  (agent utterances are ``send_text`` steps, button presses are control steps, ``close_chat`` ends).

The full conversation corpus is not shipped, so the sample cases exist to test the format end to
end. ABCD has no timestamps: cases use the synthetic clock of
:mod:`selective_autonomy.traces.synthetic` (conversation ``N`` starts ``N`` minutes after the epoch,
turns are 30 s apart).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selective_autonomy.schemas.event_parts import Action, ActionTier, ChatTurn, Scalar, Speaker, UIState
from selective_autonomy.schemas.process import (
    ActionSpec,
    ArgumentSpec,
    BusinessCluster,
    ProcessSchema,
    UIField,
    ValueType,
)
from selective_autonomy.traces.datasets import abcd_data_dir
from selective_autonomy.traces.errors import SourceFormatError
from selective_autonomy.traces.format import Case, TraceStep
from selective_autonomy.traces.synthetic import SYNTHETIC_EPOCH, turn_time

PROCESS_ID = "abcd"
CHAT_TAIL = 10
RECENT_ACTIONS = 20

APPROVAL_REQUIRED = frozenset({"offer-refund", "update-account", "update-order", "make-purchase", "make-password"})
"""Buttons that move money or change an account or order: never pressed without an operator's approval."""

AUTO = frozenset(
    {
        "pull-up-account",
        "verify-identity",
        "validate-purchase",
        "ask-the-oracle",
        "subscription-status",
        "shipping-status",
        "membership",
        "search-faq",
        "search-boots",
        "search-shirt",
        "search-jeans",
        "search-jacket",
        "search-pricing",
        "search-membership",
        "search-timing",
        "search-policy",
        "select-faq",
        "try-again",
        "log-out-in",
        "instructions",
    }
)
"""Look-ups and advice that change nothing: they may run once the gate allows. Every other button
(recording a reason, entering details, sending a link, notifying a team, a promo code) is critical."""

PII_SLOTS = frozenset(
    {
        "customer_name",
        "account_id",
        "username",
        "email",
        "phone",
        "pin_number",
        "security_answer",
        "zip_code",
        "street_address",
        "full_address",
        "order_id",
    }
)

_FREE_FORM_DETAILS = "enter-details"
"""The details form takes any personal or order detail (the sample shows a phone number typed into
it), so it also gets every non-enumerable personal and order slot as an argument."""

_NUMBER_SLOTS = frozenset({"amount"})

_BUTTON_ALIASES = {
    "Membership Privileges": "membership",
    "Select Answer": "select-faq",
    "Notify Internal Team": "notify-team",
    "Log Out/In": "log-out-in",
    "Enter Detail": "enter-details",
    "Boots": "search-boots",
    "Shirt": "search-shirt",
    "Jeans": "search-jeans",
    "Jacket": "search-jacket",
    "Pricing": "search-pricing",
    "Membership": "search-membership",
    "Timing": "search-timing",
    "Policy": "search-policy",
}


class _Abcd(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AbcdIntents(_Abcd):
    flows: list[str]
    subflows: dict[str, list[str]]


class AbcdValues(_Abcd):
    enumerable: dict[str, list[str]]
    non_enumerable: dict[str, list[str]]


class AbcdOntology(_Abcd):
    intents: AbcdIntents
    actions: dict[str, dict[str, list[str]]] = Field(description="category -> button -> slots")
    values: AbcdValues


class IntentSequence(_Abcd):
    """A subflow (customer intent) and the buttons its guideline requires, in order."""

    flow: str
    subflow: str
    actions: tuple[str, ...]


def _read_json(path: Path) -> Any:
    try:
        with gzip.open(path) if path.name.endswith(".gz") else path.open("rb") as raw:
            return json.load(raw)
    except (OSError, ValueError) as error:
        raise SourceFormatError(f"{path}: not a readable ABCD JSON file: {error}") from error


def _file(data_dir: Path | None, stem: str) -> Path:
    folder = data_dir or abcd_data_dir()
    for name in (f"{stem}.json.gz", f"{stem}.json"):
        if (folder / name).is_file():
            return folder / name
    raise SourceFormatError(f"{folder}: no {stem}.json(.gz)")


def read_abcd_ontology(data_dir: Path | None = None) -> AbcdOntology:
    """``ontology.json`` of an ABCD folder (default: the shared data folder)."""
    path = _file(data_dir, "ontology")
    try:
        return AbcdOntology.model_validate(_read_json(path))
    except ValidationError as error:
        raise SourceFormatError(f"{path}: unexpected ontology structure: {error}") from error


def _flow_cluster_id(guideline_name: str) -> str:
    return guideline_name.lower().replace("-", "_").replace(" ", "_")


def _button_name(button: str) -> str:
    return _BUTTON_ALIASES.get(button, button.lower().replace(" ", "-"))


def _guidelines(data_dir: Path | None) -> tuple[dict[str, str], dict[str, str]]:
    """Flow descriptions by cluster id and the first guideline text of each button."""
    raw: dict[str, Any] = _read_json(_file(data_dir, "guidelines"))
    flows: dict[str, str] = {}
    buttons: dict[str, str] = {}
    for flow_name, flow in raw.items():
        flows[_flow_cluster_id(flow_name)] = f"{flow_name}: {flow.get('description', '')}"
        for subflow in flow.get("subflows", {}).values():
            for step in subflow.get("actions", []):
                buttons.setdefault(_button_name(step.get("button", "")), step.get("text", ""))
    return flows, buttons


def _slot_argument(slot: str, ontology: AbcdOntology) -> ArgumentSpec:
    values = ontology.values.enumerable.get(slot)
    pii = slot in PII_SLOTS
    if values:
        return ArgumentSpec(name=slot, type=ValueType.enum, enum=list(values), required=False, pii=pii)
    kind = ValueType.number if slot in _NUMBER_SLOTS else ValueType.string
    return ArgumentSpec(name=slot, type=kind, required=False, pii=pii)


def _button_slots(ontology: AbcdOntology) -> dict[str, tuple[str, list[str]]]:
    """button -> (category, slots), with the free-form details form widened."""
    details = [slot for group in ("personal", "order") for slot in ontology.values.non_enumerable.get(group, [])]
    buttons: dict[str, tuple[str, list[str]]] = {}
    for category, actions in ontology.actions.items():
        for button, slots in actions.items():
            wanted = list(slots)
            if button == _FREE_FORM_DETAILS:
                wanted += [slot for slot in details if slot not in wanted]
            buttons[button] = (category, wanted)
    return buttons


def _tier(button: str) -> ActionTier:
    if button in APPROVAL_REQUIRED:
        return ActionTier.approval_required
    return ActionTier.auto if button in AUTO else ActionTier.critical


def abcd_process_schema(data_dir: Path | None = None) -> ProcessSchema:
    """The ABCD customer-support process: 30 buttons, their slots as fields, the 10 flows as clusters."""
    ontology = read_abcd_ontology(data_dir)
    flow_descriptions, button_texts = _guidelines(data_dir)
    controls = []
    fields: dict[str, UIField] = {}
    for button, (category, slots) in _button_slots(ontology).items():
        arguments = [_slot_argument(slot, ontology) for slot in slots]
        text = button_texts.get(button, "")
        controls.append(
            ActionSpec(name=button, tier=_tier(button), arguments=arguments, description=f"[{category}] {text}".strip())
        )
        for argument in arguments:
            fields.setdefault(
                argument.name,
                UIField(
                    name=argument.name,
                    type=argument.type,
                    enum=argument.enum,
                    pii=argument.pii,
                    description="Last value entered with a button.",
                ),
            )
    clusters = [
        BusinessCluster(
            id=flow,
            description=f"{flow_descriptions.get(flow, flow)} (subflows: {', '.join(ontology.intents.subflows[flow])})",
        )
        for flow in ontology.intents.flows
    ]
    return ProcessSchema(
        process_id=PROCESS_ID,
        description="Customer service of an online clothing store (ABCD agent guidelines, Chen et al. 2021).",
        business_clusters=clusters,
        fields=list(fields.values()),
        controls=controls,
    )


def abcd_intent_sequences(data_dir: Path | None = None) -> dict[str, IntentSequence]:
    """Each subflow's required ordered button sequence (``kb.json``), keyed by subflow name.

    :raises SourceFormatError: if a subflow has no flow or a sequence names an unknown button.
    """
    ontology = read_abcd_ontology(data_dir)
    kb: dict[str, list[str]] = _read_json(_file(data_dir, "kb"))
    flow_of = {subflow: flow for flow, subflows in ontology.intents.subflows.items() for subflow in subflows}
    buttons = _button_slots(ontology)
    sequences = {}
    for subflow, actions in kb.items():
        if subflow not in flow_of:
            raise SourceFormatError(f"kb subflow {subflow!r} belongs to no flow of the ontology")
        unknown = [action for action in actions if action not in buttons]
        if unknown:
            raise SourceFormatError(f"kb subflow {subflow!r} names unknown buttons {unknown}")
        sequences[subflow] = IntentSequence(flow=flow_of[subflow], subflow=subflow, actions=tuple(actions))
    return sequences


def _assign_values(values: list[str], spec: ActionSpec, scenario: dict[str, str]) -> tuple[dict[str, Scalar], int]:
    """Name a button's positional values after its slots; return the arguments and how many stayed unnamed.

    ABCD records only the values. A value is named after the first free slot whose enum lists it
    (case-insensitively), else after the scenario entry (customer profile, order) that holds it.
    """
    arguments: dict[str, Scalar] = {}
    unnamed = 0
    for value in values:
        text = str(value)
        slot = next(
            (
                a
                for a in spec.arguments
                if a.name not in arguments and a.enum and text.lower() in (v.lower() for v in a.enum)
            ),
            None,
        )
        if slot is not None and slot.enum:
            arguments[slot.name] = next(v for v in slot.enum if v.lower() == text.lower())
            continue
        slot = next(
            (a for a in spec.arguments if a.name not in arguments and scenario.get(a.name) == text.lower()), None
        )
        if slot is None:
            unnamed += 1
        elif slot.type is ValueType.number:
            arguments[slot.name] = float(text)
        else:
            arguments[slot.name] = text
    return arguments, unnamed


def _scenario_values(scenario: dict[str, Any]) -> dict[str, str]:
    flat: dict[str, str] = {}
    for group in ("personal", "order"):
        for key, value in scenario.get(group, {}).items():
            flat[key] = str(value).lower()
    return flat


def _conversation_case(convo: dict[str, Any], schema: ProcessSchema) -> Case:
    convo_id = int(convo["convo_id"])
    start = SYNTHETIC_EPOCH + timedelta(minutes=convo_id)
    scenario = convo["scenario"]
    known = _scenario_values(scenario)
    fields: dict[str, Scalar] = {}
    tail: list[ChatTurn] = []
    recent: list[Action] = []
    steps: list[TraceStep] = []
    unnamed = 0
    original, delexed = convo["original"], convo["delexed"]
    if len(original) != len(delexed):
        raise SourceFormatError(f"conversation {convo_id}: 'original' and 'delexed' differ in length")

    def take(action: Action, at_turn: int) -> None:
        ui = UIState(
            fields=dict(fields),
            chat_tail=tail[-CHAT_TAIL:],
            recent_actions=recent[-RECENT_ACTIONS:],
            case_started_at=start,
        )
        steps.append(TraceStep(state=ui, action=action, timestamp=turn_time(start, at_turn)))
        recent.append(action)

    for index, ((speaker, text), turn) in enumerate(zip(original, delexed, strict=True)):
        at = turn_time(start, index)
        if speaker == "agent":
            take(Action(action_type="send_text", arguments={"text": text}), index)
            tail.append(ChatTurn(speaker=Speaker.operator, text=text, at=at))
        elif speaker == "customer":
            tail.append(ChatTurn(speaker=Speaker.customer, text=text, at=at))
        elif speaker == "action":
            button, values = turn["targets"][2], turn["targets"][3]
            spec = schema.action(button)
            if spec is None:
                raise SourceFormatError(f"conversation {convo_id}: unknown button {button!r}")
            arguments, missed = _assign_values(list(values), spec, known)
            unnamed += missed
            take(Action(action_type=button, arguments=arguments), index)
            fields.update(arguments)
            tail.append(ChatTurn(speaker=Speaker.system, text=text, at=at))
        else:
            raise SourceFormatError(f"conversation {convo_id}: unknown speaker {speaker!r}")
    take(Action(action_type="close_chat"), len(original) - 1)
    attributes: dict[str, Scalar] = {"convo_id": convo_id, "subflow": str(delexed[0]["targets"][0])}
    if unnamed:
        attributes["unnamed_values"] = unnamed
    return Case(
        case_id=f"abcd/{convo_id}",
        process_id=PROCESS_ID,
        business_cluster=str(scenario["flow"]),
        started_at=start,
        attributes=attributes,
        steps=steps,
    )


def iter_abcd_sample_cases(data_dir: Path | None = None, schema: ProcessSchema | None = None) -> Iterator[Case]:
    """The example conversations of ``abcd_sample.json`` as cases (see the module docstring).

    Button values that match no slot (by enum or by the scenario) are dropped; the case attribute
    ``unnamed_values`` counts them.
    """
    process = schema or abcd_process_schema(data_dir)
    for convo in _read_json(_file(data_dir, "abcd_sample")):
        yield _conversation_case(convo, process)
