"""Every DAG file imports cleanly, stays thin, and documents itself and its params."""

from __future__ import annotations

import ast
import copy
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


# What the demo computes at run time, given here so that its trigger confs can be checked.
DEMO_VALUES = {"customer_id": 1, "as_of": "2020-12-02", "period_start": "2020-12-02", "period_end": "2020-12-02"}


def test_the_demo_triggers_every_dag_with_params_the_dag_accepts():
    """`make demo` is not part of make test: every conf it triggers a DAG with (read from its
    source) names only the DAG's params and passes their validation, as the trigger form's do."""
    source = (project_dir() / "src" / "telco_lifecycle" / "local" / "demo.py").read_text(encoding="utf-8")
    bag = load_dagbag()
    checked = 0
    for call in ast.walk(ast.parse(source)):
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "run_dag"
                and isinstance(call.args[0], ast.Constant) and isinstance(call.args[1], ast.Dict)):
            continue
        dag = bag.dags[call.args[0].value]
        conf = {key.value: value.value if isinstance(value, ast.Constant) else DEMO_VALUES[key.value]
                for key, value in zip(call.args[1].keys, call.args[1].values, strict=True)}
        assert set(conf) <= set(dag.params), (dag.dag_id, conf)
        params = copy.deepcopy(dag.params)
        params.update(conf)
        params.validate()  # ParamValidationError names the param
        checked += 1
    assert checked >= 10


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
