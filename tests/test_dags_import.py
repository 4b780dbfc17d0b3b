"""Every DAG file imports cleanly, stays thin, and documents itself and its params."""

from __future__ import annotations

import subprocess
import sys

from conftest import load_dagbag

from telco_lifecycle.settings import project_dir

DAG_FILES = sorted((project_dir() / "dags").glob("*.py"))


def test_dags_import_without_errors():
    bag = load_dagbag()
    assert bag.import_errors == {}
    assert "customer_offboarding" in bag.dag_ids


def test_every_dag_and_param_is_documented():
    for dag in load_dagbag().dags.values():
        assert dag.doc_md and len(dag.doc_md) > 200, dag.dag_id
        for name, param in dag.params.items():
            assert param.schema.get("title") and param.description, f"{dag.dag_id}.{name}"


HEAVY = ["great_expectations", "pandas", "psycopg2", "psycopg", "airflow.providers.postgres", "numpy"]


def _heavy_modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(eval(out.stdout.strip().splitlines()[-1]))


def test_dag_files_import_nothing_heavy():
    """Parsing a DAG file loads no more of GX, pandas, the driver than Airflow itself does."""
    baseline = _heavy_modules_after("import airflow.sdk")
    for path in DAG_FILES:
        loaded = _heavy_modules_after(f"import runpy; runpy.run_path({str(path)!r})")
        assert loaded <= baseline, f"{path.name} loads {sorted(loaded - baseline)} at parse time"
