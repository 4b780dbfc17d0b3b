"""Right to erasure: delete what the policy lets a customer have erased on request.

Derived from each rule's `erasure` in the policy:
* `on_request: false` (accounting material) is never erased on request;
* after the relationship has ended, everything else goes: rows are deleted, and
  `anonymise` items (the customers row) are reduced to their kept columns, a tombstone
  that accounting rows still reference;
* while the relationship lasts, a rule with `while_active: false` is kept whole, and a
  `partial` rule keeps what its `kept_while_active` entries name (a table, or the rows
  of a table matching `where`), each with its reason; the rest goes.

A legal hold in force refuses the whole request (nothing changes); every statement also
carries `NOT lifecycle_on_hold(...)`. Each rule is one transaction with its audit rows;
every run records whether approval was required and who gave it. Approval is required
unless the deployment sets LIFECYCLE_REQUIRE_ERASURE_APPROVAL=false.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json

from telco_lifecycle.customers import hold_ids_in_force, require_customer, row_counts
from telco_lifecycle.database import transaction
from telco_lifecycle.errors import Refused
from telco_lifecycle.evidence import audit
from telco_lifecycle.policy import Bilingual, DataItem, Policy, Rule, load_policy
from telco_lifecycle.report_files import report_folder, write_report
from telco_lifecycle.subjects.access import file_stem
from telco_lifecycle.subjects.report_retention import remove_customer_files

ACTION = "erase_on_request"


class ErasureRefused(Refused):
    """The request cannot be carried out as asked; nothing was changed."""


@dataclasses.dataclass(frozen=True)
class Target:
    """Rows of one table of the customer that are erased, or kept (with the reason)."""

    rule: Rule
    item: DataItem
    erase: bool
    where: str
    reason: Bilingual | None = None

    @property
    def rows(self) -> str:
        """The rows this target acts on; for `anonymise`, only those not yet reduced."""
        if self.erase and self.item.action == "anonymise":
            remaining = ([f"{c} IS NOT NULL" for c in self.item.columns]
                         + [f"{c} IS NULL" for c in self.item.purged_marks])
            return f"{self.where} AND ({' OR '.join(remaining)})"
        return self.where

    @property
    def kept_because(self) -> Bilingual:
        """Why a kept target is kept: the policy gives every one a reason."""
        if self.reason is None:
            raise ValueError(f"{self.item.table}: an erased target has no reason to be kept")
        return self.reason

    def statement(self) -> str:
        """The erasing statement; an anonymised row also gets its `*_purged_on` mark (the
        day, %(as_of)s), so that the rule's purge later finds nothing left to do."""
        where = f"{self.rows} AND NOT lifecycle_on_hold(%(customer_id)s)"
        if self.item.action == "delete":
            return f"DELETE FROM {self.item.table} WHERE {where}"
        marks = [f"{c} = coalesce({c}, %(as_of)s)" for c in self.item.purged_marks]
        cleared = [f"{c} = NULL" for c in self.item.columns] + marks
        return f"UPDATE {self.item.table} SET {', '.join(cleared)} WHERE {where}"


def targets(policy: Policy, active: bool, customer: str = "%(customer_id)s") -> list[Target]:
    """What an erasure request erases and keeps, table by table, in the policy's deletion order."""
    result = []
    for rule in policy.rules:
        erasure = rule.erasure
        for item in rule.data:
            own = item.subject_filter(customer)
            if not erasure.on_request:
                result.append(Target(rule, item, False, own, erasure.reason))
            elif not active or erasure.while_active is True:
                result.append(Target(rule, item, True, own))
            elif erasure.while_active is False:
                result.append(Target(rule, item, False, own, erasure.reason_kept_while_active))
            else:
                kept = next((k for k in erasure.kept_while_active if k.table == item.table), None)
                if kept is None:
                    result.append(Target(rule, item, True, own))
                elif kept.where is None:
                    result.append(Target(rule, item, False, own, kept.reason))
                else:
                    result.append(Target(rule, item, False, f"{own} AND {kept.where.sql()}", kept.reason))
                    result.append(Target(rule, item, True, f"{own} AND NOT {kept.where.sql()}"))
    return result


def _is_active(state: dict, as_of: dt.date) -> bool:
    ended = state["relationship_ended_on"]
    return ended is None or ended > as_of


def _check(cur, customer_id: int, as_of: dt.date, lock: bool = False) -> bool:
    """Refuse an unknown or held customer; whether its relationship is active."""
    state = require_customer(cur, customer_id, lock=lock)
    holds = hold_ids_in_force(cur, customer_id)
    if holds:
        raise ErasureRefused(f"customer {customer_id} is under legal hold (hold id {', '.join(map(str, holds))}):"
                             " nothing may be erased while it is in force, so nothing was changed")
    return _is_active(state, as_of)


def plan(conn, customer_id: int, as_of: dt.date) -> dict:
    """Validate the request and count what would be erased and kept (read only; no personal data)."""
    policy = load_policy()
    with transaction(conn) as cur:
        active = _check(cur, customer_id, as_of)
        erase, keep = [], []
        for target in targets(policy, active):
            cur.execute(f"SELECT count(*) FROM {target.item.table} WHERE {target.rows}", {"customer_id": customer_id})
            entry = {"rule": target.rule.id, "table": target.item.table, "rows": cur.fetchone()[0]}
            if target.erase:
                erase.append({**entry, "action": target.item.action})
            else:
                keep.append({**entry, "reason": target.kept_because.en})
        before = row_counts(cur, policy, customer_id)
    conn.rollback()
    return {"customer_id": customer_id, "as_of": as_of.isoformat(), "active": active,
            "erase": erase, "keep": keep, "rows_before": before}


def approval_body(planned: dict) -> str:
    """The approver's view (Markdown): the dry-run counts, no personal data."""
    status = "active: only what is not needed to deliver and invoice goes" if planned["active"] else "ended"
    lines = [f"Erasure on request for customer **{planned['customer_id']}** (relationship {status}).", "",
             "| table | rule | rows erased |", "| --- | --- | --- |"]
    lines += [f"| `{e['table']}` | {e['rule']} | {e['rows']}{' (anonymised)' if e['action'] == 'anonymise' else ''} |"
              for e in planned["erase"]]
    lines += ["", "| table | rule | rows kept | why |", "| --- | --- | --- | --- |"]
    lines += [f"| `{k['table']}` | {k['rule']} | {k['rows']} | {k['reason']} |" for k in planned["keep"]]
    lines += ["", "**Approve** erases these rows now; **Reject** ends the run with nothing erased."]
    return "\n".join(lines)


def erase(conn, planned: dict, requested_by: str, approval: dict, dry_run: bool, run: audit.RunContext,
          rule_ids: list[str] | None = None) -> dict:
    """Erase per the plan's policy sets: one transaction per rule (of `rule_ids`, default
    all: a restore's reconciliation re-applies one rule at a time), each with its audit rows."""
    policy = load_policy()
    customer_id, as_of = planned["customer_id"], dt.date.fromisoformat(planned["as_of"])
    params = {"customer_id": customer_id, "as_of": as_of}
    # Who asked is free text: in the erasure statement (reports), not in the append-only trail.
    details = audit.approval_details(approval)
    erased: dict[str, int] = {}
    events = []
    for rule in (r for r in policy.rules if rule_ids is None or r.id in rule_ids):
        with transaction(conn) as cur:
            active = _check(cur, customer_id, as_of, lock=True)
            if active != planned["active"]:
                raise ErasureRefused(f"customer {customer_id}'s relationship changed since the request was checked"
                                     " and approved; run the request again")
            for target in (t for t in targets(policy, active) if t.erase and t.rule.id == rule.id):
                if dry_run:
                    cur.execute(f"SELECT count(*) FROM {target.item.table} WHERE {target.rows}", params)
                    count = cur.fetchone()[0]
                else:
                    cur.execute(target.statement(), params)
                    count = cur.rowcount
                erased[target.item.table] = erased.get(target.item.table, 0) + count
                if count:
                    events.append(audit.record(cur, audit.Action(
                        ACTION, rule.id, customer_id, target.item.table, count, as_of, dry_run, details), run))
    # The customer's earlier access exports are copies of what was just erased: they go too.
    files = remove_customer_files(conn, customer_id, as_of, run, dry_run)["removed"]
    with transaction(conn) as cur:
        events.append(audit.record(cur, audit.Action(
            "erasure_request", None, customer_id, None, sum(erased.values()), as_of, dry_run,
            {**details, "relationship": "active" if planned["active"] else "ended",
             "kept": {k["table"]: k["rows"] for k in planned["keep"]}, "files_removed": files}), run))
    audit.emit(events)
    verb = "would erase" if dry_run else "erased"
    return {"customer_id": customer_id, "dry_run": dry_run, "erased": erased, "approval": approval,
            "files_removed": files, "audit_ids": [e["audit_id"] for e in events],
            "message": f"customer {customer_id}: {verb} " + (", ".join(f"{n} {t}" for t, n in erased.items() if n)
                                                             or "nothing (nothing left to erase)")}


def record_rejection(conn, planned: dict, requested_by: str, response: dict | None, run: audit.RunContext
                     ) -> dict:
    """The approver said no (`response`: the recorded answer): record who, change nothing else."""
    response = response or {"responded_by": None, "responded_at": None}
    details = {"approval_required": True,
               "rejected_by": response["responded_by"], "responded_at": response["responded_at"]}
    with transaction(conn) as cur:
        event = audit.record(cur, audit.Action("erasure_rejected", None, planned["customer_id"], None, 0,
                                               dt.date.fromisoformat(planned["as_of"]), False, details), run)
    audit.emit([event])
    return {"customer_id": planned["customer_id"], "rejected_by": details["rejected_by"],
            "message": f"customer {planned['customer_id']}: erasure rejected by {details['rejected_by']};"
                       " nothing was erased"}


def verification_checks(planned: dict, dry_run: bool):
    """GX: every erased set is gone (anonymised rows keep their row), every kept set is whole;
    a dry run changed nothing."""
    from telco_lifecycle.evidence.verification import Check

    customer = int(planned["customer_id"])
    kept = {(k["rule"], k["table"]): k["rows"] for k in planned["keep"]}
    checks = []
    for target in targets(load_policy(), planned["active"], str(customer)):
        table, rule_id = target.item.table, target.rule.id
        if dry_run:
            continue
        if target.erase:
            checks.append(Check(f"no erased {table} rows remain for customer {customer}", rule_id, table,
                                f"SELECT count(*) FROM {{batch}} WHERE {target.rows} HAVING count(*) > 0"))
        else:
            rows = int(kept[(rule_id, table)])
            checks.append(Check(f"customer {customer} keeps its {rows} {table} row(s)", rule_id, table,
                                f"SELECT n FROM (SELECT count(*) AS n FROM {{batch}} WHERE {target.where}) c"
                                f" WHERE n <> {rows}"))
    for rule in load_policy().rules:
        for item in rule.data:
            if dry_run or item.action == "anonymise":  # a tombstone keeps its row
                before = int(planned["rows_before"][item.table])
                checks.append(Check(f"customer {customer} has still {before} {item.table} row(s)", rule.id,
                                    item.table, f"SELECT n FROM (SELECT count(*) AS n FROM {{batch}} WHERE"
                                    f" {item.subject_filter(str(customer))}) c WHERE n <> {before}"))
    return checks


def write_statement(planned: dict, result: dict, verification: list[dict], requested_by: str, run_id: str) -> dict:
    """The per-customer erasure statement (JSON + HTML) that can be sent to the customer."""
    policy = load_policy()
    kept_targets = {(t.rule.id, t.item.table): t for t in targets(policy, planned["active"]) if not t.erase}

    def entry(rule_id: str, table: str, rows: int) -> dict:
        rule = policy.rule(rule_id)
        item = next(i for i in rule.data if i.table == table)
        description = item.description or Bilingual(en=table, da=table)
        return {"rule": rule_id, "category": rule.category.model_dump(), "table": table,
                "description": description.model_dump(), "rows": rows, "legal_basis": rule.legal_basis.model_dump()}

    erased = [{**entry(e["rule"], e["table"], result["erased"].get(e["table"], 0)), "action": e["action"]}
              for e in planned["erase"]]
    kept = []
    for k in planned["keep"]:
        reason = kept_targets[(k["rule"], k["table"])].kept_because
        kept.append({**entry(k["rule"], k["table"], k["rows"]), "reason": reason.model_dump()})
    for e in planned["erase"]:
        item = next(i for i in policy.rule(e["rule"]).data if i.table == e["table"])
        if item.action == "anonymise":
            kept.append({
                **entry(e["rule"], e["table"], 1), "columns": dict(item.kept_columns),
                "reason": {"en": "Only the listed columns are kept; all personal data in the row was erased.",
                           "da": "Kun de nævnte kolonner bevares; alle personoplysninger i rækken er slettet."}})
    statement = {
        "customer_id": planned["customer_id"], "erased_on": planned["as_of"], "requested_by": requested_by,
        "dry_run": result["dry_run"], "relationship": "active" if planned["active"] else "ended",
        "approval": result["approval"], "erased": erased, "kept": kept,
        "files_removed": {kind: {"files": n, "description": _folder_description(policy, kind)}
                          for kind, n in result.get("files_removed", {}).items()},
        "verification": {"result": "passed" if all(v["success"] for v in verification) else "failed",
                         "checks": len(verification)},
    }
    folder = report_folder("erasure")
    stem = file_stem(planned["customer_id"], run_id)
    json_path, html_path = folder / f"{stem}.json", folder / f"{stem}.html"
    sha256 = write_report(json_path, json.dumps(statement, indent=2, ensure_ascii=False, default=str))
    write_report(html_path, _statement_html(statement))
    return {"customer_id": planned["customer_id"], "json_file": str(json_path), "html_file": str(html_path),
            "sha256": sha256}


def _statement_html(s: dict) -> str:
    e = html.escape

    def rows(entries: list[dict], last: str) -> str:
        return "".join(
            f"<tr><td>{e(x['category']['en'])}</td><td>{e(x['description']['en'])}</td><td>{x['rows']}</td>"
            f"<td>{e(last_value(x, last))}</td></tr>" for x in entries)

    def last_value(x: dict, last: str) -> str:
        if last == "reason":
            columns = f" Kept: {', '.join(x['columns'])}." if "columns" in x else ""
            return x["reason"]["en"] + columns + " Legal basis: " + x["legal_basis"]["en"]
        return x["legal_basis"]["en"]

    approval = s["approval"]
    approved = (f"approved by {e(str(approval.get('by')))} at {e(str(approval.get('at')))}" if approval["required"]
                else "no approval step (switched off by the deployment's configuration)")
    mode = " (DRY RUN: nothing was erased)" if s["dry_run"] else ""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Erasure statement, customer {s['customer_id']}</title><style>body{{font-family:sans-serif;"
        "margin:2em;max-width:70em}table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.3em .6em;"
        "text-align:left;vertical-align:top}</style></head><body>"
        f"<h1>Erasure statement{mode}</h1><p>Customer {s['customer_id']}; request handled on {s['erased_on']}"
        f" at the request registered by {e(s['requested_by'])}; customer relationship {s['relationship']};"
        f" {approved}.</p>"
        "<h2>Erased</h2><table><tr><th>category</th><th>data</th><th>records</th><th>legal basis</th></tr>"
        f"{rows(s['erased'], 'legal_basis')}</table>"
        "<h2>Kept, and why</h2><table><tr><th>category</th><th>data</th><th>records</th><th>why</th></tr>"
        f"{rows(s['kept'], 'reason')}</table>"
        "<h2>Copies made earlier, deleted with the data</h2><ul>"
        + ("".join(f"<li>{e(x['description']['en'])}: {x['files']} file(s)</li>" for x in s["files_removed"].values())
           or "<li>none were held</li>") + "</ul>"
        f"<h2>Verification</h2><p>Independent checks (Great Expectations) after the erasure:"
        f" <b>{s['verification']['result']}</b> ({s['verification']['checks']} checks).</p></body></html>\n")


def _folder_description(policy: Policy, kind: str) -> dict[str, str]:
    """What the files of a governed report folder are, in both languages."""
    folder = policy.report_folder(kind)
    if folder is None:
        raise KeyError(f"{kind} is an exempt folder: erasure removes no files from it")
    return folder.description.model_dump()
