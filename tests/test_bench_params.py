"""The benchmarks' raw baseline runs the intake statement itself: its parameters must stay the statement's."""
import importlib.util

from gis import intake
from tests.conftest import ROOT


def test_the_raw_intake_baseline_passes_exactly_the_statements_parameters(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))      # the benchmarks import their common.py as scripts do
    spec = importlib.util.spec_from_file_location("bench_intake_http", ROOT / "bench" / "bench_intake_http.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert set(bench.raw_params(42.33, -71.04)) == set(intake._INSERT_STMT.params)
