"""LinearRegression and GraphSpeedup through the real `luigi` command line."""
import json

import pytest

from tests.conftest import manifests, run_luigi, stages_written_since

pytestmark = pytest.mark.slow


def test_linear_regression_numpy_and_tensorflow_agree(workspace):
    run = run_luigi(["LinearRegression"], workspace)
    assert run.returncode == 0, run
    folder = manifests(workspace, "linreg")[0].parent
    fit = json.loads((folder / "fit.json").read_text())
    for method in ("numpy", "tensorflow"):
        assert [s["step"] for s in fit[method]] == [2000, 4000, 6000, 8000, 10000]
        assert fit[method][-1]["a"] == pytest.approx(0.97637, abs=1e-5)
        assert fit[method][-1]["b"] == pytest.approx(0.05757, abs=1e-5)
    for n, t in zip(fit["numpy"], fit["tensorflow"]):
        assert n["a"] == pytest.approx(t["a"], abs=1e-6) and n["b"] == pytest.approx(t["b"], abs=1e-6)
    assert fit["original_units"]["numpy"]["slope_per_year"] == pytest.approx(0.97637 * 5500 / 4, rel=1e-4)
    assert (folder / "linreg.png").read_bytes()[:4] == b"\x89PNG"

    run_folder = manifests(workspace, "runs")[0].parent
    summary = json.loads((run_folder / "summary.json").read_text())
    assert [(t["stage"], t["status"]) for t in summary["tasks"]] == [("linreg", "ran")]
    table = summary["runs"][0]["tables"]["a and b every 2000 steps"]
    assert table[0][0] == "step" and [row[0] for row in table[1:]] == [2000, 4000, 6000, 8000, 10000]
    assert (run_folder / "report.html").is_file()

    again = run_luigi(["LinearRegression"], workspace)
    assert again.returncode == 0 and stages_written_since(workspace, again.started) == set()
    assert "report.html" in again.output


def test_diverging_fit_fails_with_the_step(workspace):
    run = run_luigi(["LinearRegression", "--learning-rate", "5", "--steps", "500", "--record-every", "100"],
                    workspace)
    assert run.returncode == 30, run
    assert "linear regression diverged (numpy at step" in run.output and "tensorflow at step" in run.output
    assert "lower --learning-rate" in run.output
    assert manifests(workspace, "linreg") == [] and manifests(workspace, "runs") == []


def test_non_finite_data_is_refused(workspace):
    run = run_luigi(["LinearRegression", "--x", "[2013, 2014, 2015]", "--y", "[1, NaN, 3]"], workspace)
    assert run.returncode == 30, run
    assert "y has non-finite values at positions [1]" in run.output
    assert manifests(workspace, "linreg") == []


def test_graph_speedup_writes_timings_chart_and_machine(workspace):
    run = run_luigi(["GraphSpeedup", "--repeats", "3", "--warmup", "1"], workspace)
    assert run.returncode == 0, run
    folder = manifests(workspace, "graph")[0].parent
    result = json.loads((folder / "speedup.json").read_text())
    assert result["batch_shape"] == [60, 28, 28] and result["repeats"] == 3
    assert result["models"]["shallow"]["layers"] == [10, 20, 30] and result["models"]["shallow"]["dropout"] > 0
    assert result["models"]["deep"]["layers"] == [1000, 2000, 3000]
    assert result["models"]["deep"]["parameters"] == 784 * 1000 + 1000 + 1000 * 2000 + 2000 + 2000 * 3000 + 3000
    for model in result["models"].values():
        assert len(model["eager_ms"]) == len(model["graph_ms"]) == 3
        assert model["eager_median_ms"] == sorted(model["eager_ms"])[1]
        assert model["speedup"] == pytest.approx(model["eager_median_ms"] / model["graph_median_ms"], rel=1e-2)
    assert {"cpu", "usable_cores", "tensorflow", "gpus", "host"} <= set(result["machine"])
    assert (folder / "speedup.png").read_bytes()[:4] == b"\x89PNG"
