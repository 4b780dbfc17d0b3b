"""How the harness judges its figures (`benchmarks.run.targets`), on the committed results:
a purge far faster than its limit is not reported as a target met."""

from __future__ import annotations

import copy
import json

from benchmarks.run import LIMIT_SLOWER, LIMIT_SLOWER_BELOW, markdown, targets
from telco_lifecycle.settings import project_dir

COMMITTED = json.loads((project_dir() / "benchmarks" / "results" / "latest.json").read_text(encoding="utf-8"))


def _purge_targets(results: dict, rule: str) -> list[dict]:
    return [t for t in targets(results) if "purge /" in t["name"] and t["name"].endswith(rule)]


def test_a_purge_far_faster_than_its_limit_is_inconclusive_not_met():
    results = copy.deepcopy(COMMITTED)
    figures = results["scales"][-1]["purge_vs_limit"]["crm_master_data"]
    figures["ratio"], figures["ratio_vs_evidence"] = round(LIMIT_SLOWER_BELOW / 2, 2), round(LIMIT_SLOWER_BELOW / 2, 2)
    judged = _purge_targets(results, "crm_master_data")[-2:]  # the largest scale's two figures

    assert [t["met"] for t in judged] == [False, False]
    assert all(t["note"] == LIMIT_SLOWER for t in judged)
    results["targets"] = targets(results)
    assert LIMIT_SLOWER in markdown(results)


def test_a_purge_within_its_targets_is_met_without_a_note():
    results = copy.deepcopy(COMMITTED)
    figures = results["scales"][-1]["purge_vs_limit"]["crm_master_data"]
    figures["ratio"], figures["ratio_vs_evidence"] = 1.1, 1.05
    judged = _purge_targets(results, "crm_master_data")[-2:]

    assert [t["met"] for t in judged] == [True, True]
    assert not any("note" in t for t in judged)
