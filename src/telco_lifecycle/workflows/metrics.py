"""The metrics a lifecycle task reports (names and sources in `alerts`), through Airflow's
`Stats`. Loaded by the callbacks when they fire, never at DAG-parse time."""

from __future__ import annotations


def rules_of_dag(dag) -> tuple[str, ...]:
    """A lifecycle DAG carries the ids of the rules it applies among its tags."""
    from telco_lifecycle.policy import load_policy

    rule_ids = [rule.id for rule in load_policy().rules]
    return tuple(tag for tag in rule_ids if dag is not None and tag in (dag.tags or ()))


ALL_RULES = "all"  # the rule tag of retention_verification's checks, which cover every rule


def metrics_of(task_id: str, result, dag_rules: tuple[str, ...] = ()) -> list[tuple[str, int, dict]]:
    """(name, count, tags) of the metrics a task's return value reports. Verification
    outcomes come from `verify*` tasks (the status page's convention too); rows and
    subjects from the task that removed them (a summary restating them, with a
    `verification` key, is not counted again)."""
    metrics = []
    if task_id.startswith("verify"):
        if isinstance(result, dict) and result.get("verification") in ("passed", "failed"):
            for rule in [result["rule"]] if result.get("rule") else dag_rules or [ALL_RULES]:
                metrics.append((f"lifecycle.verification.{result['verification']}.{rule}", 1, {"rule": rule}))
        elif isinstance(result, list) and all(isinstance(r, dict) and "success" in r for r in result):
            for rule in dict.fromkeys(r["rule"] for r in result):
                outcome = "passed" if all(r["success"] for r in result if r["rule"] == rule) else "failed"
                metrics.append((f"lifecycle.verification.{outcome}.{rule}", 1, {"rule": rule}))
    elif isinstance(result, dict) and not result.get("dry_run") and "verification" not in result:
        from telco_lifecycle.policy import load_policy

        policy = load_policy()
        rules = []
        for table, rows in (result.get("removed") or result.get("deleted") or {}).items():
            if rows:
                rule = policy.rule_for_table(table).id
                metrics.append((f"lifecycle.rows_removed.{rule}.{table}", rows, {"rule": rule, "table": table}))
                rules.append(rule)
        subjects = result.get("customers_purged", 1 if result.get("customer_id") else 0)
        metrics += [(f"lifecycle.subjects_removed.{rule}", subjects, {"rule": rule})
                    for rule in dict.fromkeys(rules) if subjects]
    return metrics


def incr(name: str, count: int, tags: dict) -> None:
    from airflow.sdk.observability import stats

    stats.incr(name, count=count, tags=tags)
