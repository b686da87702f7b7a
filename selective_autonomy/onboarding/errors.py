"""Why a hand change was refused. Nothing was changed when one is raised; the message says what
to do instead."""

from __future__ import annotations

from selective_autonomy.errors import SelautoError


class OnboardingError(SelautoError):
    """A process or model change was refused."""


class InvalidSchema(OnboardingError):
    """The file is not a valid process schema."""


class SchemaConflict(OnboardingError):
    """The process is registered with another schema and ``--replace`` was not given."""


class UnknownProcess(OnboardingError):
    """No process of that id is registered."""


class ArtefactRefused(OnboardingError):
    """A model artefact does not load, or was built for another process or schema."""


class NothingToRollBack(OnboardingError):
    """The pointer history holds no other policy and critic to go back to."""
