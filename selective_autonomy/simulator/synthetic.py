"""Synthetic support sessions from the ABCD guidelines, for a process that has no history yet.

Each session picks a customer intent (an ABCD subflow) and follows the button sequence its
guideline requires (:func:`~selective_autonomy.traces.abcd.abcd_intent_sequences`), with optional
operator noise: a required step skipped, two neighbours swapped, or a wrong button pressed in
between, each with a small probability from a seeded RNG. Button slots get values from the
ontology's enumerations (one customer profile per session, so the same customer name recurs);
free-form slots (ids, addresses) stay empty. Every session ends with ``close_chat``; its business
cluster is the intent's flow. Every action is checked with
:func:`~selective_autonomy.schemas.grammar.validate_action`, so the cases are valid under
:func:`~selective_autonomy.traces.abcd.abcd_process_schema`.

States are built like the ABCD importer's: the fields hold the last value entered for each slot,
the chat tail holds the customer's opening message and one system line per button, and the
recent actions are the buttons pressed so far.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.schemas.event_parts import Action, ChatTurn, Scalar, Speaker, UIState
from selective_autonomy.schemas.grammar import validate_action
from selective_autonomy.schemas.process import ProcessSchema, ValueType
from selective_autonomy.simulator.errors import SimulatorError
from selective_autonomy.traces.abcd import (
    CHAT_TAIL,
    PROCESS_ID,
    RECENT_ACTIONS,
    IntentSequence,
    abcd_intent_sequences,
    abcd_process_schema,
)
from selective_autonomy.traces.format import Case, TraceStep
from selective_autonomy.traces.synthetic import SYNTHETIC_EPOCH

END_ACTION = "close_chat"


class NoiseConfig(BaseModel):
    """Probabilities of operator slips, applied independently per required step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    skip_rate: float = Field(default=0.02, ge=0.0, le=1.0, description="A required button is not pressed.")
    swap_rate: float = Field(default=0.02, ge=0.0, le=1.0, description="A button is pressed after its successor.")
    insert_rate: float = Field(
        default=0.02, ge=0.0, le=1.0, description="A button outside the intent's sequence is pressed before a step."
    )


class SyntheticConfig(BaseModel):
    """What :func:`synthetic_abcd_cases` generates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cases: int = Field(default=100, ge=0, description="Sessions to generate.")
    seed: int = 0
    intents: list[str] | None = Field(default=None, description="Subflows to draw from (default: all 55).")
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    first_slot_rate: float = Field(
        default=1.0, ge=0.0, le=1.0, description="P(a button's first enumerated slot gets a value)."
    )
    extra_slot_rate: float = Field(
        default=0.1, ge=0.0, le=1.0, description="P(each further enumerated slot of a button gets a value)."
    )
    step_seconds: dict[str, float] = Field(
        default_factory=dict, description="Mean seconds per button (action type); others use default_step_s."
    )
    default_step_s: float = Field(default=25.0, gt=0)
    duration_sigma: float = Field(default=0.5, ge=0.0, description="Log-normal spread of each step's duration.")
    case_interval_s: float = Field(default=120.0, ge=0.0, description="Time between two sessions' starts.")
    start: datetime = Field(default=SYNTHETIC_EPOCH, description="Start of the first session (aware).")
    operators: int = Field(default=5, ge=1, description="Size of the simulated operator pool.")


def _apply_noise(
    actions: Sequence[str], pool: Sequence[str], noise: NoiseConfig, rng: random.Random
) -> tuple[list[str], dict[str, int]]:
    """The pressed buttons after slips, and how many of each slip happened."""
    counts = {"skips": 0, "swaps": 0, "inserts": 0}
    out: list[str] = []
    wrong = [button for button in pool if button not in actions]
    for button in actions:
        if wrong and rng.random() < noise.insert_rate:
            out.append(rng.choice(wrong))
            counts["inserts"] += 1
        if rng.random() < noise.skip_rate:
            counts["skips"] += 1
            continue
        out.append(button)
    i = 0
    while i < len(out) - 1:
        if rng.random() < noise.swap_rate:
            out[i], out[i + 1] = out[i + 1], out[i]
            counts["swaps"] += 1
            i += 2  # a swapped pair is not swapped back
        else:
            i += 1
    return out, counts


def _profile(schema: ProcessSchema, rng: random.Random) -> dict[str, str]:
    """One value per enumerated slot: the session's customer, product, reason, ..."""
    return {f.name: rng.choice(f.enum) for f in schema.fields if f.type is ValueType.enum and f.enum}


def _arguments(
    schema: ProcessSchema, button: str, profile: Mapping[str, str], config: SyntheticConfig, rng: random.Random
) -> dict[str, Scalar]:
    spec = schema.action(button)
    if spec is None:
        raise SimulatorError(f"button {button!r} is not an action of process {schema.process_id!r}")
    arguments: dict[str, Scalar] = {}
    enumerated = [a for a in spec.arguments if a.type is ValueType.enum and a.enum]
    for index, argument in enumerate(enumerated):
        rate = config.first_slot_rate if index == 0 else config.extra_slot_rate
        if rng.random() < rate:
            value = profile.get(argument.name)
            arguments[argument.name] = value if value in (argument.enum or ()) else rng.choice(argument.enum or [""])
    return arguments


def synthesize_case(
    sequence: IntentSequence,
    schema: ProcessSchema,
    index: int,
    config: SyntheticConfig | None = None,
) -> Case:
    """Session number ``index`` of the intent ``sequence``; deterministic in (config.seed, index).

    :raises SimulatorError: if an action it builds is not valid under ``schema``.
    """
    config = config or SyntheticConfig()
    rng = random.Random(f"abcd-synthetic\x1f{config.seed}\x1f{index}")
    pool = [spec.name for spec in schema.controls]
    buttons, slips = _apply_noise(sequence.actions, pool, config.noise, rng)
    profile = _profile(schema, rng)
    start = config.start + timedelta(seconds=config.case_interval_s * index)
    operator = f"synthetic-operator-{rng.randrange(config.operators)}"
    intent_text = sequence.subflow.replace("_", " ")
    fields: dict[str, Scalar] = {}
    tail = [ChatTurn(speaker=Speaker.customer, text=f"Hi, I need help: {intent_text}.", at=start)]
    recent: list[Action] = []
    steps: list[TraceStep] = []
    now = start
    for button in [*buttons, END_ACTION]:
        action = Action(
            action_type=button,
            arguments=_arguments(schema, button, profile, config, rng) if button != END_ACTION else {},
        )
        problems = validate_action(schema, action)
        if problems:
            raise SimulatorError(f"synthetic {sequence.subflow} session {index}: {'; '.join(problems)}")
        mean = config.step_seconds.get(button, config.default_step_s)
        duration = mean * math.exp(rng.gauss(0.0, config.duration_sigma) - config.duration_sigma**2 / 2)
        now = now + timedelta(seconds=round(duration, 3))
        state = UIState(
            fields=dict(fields),
            chat_tail=tail[-CHAT_TAIL:],
            recent_actions=recent[-RECENT_ACTIONS:],
            case_started_at=start,
        )
        steps.append(TraceStep(state=state, action=action, operator_id=operator, timestamp=now))
        recent.append(action)
        fields.update(action.arguments)
        values = ", ".join(str(v) for v in action.arguments.values())
        tail.append(ChatTurn(speaker=Speaker.system, text=f"{button}: {values}" if values else button, at=now))
    return Case(
        case_id=f"abcd-synthetic/{config.seed}/{index}",
        process_id=schema.process_id,
        business_cluster=sequence.flow,
        started_at=start,
        attributes={
            "subflow": sequence.subflow,
            "synthetic": True,
            "noise_skips": slips["skips"],
            "noise_swaps": slips["swaps"],
            "noise_inserts": slips["inserts"],
        },
        steps=steps,
    )


def synthetic_abcd_cases(
    config: SyntheticConfig | None = None,
    *,
    data_dir: Path | None = None,
    schema: ProcessSchema | None = None,
    sequences: Mapping[str, IntentSequence] | None = None,
) -> Iterator[Case]:
    """``config.cases`` synthetic ABCD sessions, intents drawn uniformly (seeded), in start order.

    :param data_dir: the ABCD folder (default: the project data folder's abcd/); unused when ``schema`` and
        ``sequences`` are given.
    :raises SimulatorError: if ``config.intents`` names an unknown subflow.
    """
    config = config or SyntheticConfig()
    schema = schema or abcd_process_schema(data_dir)
    if schema.process_id != PROCESS_ID:
        raise SimulatorError(f"expected the {PROCESS_ID!r} process schema, got {schema.process_id!r}")
    sequences = sequences or abcd_intent_sequences(data_dir)
    names = sorted(sequences) if config.intents is None else list(config.intents)
    unknown = [name for name in names if name not in sequences]
    if unknown or not names:
        raise SimulatorError(f"unknown ABCD subflows {unknown}" if unknown else "no ABCD subflow to draw from")
    picker = random.Random(f"abcd-intents\x1f{config.seed}")
    for index in range(config.cases):
        yield synthesize_case(sequences[picker.choice(names)], schema, index, config)
