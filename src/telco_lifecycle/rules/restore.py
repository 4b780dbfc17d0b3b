"""Restore reconciliation: after a backup is restored, do again what the ledger records
since, so that no deleted data comes back.

The gap (evidence/restore_detection.py) is re-applied in ledger order, one step per
action of one run (a customer's purge under one rule, an offboarding, an erasure under one
rule, a CDR month, a hold placed or released), through the code that did it the first
time restricted to the entry's customer, rule and `as_of`: what is already gone stays
gone, and holds still win in every statement. Data deleted before a hold that was placed
later is deleted again (the deletion was lawful; the restore is the anomaly) and listed
for the DPO. After each step, one `reapplied_after_restore` row per ledger entry links
the entry to the restored chain; a `restore_reconciled` row closes the run and names
the signed checkpoints the restore superseded. A second run finds no gap and does nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import re

from telco_lifecycle.database import run_lock, transaction
from telco_lifecycle.errors import Refused
from telco_lifecycle.evidence import audit, checkpoints
from telco_lifecycle.evidence.restore_detection import REAPPLIED, RECONCILED, Gap, find_gap
from telco_lifecycle.evidence.retention_checks import ROWS, overdue, owner, remaining, source
from telco_lifecycle.evidence.store import evidence_store
from telco_lifecycle.evidence.verification import Check
from telco_lifecycle.policy import load_policy
from telco_lifecycle.report_files import report_folder
from telco_lifecycle.report_files import write_report as write_file
from telco_lifecycle.rules import legal_holds, offboarding, retention
from telco_lifecycle.subjects import erasure

KINDS = {"purge": "purge", "delete": "purge", "anonymise": "purge", "drop_partition": "partition",
         "end_relationship": "offboard", "backdate_relationship_end": "backdate", "erase_on_request": "erase",
         "place_legal_hold": "hold", "release_legal_hold": "hold", "file_remove": "file"}
DELETING = ("purge", "offboard", "erase")  # steps that remove a customer's data
# Re-applied steps were approved when first done (the ledger's entry); the trail names the
# reconciliation, never the free text of who asked for it.
REPLAYED_APPROVAL = {"required": False, "by": "restore_reconciliation"}


class ReconciliationRefused(Refused):
    """The ledger holds an action this code cannot re-apply; nothing was changed."""

    recorded = False  # the database is still behind its ledger


def _kind(entry: dict) -> str:
    if entry["action"] == "delete" and entry["rule"] == offboarding.RULE:
        return "offboard"
    if entry["action"] not in KINDS:
        raise ReconciliationRefused(f"ledger entry of audit row #{entry['audit_id']} records action"
                                    f" {entry['action']!r}, which cannot be re-applied; nothing was changed")
    return KINDS[entry["action"]]


def _key(entry: dict) -> tuple:
    """Consecutive entries with one key are one step: what one transaction committed
    (and appended at once): a batch of a purge (its customers under one rule), one
    customer's offboarding, one customer's erasure under one rule, a CDR month, a hold."""
    kind = _kind(entry)
    return (kind, entry["dag_id"], entry["run_id"], entry["as_of"],
            None if kind == "purge" else entry["customer_id"],
            entry["rule"] if kind in ("purge", "erase") else None,
            entry["audit_id"] if kind in ("partition", "backdate", "hold", "file") else None)


def steps(gap: Gap) -> list[dict]:
    """The gap as steps in ledger order: what each would re-apply, from the ledger alone."""
    result = []
    for (kind, dag_id, run_id, as_of, *_), group in itertools.groupby(gap.entries, key=_key):
        entries = list(group)
        tables: dict[str, int] = {}
        for entry in entries:
            for table, count in entry["tables"].items():
                tables[table] = tables.get(table, 0) + int(count)
        first = entries[0]
        result.append({"kind": kind, "action": first["action"],
                       "rule": next((e["rule"] for e in entries if e["action"] != "end_relationship"), first["rule"]),
                       "customers": sorted({e["customer_id"] for e in entries if e["customer_id"] is not None}),
                       "as_of": as_of, "partition": first.get("partition"), "dag_id": dag_id, "run_id": run_id,
                       "recorded_at": first["recorded_at"], "ledger_tables": tables, "entries": entries})
    return result


def reconcile(conn, run: audit.RunContext, requested_by: str, dry_run: bool = False) -> dict:
    """Re-apply the gap (a dry run only lists it) and return what was done, per step and rule."""
    with run_lock(conn, "restore_reconciliation"):
        gap = find_gap(conn)
        planned = steps(gap)
        with conn.cursor() as cur:
            cur.execute("SELECT seq FROM lifecycle_audit_head")
            restored_seq = cur.fetchone()[0]
        conn.rollback()
        if not dry_run:
            for step in planned:
                _reapply(conn, step, run, requested_by)
            if planned:
                _record_reconciled(conn, gap, restored_seq, run)
    return summary(gap, planned, dry_run)


def _reapply(conn, step: dict, run: audit.RunContext, requested_by: str) -> None:
    """One step through its original code path, then its links (a crash in between: the
    re-run finds the step in the gap again and re-applies it as a no-op)."""
    who = f"restore_reconciliation ({requested_by})"
    customers, as_of, kind = step["customers"], dt.date.fromisoformat(step["as_of"]), step["kind"]
    if kind == "purge":
        removed = retention.purge_customers(conn, step["rule"], as_of, customers, run)
    elif kind == "partition":
        removed = {"cdrs": retention.drop_partition_again(conn, step["rule"], as_of, step["partition"], run)}
    elif kind == "offboard":
        ended = next((e.get("relationship_ended_on") for e in step["entries"] if e.get("relationship_ended_on")), None)
        removed = offboarding.offboard(conn, offboarding.OffboardingRequest(
            customers[0], as_of, who, dt.date.fromisoformat(ended) if ended else None),
            run)["deleted"]
    elif kind == "backdate":  # approved when it was done: the end moves back again
        entry = step["entries"][0]
        removed = {}
        offboarding.backdate(conn, customers[0], dt.date.fromisoformat(entry["provisional_end"]),
                             dt.date.fromisoformat(entry["relationship_ended_on"]), REPLAYED_APPROVAL, run)
    elif kind == "erase":
        planned = erasure.plan(conn, customers[0], as_of)
        step["active"] = planned["active"]
        removed = erasure.erase(conn, planned, who, REPLAYED_APPROVAL, False, run,
                                rule_ids=[step["rule"]])["erased"]
    elif kind == "hold":
        removed = {}
        _hold(conn, step, as_of, who, run)
    else:  # a report file: it is not in the database, so nothing came back
        removed = {}
    step["removed_again"] = removed
    events = []
    with transaction(conn) as cur:
        for entry in step["entries"]:
            tables = entry["tables"]  # a purge's entry: the rows of every table of the rule
            table = next(iter(tables)) if len(tables) == 1 else None
            events.append(audit.record(cur, audit.Action(
                REAPPLIED, entry["rule"], entry["customer_id"], table, sum(int(n) for n in tables.values()),
                as_of, False, {**({"ledger_tables": tables} if len(tables) > 1 else {}),
                               "ledger_audit_id": entry["audit_id"], "ledger_row_hash": entry["row_hash"],
                               "ledger_action": entry["action"], "ledger_dag_id": entry["dag_id"],
                               "ledger_run_id": entry["run_id"], "ledger_recorded_at": entry["recorded_at"]}), run))
    audit.emit(events)


def placeholder_case(entry: dict) -> str:
    """The case reference of a hold placed again from a ledger entry that has none."""
    return f"restored hold, ledger audit #{entry['audit_id']}"


def _hold(conn, step: dict, as_of: dt.date, who: str, run: audit.RunContext) -> None:
    """Place or release the hold again. Its case reference comes from the ledger; where the
    ledger has none, a placed hold gets one naming the ledger entry (the protection first;
    the report lists it), and a release finds its case by the hold's id (the restored
    sequence gives a hold placed again the id it had)."""
    entry, customer = step["entries"][0], step["customers"][0]
    if entry["action"] == "place_legal_hold":
        case = entry.get("case_reference") or placeholder_case(entry)
        legal_holds.apply(conn, legal_holds.HoldRequest(customer, "place", case, who, as_of), run)
        return
    case = entry.get("case_reference")
    if not case and entry.get("legal_hold_id") is not None:
        with conn.cursor() as cur:
            cur.execute("SELECT case_reference FROM legal_holds WHERE legal_hold_id = %s AND customer_id = %s",
                        (entry["legal_hold_id"], customer))
            row = cur.fetchone()
        conn.rollback()
        case = row[0] if row else None
    if not case:
        raise ReconciliationRefused(f"ledger entry of audit row #{entry['audit_id']} releases a hold of customer"
                                    f" {customer} that cannot be found; release it by hand (legal_hold DAG)")
    try:
        legal_holds.apply(conn, legal_holds.HoldRequest(customer, "release", case, who, as_of), run)
    except legal_holds.LegalHoldRefused:
        pass  # no longer in force: already released


def _record_reconciled(conn, gap: Gap, restored_seq: int, run: audit.RunContext) -> None:
    """Close the run with one record naming the restored head and the ledger's head, and a
    signed checkpoint of the new head that names the checkpoints of the lost history (links
    after the restored head's): `lifecycle audit verify` no longer holds the restored chain
    to them."""
    superseded = [c["sequence"] for c in evidence_store().checkpoints() if c.get("seq", 0) > restored_seq]
    last = gap.entries[-1]
    with transaction(conn) as cur:
        event = audit.record(cur, audit.Action(
            RECONCILED, None, None, None, len(gap.entries), None, False,
            {"restored_head": gap.head["audit_id"] if gap.head else None, "restored_seq": restored_seq,
             "ledger_head": {"audit_id": last["audit_id"], "row_hash": last["row_hash"]},
             "superseded_checkpoints": superseded}), run)
    audit.emit([event])
    checkpoints.write_current(conn, {"dag_id": run.dag_id, "run_id": run.run_id, "restored_seq": restored_seq,
                                     "superseded_checkpoints": superseded})


def summary(gap: Gap, planned: list[dict], dry_run: bool) -> dict:
    """What was (or would be) re-applied: per step and per rule, and the DPO's list of
    data deleted again although a hold was placed on the customer later. No personal data."""
    per_rule: dict[str, dict] = {}
    for step in planned:
        if step["kind"] in ("hold", "file"):
            continue
        rule = per_rule.setdefault(step["rule"], {"steps": 0, "customers": 0, "ledger": {}, "removed_again": {}})
        rule["steps"] += 1
        rule["customers"] += len(step["customers"])
        for key, counts in (("ledger", step["ledger_tables"]), ("removed_again", step.get("removed_again", {}))):
            for table, n in counts.items():
                rule[key][table] = rule[key].get(table, 0) + int(n)
    later_holds = []
    for number, step in enumerate(planned):
        for customer in step["customers"] if step["kind"] in DELETING else ():
            hold = next((s for s in planned[number + 1:]
                         if s["action"] == "place_legal_hold" and s["customers"] == [customer]), None)
            if hold:
                later_holds.append({"customer_id": customer, "rule": step["rule"], "deleted_as_of": step["as_of"],
                                    "deleted_by": step["dag_id"], "hold_placed_as_of": hold["as_of"],
                                    "hold_ledger_audit_id": hold["entries"][0]["audit_id"]})
    # holds placed again without their case reference (the ledger had none): the DPO gives it
    placeholder_holds = [{"customer_id": step["customers"][0], "hold_ledger_audit_id": entry["audit_id"],
                          "case_reference": placeholder_case(entry)}
                         for step in planned if step["action"] == "place_legal_hold"
                         for entry in step["entries"][:1] if not entry.get("case_reference")]
    listed = [{k: v for k, v in step.items() if k != "entries"}
              | {"ledger_audit_ids": [e["audit_id"] for e in step["entries"]]} for step in planned]
    verb = "would re-apply" if dry_run else "re-applied"
    message = (f"{gap.describe()}; {verb} {len(gap.entries)} ledger entries in {len(planned)} step(s): "
               + "; ".join(f"{rule} {describe(r)}" for rule, r in per_rule.items())
               if planned else "nothing to re-apply: " + gap.describe())
    return {"dry_run": dry_run, "restored_head": gap.head["audit_id"] if gap.head else None,
            "ledger_entries": len(gap.entries), "steps": listed, "per_rule": per_rule,
            "deleted_before_later_hold": later_holds, "holds_without_case_reference": placeholder_holds,
            "message": message}


def describe(rule: dict) -> str:
    counts = rule["ledger"] if not rule["removed_again"] else rule["removed_again"]
    return f"{rule['customers']} customer(s), " + (retention.describe_counts(counts) or "nothing")


def verification_checks(result: dict) -> list[Check]:
    """GX: for every replayed customer and rule the database matches the ledger: nothing
    the rule had removed at that `as_of` is there, an offboarded customer has ended and has
    no PBX/SIP configuration, an erased customer has none of the erased rows, a dropped CDR
    month holds no rows but held customers', a customer the ledger holds is on hold."""
    checks = []
    months: dict[str, list[str]] = {}
    by_rule: dict[tuple, set[int]] = {}
    for step in result["steps"]:
        if step["kind"] == "partition":
            months.setdefault(step["rule"], []).append(step["partition"])
        elif step["kind"] in CHECKS:
            by_rule.setdefault((step["kind"], step["rule"], step["as_of"], step.get("active")), set()).update(
                int(c) for c in step["customers"])
    for (kind, rule_id, as_of, active), customers in by_rule.items():
        checks += CHECKS[kind](rule_id, dt.date.fromisoformat(as_of), active, sorted(customers))
    checks += [_partition_check(rule_id, partitions) for rule_id, partitions in months.items()]
    placed = [c for s in result["steps"] if s["action"] == "place_legal_hold" for c in s["customers"]]
    released = [c for s in result["steps"] if s["action"] == "release_legal_hold" for c in s["customers"]]
    held = sorted(set(placed) - set(released))
    if held:
        ids = ", ".join(str(int(c)) for c in held)
        checks.append(Check(f"customer(s) {ids} are under the hold placed again", "legal_hold", "customers",
                            f"SELECT customer_id FROM {ROWS} WHERE customer_id IN ({ids})"
                            " AND NOT lifecycle_on_hold(customer_id)"))
    return checks


def _purge_checks(rule_id: str, as_of: dt.date, active, customers: list[int]) -> list[Check]:
    policy = load_policy()
    rule, ids = policy.rule(rule_id), ", ".join(str(c) for c in customers)
    return [Check(f"no {item.table} row due at {as_of} remains for the {len(customers)} re-applied customer(s)",
                  rule.id, item.table, f"SELECT {owner(item)} AS customer_id FROM {source(policy, rule, item)}"
                  f" WHERE {owner(item)} IN ({ids}) AND {remaining(item)} AND {overdue(policy, rule, item, as_of)}")
            for item in rule.data]


def _offboard_checks(rule_id: str, as_of: dt.date, active, customers: list[int]) -> list[Check]:
    rule, ids = load_policy().rule(rule_id), ", ".join(str(c) for c in customers)
    return [Check(f"no {item.table} rows remain for re-offboarded customer(s) {ids}", rule.id, item.table,
                  f"SELECT {owner(item)} FROM {ROWS} WHERE {owner(item)} IN ({ids})") for item in rule.data] + [
        Check(f"re-offboarded customer(s) {ids} have ended", rule.id, "customers",
              f"SELECT customer_id FROM {ROWS} WHERE customer_id IN ({ids}) AND relationship_ended_on IS NULL")]


def _erase_checks(rule_id: str, as_of: dt.date, active: bool, customers: list[int]) -> list[Check]:
    return [Check(f"no erased {target.item.table} rows remain for customer {customer}", rule_id, target.item.table,
                  f"SELECT count(*) FROM {{batch}} WHERE {target.rows} HAVING count(*) > 0")
            for customer in customers for target in erasure.targets(load_policy(), active, str(customer))
            if target.erase and target.rule.id == rule_id]


CHECKS = {"purge": _purge_checks, "offboard": _offboard_checks, "erase": _erase_checks}


def _partition_check(rule_id: str, partitions: list[str]) -> Check:
    """The dropped months hold no CDRs but those of customers under a hold in force."""
    months = []
    for partition in sorted(set(partitions)):
        found = re.fullmatch(r"cdrs_y(\d{4})m(\d{2})", partition)
        if found is None:
            raise ValueError(f"{partition} is not a CDR month partition")
        year, month = (int(p) for p in found.groups())
        start, end = dt.date(year, month, 1), dt.date(year + month // 12, month % 12 + 1, 1)
        months.append(f"(t.started_at >= lifecycle_month_start(DATE '{start}')"
                      f" AND t.started_at < lifecycle_month_start(DATE '{end}'))")
    return Check(f"the {len(months)} dropped CDR month(s) hold no rows but held customers'", rule_id, "cdrs",
                 f"SELECT t.customer_id FROM {ROWS} WHERE ({' OR '.join(months)})"
                 " AND NOT lifecycle_on_hold(t.customer_id)")


def verify(database_url: str, result: dict, run_id: str) -> list[dict]:
    """Run the checks through GX (nothing to check after a dry run or an empty gap)."""
    from telco_lifecycle.evidence.verification import run_checks

    checks = [] if result["dry_run"] else verification_checks(result)
    if not checks:
        return []
    return [dataclasses.asdict(r) for r in run_checks(database_url, f"restore_reconciliation_{run_id}", checks)]


def write_report(result: dict, verification: list[dict], run_id: str) -> str:
    """The reconciliation report (JSON): what was re-deleted per rule, the steps, the DPO's
    list, the verification. Internal ids and counts only."""
    path = report_folder("restore") / f"reconciliation_{re.sub(r'[^A-Za-z0-9_.-]+', '_', run_id)}.json"
    report = {**result, "verification": {"result": "passed" if all(v["success"] for v in verification) else "failed",
                                         "checks": len(verification)}}
    write_file(path, json.dumps(report, indent=2, default=str))
    return str(path)
