"""The native trace format: one recorded case as the states an operator saw and the actions taken.

Every importer (event logs, SGD, ABCD) produces :class:`Case` objects, and training reads them back
from JSONL, so a policy never depends on where the traces came from. A step pairs the screen the
operator saw *before* acting with the action taken, which is exactly a (state, next action) example.
:meth:`Case.state_event` replays a case as the ``UIStateChanged`` events the live system would have
published, so offline replays and the streaming path see the same inputs.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from selective_autonomy.schemas.event_parts import Action, Actor, Scalar, UIState
from selective_autonomy.schemas.events import UIStateChanged, action_id_for
from selective_autonomy.schemas.identifiers import Name, OpaqueId, ProcessId
from selective_autonomy.traces.errors import TraceFormatError


class _TraceModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TraceStep(_TraceModel):
    """One decision: the screen before the operator acted, and what they did.

    ``state`` must hold only what was visible before ``action``; importers build it from earlier
    events only, so the action (the label) never leaks into its own features.
    """

    state: UIState
    action: Action
    operator_id: str | None = None
    timestamp: AwareDatetime = Field(description="When the action was taken.")


class Case(_TraceModel):
    """One recorded session (a ticket, a dialogue, a loan application) from start to end."""

    case_id: OpaqueId
    process_id: ProcessId
    business_cluster: Name
    started_at: AwareDatetime = Field(description="First event of the case; chronological splits order by it.")
    attributes: dict[str, Scalar] = Field(default_factory=dict, description="Case-level data known at the start.")
    steps: list[TraceStep] = Field(default_factory=list)
    ended: bool = Field(
        default=True,
        description="The record shows the case's end. False for a case that may still have been open when the "
        "log was extracted: its last step is the last one recorded, not a close.",
    )

    @model_validator(mode="after")
    def _time_runs_forward(self) -> Self:
        previous = self.started_at
        for index, step in enumerate(self.steps):
            if step.timestamp < previous:
                raise ValueError(f"step {index} of case {self.case_id!r} is earlier than the step or start before it")
            previous = step.timestamp
        return self

    def state_event(self, i: int) -> UIStateChanged:
        """The ``UIStateChanged`` the live system would have published just before step ``i``.

        Its time is when the previous step finished (the case start for ``i == 0``), its actor is the
        operator whose action produced it (the system opens the case), and its ``event_id`` is
        derived from the case id and ``i``, so replaying a case twice yields identical events.
        """
        if not 0 <= i < len(self.steps):
            raise IndexError(f"case {self.case_id!r} has {len(self.steps)} steps; no state before step {i}")
        previous = self.steps[i - 1] if i > 0 else None
        return UIStateChanged(
            event_id=trace_event_id(self.case_id, i),
            session_id=self.case_id,
            process_id=self.process_id,
            business_cluster=self.business_cluster,
            state_version=i,
            timestamp=previous.timestamp if previous else self.started_at,
            actor=Actor.operator if previous else Actor.system,
            ui_state=self.steps[i].state,
            last_action=previous.action if previous else None,
            last_action_id=action_id_for(self.case_id, i - 1, previous.action) if previous else None,
        )

    def state_events(self) -> Iterator[UIStateChanged]:
        """All states of the case in order (one per step)."""
        for i in range(len(self.steps)):
            yield self.state_event(i)


def trace_event_id(case_id: str, state_version: int) -> str:
    """Deterministic event id of a replayed state, so consumers can deduplicate replays."""
    material = f"trace\x1f{case_id}\x1f{state_version}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def _open_text(path: Path, mode: Literal["r", "w"]) -> IO[str]:
    compressed = path.name.endswith(".gz")
    if mode == "w":
        return gzip.open(path, "wt", encoding="utf-8") if compressed else path.open("w", encoding="utf-8")
    return gzip.open(path, "rt", encoding="utf-8") if compressed else path.open("r", encoding="utf-8")


def write_cases(path: Path | str, cases: Iterable[Case]) -> int:
    """Write cases as JSONL (one case per line; gzip when the name ends in ``.gz``); return how many.

    The file is written next to its final name and renamed at the end, so an interrupted import
    never leaves a truncated file that looks complete.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".partial.{target.name}")  # keeps the .gz suffix
    count = 0
    try:
        with _open_text(partial, "w") as out:
            for case in cases:
                out.write(case.model_dump_json(exclude_defaults=True))
                out.write("\n")
                count += 1
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return count


def read_cases(path: Path | str) -> Iterator[Case]:
    """Read cases from JSONL written by :func:`write_cases`, lazily, one line at a time.

    :raises TraceFormatError: on a line that is not a valid case; the message names the line.
    """
    source = Path(path)
    with _open_text(source, "r") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield Case.model_validate_json(line)
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(part) for part in first["loc"]) or "(line)"
                raise TraceFormatError(
                    f"{source}:{number}: not a valid case ({error.error_count()} error(s); first at {where}: "
                    f"{first['msg']})"
                ) from error
