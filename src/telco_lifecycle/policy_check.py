"""The policy check every DAG file makes when it is parsed, cached by digest.

A broken policy must be an import error in the UI that names the line, so every DAG
file validates the policy at parse time. Building the pydantic models and validating
cost more than the rest of a DAG file, and the dag processor parses every file again
and again: a successful validation is remembered by the digest of the policy file and
of the code that validates it (a marker file in LIFECYCLE_CACHE_DIR, default
~/.cache/telco_lifecycle), so a later parse of the same policy only reads and hashes
two files. A changed or broken policy has no marker and is validated in full; the
tasks load and validate it in full whenever they run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from telco_lifecycle.settings import cache_dir, policy_path


def validate_policy() -> None:
    """Raise PolicyError (naming the line) unless the policy is valid."""
    digest = hashlib.sha256()
    for path in (policy_path(), Path(__file__).with_name("policy.py")):
        digest.update(path.read_bytes())
    marker = cache_dir() / f"policy-{digest.hexdigest()}.valid"
    if marker.exists():
        return
    from telco_lifecycle.policy import load_policy

    load_policy()
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:  # a read-only home: validated in full at every parse, as before
        pass
