"""Sweeps end to end: tiny data, real Luigi (local scheduler and luigid), real TensorFlow, few steps.

One module-scoped scenario runs the sweep once (--workers 2), reruns it unchanged, explains and
runs it with one value added (under luigid, through `python -m pipelines run`), and runs
ImageRun from the best.yaml the report wrote; the tests assert on what each step left behind.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipelines.sweep import spec as sweep_spec
from tests.conftest import (
    ROOT,
    LuigiRun,
    luigi_env,
    make_image_set,
    manifests,
    run_luigi,
    write_idx_folder,
    written_since,
)
from tests.test_server import free_port, launch_luigid, stop

BASE = """image:
  dataset: arrays
  model: mlp
  steps: 20
  batch_size: 20
  checkpoint_every: 20
  validation_fraction: 0.125
datasets:
  arrays:
    path: {data}
"""
SWEEP = """sweep:
  path: image
  method: grid
  metric: test_accuracy
  parameters:
    image.learning_rate: {rates}
    models.mlp.hidden_units: [8]
"""
# 1e38 makes the loss NaN within a few steps: that trial diverges, the others finish.
RATES = "[0.003, 0.03, 1.0e+38]"
GROWN = "[0.003, 0.03, 1.0e+38, 0.01]"


def write_sweep(folder: Path, data: Path, rates: str) -> Path:
    path = folder / "sweep.yaml"
    path.write_text(BASE.format(data=json.dumps(str(data))) + SWEEP.format(rates=rates))
    return path


def pipelines_command(args: list[str], workspace: Path, mirror: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=ROOT, env=luigi_env(workspace, mirror),
                          capture_output=True, text=True, timeout=600, check=False)


# The `luigi` command line, then the heavy modules its process imported (last line of stdout).
_NOTING_IMPORTS = ("import atexit, json, sys; atexit.register(lambda: print('IMPORTED', json.dumps(sorted("
                   "{'numpy', 'tensorflow'} & set(sys.modules))))); sys.argv[0] = 'luigi'; "
                   "from luigi.cmdline import luigi_run; luigi_run()")


def run_luigi_noting_imports(args: list[str], workspace: Path, mirror: Path) -> LuigiRun:
    started = time.time()
    command = [sys.executable, "-c", _NOTING_IMPORTS, "--module", "pipelines", *args, "--local-scheduler"]
    done = subprocess.run(command, cwd=ROOT, env=luigi_env(workspace, mirror), capture_output=True, text=True,
                          timeout=600, check=False)
    return LuigiRun(done, started)


def imported(run: LuigiRun) -> list[str]:
    line = next(line for line in reversed(run.output.splitlines()) if line.startswith("IMPORTED "))
    return json.loads(line.split(" ", 1)[1])


def sweep_folder(workspace: Path) -> Path:
    """The sweep's newest completed run folder."""
    return max((path.parent for path in manifests(workspace, "runs") if path.parent.name.startswith("sweep-")),
               key=lambda folder: (folder / "manifest.json").stat().st_mtime)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    data = write_idx_folder(root / "data" / "tiny", make_image_set())
    workspace, mirror = root / "workspace", root / "mirror"
    mirror.mkdir()
    config = write_sweep(root, data, RATES)
    sweep = ["Sweep", "--config", str(config), "--workers", "2"]
    found: dict = {"root": root, "workspace": workspace, "mirror": mirror, "config": config}

    found["first"] = run_luigi(sweep, workspace, mirror)
    found["first_folder"] = sweep_folder(workspace)
    found["first_summary"] = json.loads((found["first_folder"] / "summary.json").read_text())

    found["rerun"] = run_luigi_noting_imports(sweep, workspace, mirror)
    found["rerun_written"] = written_since(workspace, found["rerun"].started)

    write_sweep(root, data, GROWN)
    found["explain"] = pipelines_command(["explain", "Sweep", "--config", str(config)], workspace, mirror)
    server = launch_luigid(free_port(), root / "luigid", root)
    try:
        started = time.time()
        found["grown"] = pipelines_command(["run", *sweep, *server.args()], workspace, mirror)
        found["grown_written"] = written_since(workspace, started)
        found["grown_started"] = started
    finally:
        stop(server.process)
    found["grown_folder"] = sweep_folder(workspace)
    found["grown_summary"] = json.loads((found["grown_folder"] / "summary.json").read_text())

    found["best"] = run_luigi(["ImageRun", "--config", str(found["grown_folder"] / "best.yaml")], workspace, mirror)
    found["best_written"] = written_since(workspace, found["best"].started)
    return found


def by_rate(summary: dict) -> dict[float, dict]:
    return {result["values"]["image.learning_rate"]: result for result in summary["results"]}


def attempts(folder: Path) -> int:
    return len((folder / "attempts.jsonl").read_text().splitlines())


def test_sweep_runs_every_trial_and_shares_preprocessing(scenario):
    assert scenario["first"].returncode == 0, scenario["first"]
    workspace = scenario["workspace"]
    for stage in ("download", "preprocess"):
        [manifest] = manifests(workspace, stage)  # one folder for all trials...
        assert attempts(manifest.parent) == 1  # ...produced once
    results = by_rate(scenario["first_summary"])
    assert set(results) == {0.003, 0.03, 1e38}
    assert results[0.003]["status"] == results[0.03]["status"] == "ok"
    assert all(0 <= result["metrics"]["test_accuracy"] <= 1 for rate, result in results.items() if rate < 1)


def test_diverging_trial_is_reported_failed_and_the_sweep_completes(scenario):
    assert scenario["first"].returncode == 0, scenario["first"]
    failed = by_rate(scenario["first_summary"])[1e38]
    assert failed["status"] == "failed" and "diverged" in failed["error"] and failed["final"]
    summary = scenario["first_summary"]
    assert summary["failed"] == 1 and summary["results"][-1]["values"] == failed["values"]  # ranked last
    report = (scenario["first_folder"] / "report.html").read_text()
    assert "training diverged" in report and "validation_curves.png" in report
    assert "metric_by_parameter.png" in report


def test_report_ranks_trials_links_their_reports_and_marks_the_best(scenario):
    summary = scenario["first_summary"]
    finished = [r for r in summary["results"] if r["status"] == "ok"]
    accuracies = [r["metrics"]["test_accuracy"] for r in finished]
    assert accuracies == sorted(accuracies, reverse=True)
    assert summary["best"]["values"] == finished[0]["values"]
    report = (scenario["first_folder"] / "report.html").read_text()
    assert '<tr class="best">' in report
    for result in finished:
        assert (Path(result["run"]) / "report.html").is_file()
        assert f'href="../{Path(result["run"]).name}/report.html"' in report
        assert result["train_seconds"] is not None


def test_rerun_with_nothing_changed_runs_nothing_and_imports_neither_numpy_nor_tensorflow(scenario):
    assert scenario["rerun"].returncode == 0, scenario["rerun"]
    assert scenario["rerun_written"] == set()
    assert "Did not run any tasks" in scenario["rerun"].output
    assert imported(scenario["rerun"]) == []


def test_explain_names_the_one_new_trial_and_why(scenario):
    explain = scenario["explain"]
    assert explain.returncode == 0, explain.stderr
    will_run = [line for line in explain.stdout.splitlines() if "SweepTrial/" in line and "[will run]" in line]
    assert len(will_run) == 1 and "image.learning_rate=0.01 " in will_run[0]
    assert f"set by image.learning_rate at {scenario['config']}:" in explain.stdout
    assert "upstream changed: SweepTrial/" in explain.stdout


def test_added_value_runs_only_the_new_trial_under_luigid(scenario):
    grown = scenario["grown"]
    assert grown.returncode == 0, grown.stdout + grown.stderr
    assert f"report: {scenario['grown_folder'] / 'report.html'}" in grown.stdout
    started = scenario["grown_started"]
    trained = [m for m in manifests(scenario["workspace"], "train") if m.stat().st_mtime >= started]
    assert len(trained) == 1
    request = json.loads((trained[0].parent / "request.json").read_text())
    assert request["learning_rate"] == 0.01
    assert not [name for name in scenario["grown_written"] if name.startswith(("download/", "preprocess/"))]
    results = by_rate(scenario["grown_summary"])
    assert set(results) == {0.003, 0.03, 1e38, 0.01}
    assert results[1e38]["status"] == "failed"  # a final failure is not retried


def test_best_yaml_reproduces_the_best_trial_with_nothing_retrained(scenario):
    best = scenario["best"]
    assert best.returncode == 0, best
    assert scenario["best_written"] == set()  # the trial's own ImageRun folder: already complete
    assert "Did not run any tasks" in best.output
    values = scenario["grown_summary"]["best"]["values"]
    config = yaml.safe_load((scenario["grown_folder"] / "best.yaml").read_text())
    assert config["image"]["learning_rate"] == values["image.learning_rate"]
    assert config["models"]["mlp"]["hidden_units"] == values["models.mlp.hidden_units"]
    assert "sweep" not in config


# ----- the sweep file, checked and expanded before anything runs -----------------------------

def test_random_sweep_is_reproducible_by_seed(tmp_path):
    config = tmp_path / "random.yaml"

    def trials(seed: int) -> list[dict]:
        config.write_text(f"""image:
  model: cnn
sweep:
  path: image
  method: random
  trials: 6
  seed: {seed}
  metric: test_accuracy
  parameters:
    image.learning_rate: {{log_uniform: [0.0001, 0.1]}}
    image.batch_size: {{int: [16, 128]}}
    image.validation_fraction: {{uniform: [0.05, 0.2]}}
    models.cnn.dense_units: {{choice: [64, 256, 1024]}}
""")
        return sweep_spec.load(config).trials()

    first = trials(7)
    assert len(first) == 6 and first == trials(7) and first != trials(8)
    for trial in first:
        assert 0.0001 <= trial["image.learning_rate"] <= 0.1 and isinstance(trial["image.batch_size"], int)
        assert trial["models.cnn.dense_units"] in (64, 256, 1024)


def test_grid_expands_model_specific_keys_only_for_that_model(tmp_path):
    config = tmp_path / "grid.yaml"
    config.write_text("""sweep:
  path: image
  metric: test_accuracy
  parameters:
    image.model: [mlp, cnn]
    models.cnn.dense_units: [256, 1024]
""")
    assert sweep_spec.load(config).trials() == [
        {"image.model": "mlp"},
        {"image.model": "cnn", "models.cnn.dense_units": 256},
        {"image.model": "cnn", "models.cnn.dense_units": 1024},
    ]


def test_a_text_sweep_can_rank_by_the_validation_part_and_sweep_the_new_settings(tmp_path):
    config = tmp_path / "text.yaml"
    config.write_text("""sweep:
  path: text
  metric: val_bits_per_char
  parameters:
    text.lr_schedule: [constant, cosine]
    text.validation_fraction: [0.05, 0.1]
""")
    spec = sweep_spec.load(config)
    assert spec.metric == "val_bits_per_char" and spec.goal == "min"  # bits: lower is better
    assert len(spec.trials()) == 4


BAD = {
    "unknown key": ("    image.learnin_rate: [0.1]\n", 13, "cannot sweep 'image.learnin_rate'"),
    "wrong type": ("    image.learning_rate: [0.1, fast]\n", 13, "image.learning_rate must be a number"),
    "wrong type of a model option": ("    models.mlp.hidden_units: [8, 1.5]\n", 13,
                                     "models.mlp.hidden_units must be an integer"),
    "empty grid": ("    image.learning_rate: []\n", 13, "the list of values is empty"),
}


def bad_sweep(folder: Path, parameters: str, metric: str = "test_accuracy", method: str = "grid") -> Path:
    path = folder / "bad.yaml"
    path.write_text(f"image:\n  dataset: arrays\n  model: mlp\n  steps: 20\ndatasets:\n  arrays:\n    path: /nowhere\n"
                    f"sweep:\n  path: image\n  method: {method}\n  metric: {metric}\n  parameters:\n{parameters}")
    return path


def assert_refused(run, path: Path, line: int, text: str) -> None:
    assert run.returncode != 0, run
    last = run.output.strip().splitlines()[-1]
    assert last.startswith(f"tfpipe: error: {path}:{line}: ") and text in last, run
    assert "Traceback" not in run.output, run


@pytest.mark.parametrize("case", list(BAD))
def test_bad_parameter_fails_before_anything_runs_naming_file_and_line(case, tmp_path):
    parameters, line, text = BAD[case]
    path = bad_sweep(tmp_path, parameters)
    run = run_luigi(["Sweep", "--config", str(path)], tmp_path / "ws")
    assert_refused(run, path, line, text)
    assert not (tmp_path / "ws").exists() or not any((tmp_path / "ws").glob("*/*/manifest.json"))


def test_metric_the_path_does_not_produce_is_refused(tmp_path):
    path = bad_sweep(tmp_path, "    image.learning_rate: [0.1]\n", metric="bits_per_char")
    assert_refused(run_luigi(["Sweep", "--config", str(path)], tmp_path / "ws"), path, 11,
                   "the image path does not produce metric 'bits_per_char'")


def test_random_sweep_without_trials_is_refused(tmp_path):
    path = bad_sweep(tmp_path, "    image.learning_rate: {log_uniform: [0.001, 0.1]}\n", method="random")
    assert_refused(run_luigi(["Sweep", "--config", str(path)], tmp_path / "ws"), path, 10,
                   "a random sweep needs 'trials: N'")


def test_grid_of_more_than_1000_trials_asks_for_yes(tmp_path):
    rates = ", ".join(str(0.001 * (i + 1)) for i in range(50))
    seeds = ", ".join(map(str, range(21)))
    path = bad_sweep(tmp_path, f"    image.learning_rate: [{rates}]\n    image.seed: [{seeds}]\n")
    assert_refused(run_luigi(["Sweep", "--config", str(path)], tmp_path / "ws"), path, 12,
                   "this grid has 1050 trials, more than 1000; pass --yes")


def test_sweep_file_given_to_a_plain_run_says_how_to_run_it(tmp_path):
    path = bad_sweep(tmp_path, "    image.learning_rate: [0.1]\n")
    run = run_luigi(["ImageRun", "--config", str(path)], tmp_path / "ws")
    assert_refused(run, path, 8, "a sweep file runs with `Sweep --config FILE`")


def test_sweep_without_config_says_what_it_needs(tmp_path):
    run = run_luigi(["Sweep"], tmp_path / "ws")
    assert run.returncode != 0, run
    assert run.output.strip().splitlines()[-1] == ("tfpipe: error: Sweep needs --config FILE: a config with a "
                                                   "sweep: section (README, Sweeps)")
    assert "Traceback" not in run.output, run
