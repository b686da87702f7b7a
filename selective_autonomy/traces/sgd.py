"""Import the Schema-Guided Dialogue (SGD) dataset: each service becomes a process, each dialogue cases.

SGD is the public dataset closest to this project's setting: a system agent acts on a schema of
services (intents with typed slots) while talking to a user, and every system turn lists its
dialogue acts and service calls, i.e. the next-action targets. The importer maps:

* a service of ``schema.json`` -> a :class:`ProcessSchema` (``process_id`` ``sgd.<service>``): its
  slots are fields, its intents are controls (service calls, typed arguments from the intent's
  slots; transactional intents need approval), and the system's dialogue acts are controls too
  (``GOODBYE`` is ``close_chat``);
* a dialogue -> one :class:`Case` per service it uses (``<split>/<dialogue_id>`` when it uses one
  service, ``<split>/<dialogue_id>/<service>`` otherwise). Splitting by service keeps the
  multi-service dialogues (more than half of SGD) while each case follows one process schema; the
  utterances of the whole dialogue stay in the chat tail. A case of a service the dialogue leaves
  ends where its last system frame does, without ``close_chat``.

At a system turn the state before is the user's dialogue state for the service so far (active
intent, requested slots and first value of every filled slot), the last utterances and the previous
actions. The turn's service call comes first, then its dialogue acts, each a step: the acts
(``OFFER``, ``NOTIFY_SUCCESS``, ``INFORM_COUNT``...) report the call's results, so the call must
happen before them.

SGD has no timestamps. Cases get a synthetic clock (see :mod:`selective_autonomy.traces.synthetic`):
dialogue ``F_NNNNN`` starts ``F * 10000 + NNNNN`` minutes after 2019-03-01T00:00Z, so the order of
start times is the corpus order, and turn ``t`` happens ``30 s * t`` after the start.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from selective_autonomy.schemas.event_parts import Action, ActionTier, ChatTurn, Scalar, Speaker, UIState
from selective_autonomy.schemas.process import (
    ActionSpec,
    ArgumentSpec,
    BusinessCluster,
    ProcessSchema,
    UIField,
    ValueType,
)
from selective_autonomy.traces.errors import SourceFormatError
from selective_autonomy.traces.format import Case, TraceStep
from selective_autonomy.traces.synthetic import SYNTHETIC_EPOCH, turn_time

CHAT_TAIL = 10
"""Utterances kept in a state's chat tail."""

RECENT_ACTIONS = 20

NO_INTENT = "NONE"
"""SGD's active intent before the user states one."""

DONT_CARE = "dontcare"
"""SGD's value for a slot the user has no preference on (appears in the dialogue state only)."""

GENERAL_CLUSTER = "general"
"""Cluster of a case whose user never states an intent for its service."""

ACTIVE_INTENT_FIELD = "active_intent"
REQUESTED_SLOTS_FIELD = "requested_slots"

_SLOT_ACTS = ("INFORM", "REQUEST", "CONFIRM", "OFFER")
_TIERS: dict[str, ActionTier] = {
    # Telling the user something or asking a question changes nothing in the back end.
    "INFORM": ActionTier.auto,
    "INFORM_COUNT": ActionTier.auto,
    "REQUEST": ActionTier.auto,
    "REQ_MORE": ActionTier.auto,
    "NOTIFY_SUCCESS": ActionTier.auto,
    "NOTIFY_FAILURE": ActionTier.auto,
    # Proposing an option or asking to confirm steers the conversation towards a transaction.
    "OFFER": ActionTier.critical,
    "OFFER_INTENT": ActionTier.critical,
    "CONFIRM": ActionTier.critical,
}
_ACT_DESCRIPTIONS = {
    "INFORM": "Tell the user the value of a slot.",
    "INFORM_COUNT": "Tell the user how many results the service call found.",
    "REQUEST": "Ask the user for the value of a slot.",
    "REQ_MORE": "Ask whether the user needs anything else.",
    "NOTIFY_SUCCESS": "Tell the user the transaction succeeded.",
    "NOTIFY_FAILURE": "Tell the user the transaction failed.",
    "OFFER": "Propose a value for a slot (one of the service call's results).",
    "OFFER_INTENT": "Propose a new intent (e.g. to book what was found).",
    "CONFIRM": "Ask the user to confirm a slot value before a transaction.",
}
_GOODBYE = "GOODBYE"
_END_ACTION = "close_chat"


class _Sgd(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SgdSlot(_Sgd):
    name: str
    description: str = ""
    is_categorical: bool = False
    possible_values: list[str] = Field(default_factory=list)


class SgdIntent(_Sgd):
    name: str
    description: str = ""
    is_transactional: bool = False
    required_slots: list[str] = Field(default_factory=list)
    optional_slots: dict[str, str] = Field(default_factory=dict)


class SgdService(_Sgd):
    service_name: str
    description: str = ""
    slots: list[SgdSlot]
    intents: list[SgdIntent]


class SgdAct(_Sgd):
    act: str
    slot: str = ""
    canonical_values: list[str] = Field(default_factory=list)


class SgdServiceCall(_Sgd):
    method: str
    parameters: dict[str, str] = Field(default_factory=dict)


class SgdState(_Sgd):
    active_intent: str = NO_INTENT
    requested_slots: list[str] = Field(default_factory=list)
    slot_values: dict[str, list[str]] = Field(default_factory=dict)


class SgdFrame(_Sgd):
    service: str
    actions: list[SgdAct] = Field(default_factory=list)
    service_call: SgdServiceCall | None = None
    state: SgdState | None = None


class SgdTurn(_Sgd):
    speaker: Literal["USER", "SYSTEM"]
    utterance: str
    frames: list[SgdFrame]


class SgdDialogue(_Sgd):
    dialogue_id: str
    services: list[str]
    turns: list[SgdTurn]


T = TypeVar("T")

_SERVICES = TypeAdapter(list[SgdService])
_DIALOGUES = TypeAdapter(list[SgdDialogue])


def _read_json_list(path: Path, adapter: TypeAdapter[list[T]]) -> list[T]:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path) as compressed:
                return adapter.validate_json(compressed.read())
        return adapter.validate_json(path.read_bytes())
    except (ValidationError, OSError) as error:
        raise SourceFormatError(f"{path}: not an SGD file of the expected shape: {error}") from error


def read_sgd_services(schema_path: Path | str) -> list[SgdService]:
    """The services of an SGD ``schema.json`` (or ``.json.gz``)."""
    return _read_json_list(Path(schema_path), _SERVICES)


def read_sgd_dialogues(path: Path | str) -> list[SgdDialogue]:
    """The dialogues of one SGD ``dialogues_NNN.json`` (or ``.json.gz``)."""
    return _read_json_list(Path(path), _DIALOGUES)


def sgd_process_id(service_name: str) -> str:
    return f"sgd.{service_name}"


def _slot_type(slot: SgdSlot, *, state: bool = False) -> tuple[ValueType, list[str] | None]:
    """Type of a slot; in the dialogue state a categorical slot may also hold ``dontcare``."""
    if slot.is_categorical and slot.possible_values:
        extra = [DONT_CARE] if state and DONT_CARE not in slot.possible_values else []
        return ValueType.enum, [*slot.possible_values, *extra]
    return ValueType.string, None


def _intent_spec(intent: SgdIntent, slots: dict[str, SgdSlot]) -> ActionSpec:
    arguments = []
    for name in intent.required_slots:
        kind, values = _slot_type(slots[name])
        arguments.append(ArgumentSpec(name=name, type=kind, enum=values, description=slots[name].description))
    for name, default in intent.optional_slots.items():
        kind, values = _slot_type(slots[name])
        why = f"{slots[name].description} (default {default!r})"
        arguments.append(ArgumentSpec(name=name, type=kind, enum=values, required=False, description=why))
    tier = ActionTier.approval_required if intent.is_transactional else ActionTier.critical
    return ActionSpec(
        name=intent.name, tier=tier, arguments=arguments, description=f"Service call: {intent.description}"
    )


def _act_specs(service: SgdService) -> list[ActionSpec]:
    slot_names = sorted(slot.name for slot in service.slots)
    specs = []
    for act in sorted(_TIERS):
        if act in _SLOT_ACTS:
            arguments = [
                ArgumentSpec(name="slot", type=ValueType.enum, enum=slot_names),
                ArgumentSpec(name="value", required=False, description="Canonical value(s), '|'-joined if several."),
            ]
        elif act == "INFORM_COUNT":
            arguments = [ArgumentSpec(name="count", type=ValueType.integer)]
        elif act == "OFFER_INTENT":
            arguments = [ArgumentSpec(name="intent", type=ValueType.enum, enum=[i.name for i in service.intents])]
        else:
            arguments = []
        specs.append(ActionSpec(name=act, tier=_TIERS[act], arguments=arguments, description=_ACT_DESCRIPTIONS[act]))
    return specs


def sgd_process_schema(service: SgdService) -> ProcessSchema:
    """The process schema of one SGD service (see the module docstring for the mapping)."""
    slots = {slot.name: slot for slot in service.slots}
    fields = []
    for slot in service.slots:
        kind, values = _slot_type(slot, state=True)
        fields.append(UIField(name=slot.name, type=kind, enum=values, description=slot.description))
    intents = [intent.name for intent in service.intents]
    fields.append(
        UIField(
            name=ACTIVE_INTENT_FIELD,
            type=ValueType.enum,
            enum=[NO_INTENT, *intents],
            description="The intent the user is pursuing (dialogue state).",
        )
    )
    fields.append(
        UIField(name=REQUESTED_SLOTS_FIELD, description="Slots the user asked about, comma-separated (dialogue state).")
    )
    clusters = [BusinessCluster(id=intent.name, description=intent.description) for intent in service.intents]
    clusters.append(BusinessCluster(id=GENERAL_CLUSTER, description="The user never stated an intent."))
    return ProcessSchema(
        process_id=sgd_process_id(service.service_name),
        description=f"SGD service {service.service_name}: {service.description}",
        business_clusters=clusters,
        fields=fields,
        controls=[*(_intent_spec(intent, slots) for intent in service.intents), *_act_specs(service)],
    )


def load_sgd_schemas(schema_path: Path | str) -> dict[str, ProcessSchema]:
    """Process schemas of every service in an SGD ``schema.json``, keyed by service name."""
    return {service.service_name: sgd_process_schema(service) for service in read_sgd_services(schema_path)}


def dialogue_start(dialogue_id: str) -> datetime:
    """Synthetic start time of a dialogue (``F_NNNNN`` -> epoch + ``F * 10000 + NNNNN`` minutes)."""
    try:
        file_number, index = (int(part) for part in dialogue_id.split("_"))
    except ValueError as error:
        raise SourceFormatError(f"dialogue id {dialogue_id!r} is not of the form F_NNNNN") from error
    return SYNTHETIC_EPOCH + timedelta(minutes=file_number * 10_000 + index)


def _act_action(act: SgdAct) -> Action:
    values = act.canonical_values
    if act.act in _SLOT_ACTS:
        arguments: dict[str, Scalar] = {"slot": act.slot}
        if values:
            arguments["value"] = "|".join(values)
        return Action(action_type=act.act, arguments=arguments)
    if act.act == "INFORM_COUNT":
        return Action(action_type=act.act, arguments={"count": int(values[0])})
    if act.act == "OFFER_INTENT":
        return Action(action_type=act.act, arguments={"intent": values[0]})
    if act.act == _GOODBYE:
        return Action(action_type=_END_ACTION)
    if act.act in _TIERS:
        return Action(action_type=act.act)
    raise SourceFormatError(f"unknown system dialogue act {act.act!r}")


def turn_actions(frame: SgdFrame) -> list[Action]:
    """The actions of one system frame: its service call, then its dialogue acts."""
    actions = []
    if frame.service_call is not None:
        call = frame.service_call
        actions.append(Action(action_type=call.method, arguments=dict(call.parameters)))
    actions.extend(_act_action(act) for act in frame.actions)
    return actions


def _state_fields(state: SgdState | None) -> dict[str, Scalar]:
    if state is None:
        return {}
    fields: dict[str, Scalar] = {slot: values[0] for slot, values in sorted(state.slot_values.items()) if values}
    fields[ACTIVE_INTENT_FIELD] = state.active_intent
    if state.requested_slots:
        fields[REQUESTED_SLOTS_FIELD] = ",".join(sorted(state.requested_slots))
    return fields


def _service_frame(turn: SgdTurn, service: str) -> SgdFrame | None:
    return next((frame for frame in turn.frames if frame.service == service), None)


def dialogue_cases(dialogue: SgdDialogue, prefix: str = "") -> Iterator[Case]:
    """The cases of one dialogue: one per service that has at least one system frame."""
    start = dialogue_start(dialogue.dialogue_id)
    tail_turns = [
        ChatTurn(
            speaker=Speaker.customer if turn.speaker == "USER" else Speaker.operator,
            text=turn.utterance,
            at=turn_time(start, index),
        )
        for index, turn in enumerate(dialogue.turns)
    ]
    single = len(dialogue.services) == 1
    for service in dialogue.services:
        state: SgdState | None = None
        cluster: str | None = None
        recent: list[Action] = []
        steps: list[TraceStep] = []
        for index, turn in enumerate(dialogue.turns):
            frame = _service_frame(turn, service)
            if frame is None:
                continue
            if turn.speaker == "USER":
                state = frame.state or state
                if cluster is None and state is not None and state.active_intent != NO_INTENT:
                    cluster = state.active_intent
                continue
            fields = _state_fields(state)
            tail = tail_turns[max(0, index - CHAT_TAIL) : index]
            for sub_step, action in enumerate(turn_actions(frame)):
                ui = UIState(
                    fields=fields, chat_tail=tail, recent_actions=recent[-RECENT_ACTIONS:], case_started_at=start
                )
                steps.append(TraceStep(state=ui, action=action, timestamp=turn_time(start, index, sub_step)))
                recent.append(action)
        if not steps:
            continue
        yield Case(
            case_id=f"{prefix}{dialogue.dialogue_id}" + ("" if single else f"/{service}"),
            process_id=sgd_process_id(service),
            business_cluster=cluster or GENERAL_CLUSTER,
            started_at=start,
            attributes={"dialogue_id": dialogue.dialogue_id, "service": service},
            steps=steps,
        )


def iter_sgd_cases(paths: Iterable[Path | str], *, limit_dialogues: int | None = None) -> Iterator[Case]:
    """Cases of the dialogues in SGD dialogue files, in file order.

    Case ids start with the split folder's name (``dev/``, ``train/``), since dialogue ids repeat
    across splits.

    :param limit_dialogues: stop after this many dialogues in total (default: all); for quick slices.
    """
    seen = 0
    for path in paths:
        source = Path(path)
        for dialogue in read_sgd_dialogues(source):
            if limit_dialogues is not None and seen >= limit_dialogues:
                return
            seen += 1
            yield from dialogue_cases(dialogue, prefix=f"{source.parent.name}/")


def sgd_dialogue_files(split_dir: Path | str) -> list[Path]:
    """The dialogue files of an SGD split folder, in order (``schema.json`` excluded)."""
    files = sorted(Path(split_dir).glob("dialogues_*.json*"))
    if not files:
        raise SourceFormatError(f"{split_dir}: no dialogues_*.json(.gz) files")
    return files
