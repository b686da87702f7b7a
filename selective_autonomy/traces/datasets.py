"""Where the public datasets live: a datasets folder (``datasets_dir`` in the settings,
``SELAUTO_DATASETS_DIR``) laid out as ``eventlogs/``, ``sgd/`` and ``abcd/``, or the project's own
``data/`` folder, which ships the demo's Helpdesk log.

The package knows no other place: a workspace with its own copy of the datasets says so through the
settings (the tests use a fixture of their own).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository root (this file is ``<repo>/selective_autonomy/traces/datasets.py``)."""

PROJECT_DATA = REPO_ROOT / "data"
"""The datasets shipped with the project: the Helpdesk log, at the top level."""


def _first_existing(*candidates: Path) -> Path:
    for path in candidates:
        if path.exists():
            return path
    raise FileNotFoundError("none of these exist: " + ", ".join(str(path) for path in candidates))


def helpdesk_log_path(root: Path | None = None) -> Path:
    """The Helpdesk XES log: ``<root>/eventlogs/Helpdesk.xes.gz``, else the project's ``data/Helpdesk.xes.gz``."""
    candidates = [root / "eventlogs" / "Helpdesk.xes.gz"] if root is not None else []
    return _first_existing(*candidates, PROJECT_DATA / "Helpdesk.xes.gz")


def bpi2012w_log_path(root: Path | None = None) -> Path:
    """The BPI Challenge 2012 W log (not shipped with the project)."""
    return _first_existing((root or PROJECT_DATA) / "eventlogs" / "BPI_Challenge_2012_W_Complete.xes.gz")


def sgd_dir(root: Path | None = None) -> Path:
    """The SGD folder holding ``train/`` and ``dev/`` (not shipped with the project)."""
    return _first_existing((root or PROJECT_DATA) / "sgd")


def abcd_data_dir(root: Path | None = None) -> Path:
    """The ABCD folder holding ``kb``, ``ontology``, ``guidelines`` and ``abcd_sample`` (not shipped)."""
    return _first_existing((root or PROJECT_DATA) / "abcd")
