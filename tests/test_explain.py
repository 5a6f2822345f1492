"""`python -m pipelines explain`: what would run and why, without running or importing TensorFlow."""
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TINY_NAME, luigi_env, manifests, run_luigi, written_since

pytestmark = pytest.mark.slow


@pytest.fixture
def mlp(tiny):
    return ["ImageRun", *tiny, "--model", "mlp"]


def explain(args, workspace, mirror, cwd=ROOT, extra_path=None):
    code = ("import sys, runpy; sys.argv = ['pipelines', 'explain', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('pipelines', run_name='__main__')\n"
            "finally:\n    print('TF-IMPORTED' if 'tensorflow' in sys.modules else 'TF-FREE')")
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          env=luigi_env(workspace, mirror, extra_path), check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("TF-FREE")
    return done.stdout


def verdict_line(output, label):
    return next(line for line in output.splitlines() if line.strip().startswith(label))


def test_explain_names_the_changed_parameter_and_runs_nothing(mlp, workspace, mirror):
    assert run_luigi(mlp, workspace, mirror).returncode == 0
    out = explain(mlp, workspace, mirror)
    assert "0 of 5 tasks would run" in out

    before = manifests(workspace, "train")
    out = explain([*mlp, "--learning-rate", "0.003"], workspace, mirror)
    assert "[will run]" in verdict_line(out, f"TrainImageModel/{TINY_NAME}-mlp")
    assert ("parameter learning_rate: 0.002 -> 0.003 (set by image.learning_rate at command line "
            "--learning-rate)") in out
    assert "[complete]" in verdict_line(out, f"PreprocessImages/{TINY_NAME}")
    assert "[complete]" in verdict_line(out, f"DownloadImageDataset/{TINY_NAME}")
    assert f"upstream changed: TrainImageModel/{TINY_NAME}-mlp" in out
    assert "3 of 5 tasks would run" in out
    assert manifests(workspace, "train") == before


def test_explain_names_an_edited_source_file(mlp, workspace, mirror, tmp_path):
    import shutil

    project = tmp_path / "project"
    for name in ("pipelines", "tasks", "plugins"):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    assert run_luigi(mlp, workspace, mirror, extra_path=[project], cwd=project).returncode == 0
    source = project / "plugins" / "models" / "mlp.py"
    source.write_text(source.read_text().replace('activation="relu"', 'activation="tanh"'))
    out = explain(mlp, workspace, mirror, cwd=project, extra_path=[project])
    assert f"source changed: plugins.models.mlp ({source})" in out
    assert "[complete]" in verdict_line(out, f"PreprocessImages/{TINY_NAME}")


def test_explain_sees_a_resumable_training(mlp, workspace, mirror):
    assert run_luigi(mlp, workspace, mirror).returncode == 0
    # A folder with checkpoints but no manifest is what a killed training leaves.
    for stage in ("train", "evaluate", "runs"):
        manifests(workspace, stage)[0].unlink()
    out = explain(mlp, workspace, mirror)
    assert "[will resume from step 60]" in verdict_line(out, f"TrainImageModel/{TINY_NAME}-mlp")
    rerun = run_luigi(mlp, workspace, mirror)
    assert rerun.returncode == 0 and "resuming from checkpoint at step 60" in rerun.output
    assert written_since(workspace, rerun.started) == {f"train/{TINY_NAME}-mlp", f"evaluate/{TINY_NAME}-mlp",
                                                        f"runs/image-{TINY_NAME}-mlp"}
