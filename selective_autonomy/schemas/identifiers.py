"""What an identifier that comes from outside may look like: one rule per kind, stated once.

The contract models, the process-schema format, the models registry and the OpenAPI documents all
use these types and patterns, so a request, a record on a topic and a schema file are held to the
same rule, and the documents say what the validation does.

- :data:`ProcessId`: process ids name a directory of the models registry, so they are the
  strictest: ASCII letters, digits, ``.``, ``_`` and ``-``, starting with a letter or a digit
  (no path separator, no ``..``, no leading dot, no NUL), 1 to 128 characters.
- :data:`Name`: business clusters, action types, field and argument names. Event logs name
  actions by their activity ("Take in charge ticket"), so spaces and any letter are allowed; what
  is refused is what could act as a path or a key separator (``/``, ``\\``), control characters
  (NUL included), a leading space or dot; 1 to 128 characters. Threshold keys join process,
  cluster and tier with ``/``, which is why a cluster may not hold one.
- :data:`OpaqueId`: session and event ids come from the platform's own logs (case ids with
  spaces, colons or slashes); they are only compared and hashed, never used as a path, so any
  printable text of 1 to 256 characters passes.

Text that is not valid Unicode (lone surrogates from JSON escapes, bytes that are not UTF-8 in an
Avro record) is refused by pydantic and by the Avro decoder before these patterns apply.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

PROCESS_ID_MAX = 128
NAME_MAX = 128
OPAQUE_ID_MAX = 256

PROCESS_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
# C0 and C1 control characters (NUL included), DEL, and the two path separators.
_FORBIDDEN = r"\x00-\x1f\x7f-\x9f/\\"
NAME_PATTERN = rf"^[^{_FORBIDDEN} .][^{_FORBIDDEN}]{{0,127}}$"
OPAQUE_ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]{1,256}$"

ProcessId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=PROCESS_ID_MAX,
        pattern=PROCESS_ID_PATTERN,
        description="A process id: ASCII letters, digits, '.', '_' and '-', starting with a letter or digit; "
        "at most 128 characters.",
    ),
]
Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=NAME_MAX,
        pattern=NAME_PATTERN,
        description="A name (business cluster, action type, field or argument): no control character, '/' or "
        "'\\', not starting with a space or a dot; at most 128 characters.",
    ),
]
OpaqueId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=OPAQUE_ID_MAX,
        pattern=OPAQUE_ID_PATTERN,
        description="An id from the platform (session, event): no control character; at most 256 characters.",
    ),
]

_PROCESS_ID = re.compile(PROCESS_ID_PATTERN)
_NAME = re.compile(NAME_PATTERN)


class InvalidIdentifier(ValueError):
    """An id that breaks its rule where it was about to be used (a path, a lookup)."""


def is_process_id(value: object) -> bool:
    # fullmatch: Python's ``$`` also matches before a trailing newline, which the rule does not allow.
    return isinstance(value, str) and _PROCESS_ID.fullmatch(value) is not None


def is_name(value: object) -> bool:
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def process_dir_name(process_id: str) -> str:
    """The directory name of a process in the models registry; :class:`InvalidIdentifier` when the
    id breaks :data:`PROCESS_ID_PATTERN`.

    The pattern admits only names that are one plain path component on every filesystem the
    project runs on (no separator, no leading dot, so never ``.`` or ``..``, no NUL), so the
    mapping is the identity on valid ids and existing model directories keep their names.
    """
    if not is_process_id(process_id):
        raise InvalidIdentifier(f"not a process id: {process_id!r} (pattern {PROCESS_ID_PATTERN})")
    return process_id
