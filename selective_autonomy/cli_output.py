"""What the command line prints or writes, the same way for every command that emits a document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def emit_json(document: Any, out: Path | None) -> None:
    """``document`` as indented JSON with a final newline: to ``out`` when given, else to stdout."""
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        typer.echo(f"wrote {out}")
