"""Options every ``selauto`` command module shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML settings file (also SELAUTO_CONFIG_FILE); env SELAUTO_* wins over it."),
]
