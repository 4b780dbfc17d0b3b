"""The lifecycle's own files obey the policy: due report files are removed, one audit
row per file, and a re-scan afterwards proves that nothing due remains and nothing
else went.

An audit row names the folder (`kind`), the customer id when the file has one, the
size, the Copenhagen date it was written and its SHA-256 - never the file's name or
path, which hold run ids (free text). The task's return values carry counts and
digests of paths only. Files are not transactional: each file is removed before its
audit row is inserted, the rows of a batch commit together, and a file that cannot be
removed fails the run (after the rows of the others are committed).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

from telco_lifecycle.database import transaction
from telco_lifecycle.errors import Refused
from telco_lifecycle.evidence import audit
from telco_lifecycle.policy import Policy, load_policy
from telco_lifecycle.report_files import FoundFile, due, scan, ungoverned_folders
from telco_lifecycle.settings import reports_dir

ACTION = "report_file_removed"
RULE = "report_files"
BATCH = 500  # files per transaction of audit rows


class ReportsRefused(Refused):
    """The reports directory holds something the policy does not know; nothing was removed."""


class RemovalFailed(RuntimeError):
    """Some due files could not be removed; the others were, with their audit rows."""


def _digests(relatives) -> set[str]:
    """Names files across tasks without their paths."""
    return {hashlib.sha256(relative.encode("utf-8")).hexdigest()[:16] for relative in relatives}


def _everything() -> set[str]:
    """Every file under the reports directory, exempt folders included (as digests)."""
    root = reports_dir()
    return _digests(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def _checked(policy: Policy) -> None:
    unknown = ungoverned_folders(reports_dir(), policy)
    if unknown:
        raise ReportsRefused(f"{len(unknown)} entr(y/ies) of the reports directory are neither governed by a rule"
                             f" of the policy nor exempt: {unknown}; add them to report_files or"
                             " exempt_report_folders in include/policy/retention.yaml; nothing was removed")


def _counts(files: list[FoundFile]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for file in files:
        counts[file.kind] = counts.get(file.kind, 0) + 1
    return counts


def plan(as_of: dt.date) -> dict:
    """What is due on `as_of`, per folder, and the digests of the due files and of every
    other file under the reports directory (read only)."""
    policy = load_policy()
    _checked(policy)
    due_files = due(scan(reports_dir(), policy), policy, as_of)
    due_ids = _digests(f.relative for f in due_files)
    everything = _everything()
    return {"as_of": as_of.isoformat(), "due": _counts(due_files), "due_bytes": sum(f.size for f in due_files),
            "files": len(everything), "due_ids": sorted(due_ids), "kept_ids": sorted(everything - due_ids)}


def remove(conn, files: list[FoundFile], as_of: dt.date, run: audit.RunContext, dry_run: bool,
           cause: str) -> dict:
    """Remove `files` (a dry run only records them), one audit row each; counts per folder back."""
    root, events, failed = reports_dir(), [], []
    removed: list[FoundFile] = []
    for start in range(0, len(files), BATCH):
        with transaction(conn) as cur:
            for file in files[start:start + BATCH]:
                try:
                    details = {**file.record(root), "cause": cause}
                    if not dry_run:
                        file.path(root).unlink()
                except FileNotFoundError:
                    continue  # gone already (a re-run, or removed by the erasure): nothing to record
                except OSError as error:
                    failed.append(f"a {file.kind} file: {error.strerror}")
                    continue
                removed.append(file)
                events.append(audit.record(cur, audit.Action(ACTION, RULE, file.customer_id, None, 1, as_of,
                                                             dry_run, details), run))
    audit.emit(events)
    if failed:
        raise RemovalFailed(f"{len(failed)} due file(s) could not be removed: {failed}")
    return {"removed": _counts(removed), "bytes": sum(f.size for f in removed)}


def remove_due(conn, as_of: dt.date, run: audit.RunContext, dry_run: bool) -> dict:
    """The daily run: re-scan (refusing unknown folders) and remove what is due on `as_of`."""
    policy = load_policy()
    _checked(policy)
    files = due(scan(reports_dir(), policy), policy, as_of)
    return {"as_of": as_of.isoformat(), "dry_run": dry_run,
            **remove(conn, files, as_of, run, dry_run, cause="retention")}


def remove_customer_files(conn, customer_id: int, as_of: dt.date, run: audit.RunContext, dry_run: bool) -> dict:
    """An erasure on request: the customer's files of every folder the policy erases with it."""
    policy = load_policy()
    kinds = {f.folder for f in policy.report_files if f.erased_with_customer}
    files = [f for f in scan(reports_dir(), policy, customer_id) if f.kind in kinds]
    result = remove(conn, files, as_of, run, dry_run, cause="erasure")
    if not dry_run:
        left = [f for f in scan(reports_dir(), policy, customer_id) if f.kind in kinds]
        if left:
            raise RemovalFailed(f"{len(left)} file(s) of customer {customer_id} remain after the erasure")
    return result


@dataclasses.dataclass(frozen=True)
class Verification:
    due_left: int
    missing_kept: int
    missing_due: int

    @property
    def ok(self) -> bool:
        return not (self.due_left or self.missing_kept or self.missing_due)


def verify(planned: dict, dry_run: bool) -> dict:
    """Independent re-scan of the reports directory: nothing due on `as_of` remains (a dry
    run: every due file is still there), and every file that was not due is still there."""
    policy = load_policy()
    _checked(policy)
    as_of = dt.date.fromisoformat(planned["as_of"])
    present = _everything()
    due_left = 0 if dry_run else len(due(scan(reports_dir(), policy), policy, as_of))
    result = Verification(due_left=due_left, missing_kept=len(set(planned["kept_ids"]) - present),
                          missing_due=len(set(planned["due_ids"]) - present) if dry_run else 0)
    if not result.ok:
        raise AssertionError(f"reports retention verification failed: {result}")
    return {**dataclasses.asdict(result), "files": len(present), "verification": "passed"}
