"""The policy check every DAG file makes when it is parsed, cached by the files' identity.

A broken policy must be an import error in the UI that names the line, so every DAG
file validates the policy at parse time. Building the pydantic models and validating
cost more than the rest of a DAG file, and the dag processor parses every file again
and again: a successful validation is remembered by a marker file (in LIFECYCLE_CACHE_DIR,
default ~/.cache/telco_lifecycle) named by the status of the policy file and of the code
that validates it: device, inode, size, modification and change time in nanoseconds, as
git's index tells a changed file. Every write sets the change time, which nothing can set
back (touch and cp -p set only the modification time), and a new copy has a new inode, so
any change of either file is validated again in full; a later parse of the same files
only stats them (reading and hashing them cost each parse half as much again). The tasks load
and validate the policy in full whenever they run.
"""

from __future__ import annotations

import os
from pathlib import Path

from telco_lifecycle.settings import cache_dir, policy_path


def validate_policy() -> None:
    """Raise PolicyError (naming the line) unless the policy is valid."""
    marker = cache_dir() / f"policy-{_status(policy_path())}-{_status(Path(__file__).with_name('policy.py'))}.valid"
    if marker.exists():
        return
    from telco_lifecycle.policy import load_policy

    load_policy()
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:  # a read-only home: validated in full at every parse, as before
        pass


def _status(path: Path) -> str:
    status = os.stat(path)
    return "_".join(map(str, (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)))
