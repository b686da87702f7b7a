"""Where the benchmarks find the public datasets: ``SELAUTO_DATASETS_DIR``, else the workspace's
``shared/data`` next to the checkout when there is one, else the project's ``data/`` (Helpdesk only).

The package resolves built-in log names only in the folder it is given; this is the benchmarks' choice.
"""

from __future__ import annotations

import os
from pathlib import Path

_WORKSPACE_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

DATASETS_DIR: Path | None = (
    Path(os.environ["SELAUTO_DATASETS_DIR"])
    if os.environ.get("SELAUTO_DATASETS_DIR")
    else _WORKSPACE_DATA
    if _WORKSPACE_DATA.is_dir()
    else None
)
