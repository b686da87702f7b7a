"""Check imported cases against their process schema.

An importer and the schema it derives must agree: a recorded action the schema does not allow
would be an impossible label, and a field value outside its enum an input the encoder cannot
represent. These checks run in the tests and in ``selauto import`` to catch that at import time.
"""

from __future__ import annotations

from collections.abc import Iterable

from selective_autonomy.schemas.event_parts import Action, Scalar
from selective_autonomy.schemas.process import ArgumentSpec, ProcessSchema, UIField, ValueType
from selective_autonomy.traces.format import Case


def _type_problem(spec: ArgumentSpec | UIField, value: Scalar) -> str | None:
    if value is None:
        return None
    kind = spec.type
    if kind is ValueType.enum:
        return None if isinstance(value, str) and spec.enum and value in spec.enum else f"{value!r} not in its enum"
    if kind is ValueType.integer:
        return None if isinstance(value, int) and not isinstance(value, bool) else f"{value!r} is not an integer"
    if kind is ValueType.number:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"{value!r} is not a number"
    if kind is ValueType.boolean:
        return None if isinstance(value, bool) else f"{value!r} is not a boolean"
    return None if isinstance(value, str) else f"{value!r} is not a string"


def action_violations(schema: ProcessSchema, action: Action) -> list[str]:
    """What is wrong with an action under a schema (empty when it is allowed as is)."""
    spec = schema.action(action.action_type)
    if spec is None:
        return [f"action {action.action_type!r} is not in schema {schema.process_id!r}"]
    problems = []
    arguments = {argument.name: argument for argument in spec.arguments}
    for name, value in action.arguments.items():
        argument = arguments.get(name)
        if argument is None:
            problems.append(f"{action.action_type}: unknown argument {name!r}")
        elif (problem := _type_problem(argument, value)) is not None:
            problems.append(f"{action.action_type}.{name}: {problem}")
    for argument in spec.arguments:
        if argument.required and action.arguments.get(argument.name) is None:
            problems.append(f"{action.action_type}: required argument {argument.name!r} is missing")
    return problems


def field_violations(schema: ProcessSchema, fields: dict[str, Scalar]) -> list[str]:
    """What is wrong with a state's fields under a schema (unknown names, wrong types)."""
    problems = []
    for name, value in fields.items():
        spec = schema.field(name)
        if spec is None:
            problems.append(f"field {name!r} is not in schema {schema.process_id!r}")
        elif (problem := _type_problem(spec, value)) is not None:
            problems.append(f"field {name}: {problem}")
    return problems


def case_violations(schema: ProcessSchema, cases: Iterable[Case]) -> list[str]:
    """Every problem in some cases' actions, fields and clusters, prefixed with where it is."""
    problems = []
    for case in cases:
        if schema.cluster(case.business_cluster) is None:
            problems.append(f"{case.case_id}: business cluster {case.business_cluster!r} is not in the schema")
        for index, step in enumerate(case.steps):
            found = action_violations(schema, step.action) + field_violations(schema, step.state.fields)
            problems.extend(f"{case.case_id}[{index}]: {problem}" for problem in found)
    return problems
