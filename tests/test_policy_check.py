"""Parse-time policy check cached by the files' status: a valid policy is validated in full
once, then recognised by its status; any change is validated again, a broken one fails."""

from __future__ import annotations

import os
import subprocess
import sys

from telco_lifecycle.settings import policy_path


def parse(env: dict) -> str:
    """Import a DAG file's shared module in a fresh process; which policy code loaded."""
    code = ("import sys; import telco_lifecycle.workflows.common;"
            " print('MODELS' if 'telco_lifecycle.policy' in sys.modules else 'CACHED')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    return out.stdout.strip() or out.stderr


def test_valid_policy_is_validated_once_then_known_by_status(tmp_path):
    env = {"LIFECYCLE_CACHE_DIR": str(tmp_path / "cache")}
    assert parse(env) == "MODELS"
    assert len(list((tmp_path / "cache").glob("policy-*.valid"))) == 1
    assert parse(env) == "CACHED"


def test_changed_or_broken_policy_is_validated_again(tmp_path):
    env = {"LIFECYCLE_CACHE_DIR": str(tmp_path / "cache")}
    assert parse(env) == "MODELS"
    changed = tmp_path / "retention.yaml"
    changed.write_text(policy_path().read_text(encoding="utf-8") + "\n# a comment\n", encoding="utf-8")
    assert parse({**env, "LIFECYCLE_POLICY_FILE": str(changed)}) == "MODELS"
    changed.write_text(changed.read_text(encoding="utf-8").replace("clock: fiscal_year_end", "clock: end_of_time"),
                       encoding="utf-8")
    failed = parse({**env, "LIFECYCLE_POLICY_FILE": str(changed)})
    assert "PolicyError" in failed and "clock" in failed
    assert len(list((tmp_path / "cache").glob("policy-*.valid"))) == 2


def test_a_same_size_change_with_its_old_modification_time_is_validated_again(tmp_path):
    """Rewritten in place, same size, the modification time set back: the change time differs."""
    env = {"LIFECYCLE_CACHE_DIR": str(tmp_path / "cache")}
    changed = tmp_path / "retention.yaml"
    changed.write_bytes(policy_path().read_bytes())
    env["LIFECYCLE_POLICY_FILE"] = str(changed)
    assert parse(env) == "MODELS"
    assert parse(env) == "CACHED"
    before = changed.stat()
    broken = changed.read_bytes().replace(b"clock: fiscal_year_end", b"clock: fiscal_year_eon")
    assert len(broken) == before.st_size
    changed.write_bytes(broken)
    os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert changed.stat().st_mtime_ns == before.st_mtime_ns
    failed = parse(env)
    assert "PolicyError" in failed and "clock" in failed
