"""Where the public datasets live: the shared data folder of this workspace, or the project's copy.

Developers here have ``../shared/data`` next to the repository; a user's clone has not, so the
demo's Helpdesk log is also shipped in the repository's ``data/`` folder.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository root (this file is ``<repo>/selective_autonomy/traces/datasets.py``)."""

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
PROJECT_DATA = REPO_ROOT / "data"


def _first_existing(*candidates: Path) -> Path:
    for path in candidates:
        if path.exists():
            return path
    raise FileNotFoundError("none of these exist: " + ", ".join(str(path) for path in candidates))


def helpdesk_log_path() -> Path:
    """The Helpdesk XES log: the shared copy if present, else the project's ``data/Helpdesk.xes.gz``."""
    return _first_existing(SHARED_DATA / "eventlogs" / "Helpdesk.xes.gz", PROJECT_DATA / "Helpdesk.xes.gz")


def bpi2012w_log_path() -> Path:
    """The BPI Challenge 2012 W log (shared data only; not shipped with the project)."""
    return _first_existing(SHARED_DATA / "eventlogs" / "BPI_Challenge_2012_W_Complete.xes.gz")


def sgd_dir() -> Path:
    """The SGD folder holding ``train/`` and ``dev/`` (shared data only)."""
    return _first_existing(SHARED_DATA / "sgd")


def abcd_data_dir() -> Path:
    """The ABCD folder holding ``kb``, ``ontology``, ``guidelines`` and ``abcd_sample`` (shared data only)."""
    return _first_existing(SHARED_DATA / "abcd")
