"""The benchmark harness (`make bench`) at a tiny scale: it runs end to end and writes
sane results. Timing targets are not asserted: they hold at telecom scale only."""

from __future__ import annotations

import json
import uuid

from benchmarks.run import measure


def test_bench_smoke_writes_sane_results(tmp_path):
    results = measure("smoke", repeat=1, out=tmp_path, prefix=f"bench_smoke_{uuid.uuid4().hex[:8]}",
                      sizes=[(100, 10), (150, 10)], due_customers=10, rebuild=True,
                      keep_templates=False)

    assert {p.name for p in tmp_path.iterdir()} >= {"latest.json", "latest.md", "scaling.png"}
    assert json.loads((tmp_path / "latest.json").read_text())["mode"] == "smoke"
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    assert "| Figure | Measured | Target | Met |" in (tmp_path / "latest.md").read_text()
    for scale in results["scales"]:
        for rule, figures in scale["purge_vs_limit"].items():
            assert figures["same_rows"] and figures["checksums"], rule  # the limits left exactly the purge's rows
            assert figures["rows"] > 0 and figures["purge_s"] > 0 and figures["limit_s"] > 0, rule
        drop = scale["partition_drop"]
        assert drop["partitions"] > 0 and drop["month_rows"] > 0 and drop["in_run"]["months"] >= 1
        assert drop["in_run"]["drop_per_month_s"] > 0 and drop["in_run"]["bare_per_month_s"] > 0
        assert scale["due_customers"]["customers"] > 0
        assert scale["verification"]["checks"] > 0 and scale["verification"]["gx_s"] > 0
        assert 0 < scale["rss"]["imports_only_rss_mb"] <= scale["rss"]["purge_peak_rss_mb"] < 1000
    assert results["scales"][0]["due_customers"]["customers"] == results["scales"][1]["due_customers"]["customers"]
    assert results["dag_parse"]["empty_dag_s"] > 0 and len(results["dag_parse"]["files"]) >= 10
    latency = results["offboarding_latency"]
    assert 0 < latency["noop_first_task_s"] and 0 < latency["offboarding_deletion_s"] and latency["ratio"] > 0
    assert all(t["met"] in (True, False) for t in results["targets"])
