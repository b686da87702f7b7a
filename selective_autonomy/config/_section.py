"""The base of every settings section: frozen, and unknown keys are errors (a misspelt key in YAML or
the environment must not pass silently)."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
