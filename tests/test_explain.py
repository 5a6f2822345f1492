"""`python -m pipelines explain`: what would run and why, without running or importing TensorFlow."""
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TINY, luigi_env, manifests, run_luigi, written_since

pytestmark = pytest.mark.slow
MLP = ["ImageRun", *TINY, "--model", "mlp"]


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


def test_explain_names_the_changed_parameter_and_runs_nothing(workspace, mirror):
    assert run_luigi(MLP, workspace, mirror).returncode == 0
    out = explain(MLP, workspace, mirror)
    assert "0 of 5 tasks would run" in out

    before = manifests(workspace, "train")
    out = explain([*MLP, "--learning-rate", "0.003"], workspace, mirror)
    assert "[will run]" in verdict_line(out, "TrainImageModel/tiny-mlp")
    assert ("parameter learning_rate: 0.001 -> 0.003 (set by image.learning_rate at command line "
            "--learning-rate)") in out
    assert "[complete]" in verdict_line(out, "PreprocessImages/tiny")
    assert "[complete]" in verdict_line(out, "DownloadImageDataset/tiny")
    assert "upstream changed: TrainImageModel/tiny-mlp" in out
    assert "3 of 5 tasks would run" in out
    assert manifests(workspace, "train") == before


def test_explain_names_an_edited_source_file(workspace, mirror, tmp_path):
    import shutil

    project = tmp_path / "project"
    for name in ("pipelines", "tasks", "plugins"):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    assert run_luigi(MLP, workspace, mirror, extra_path=[project], cwd=project).returncode == 0
    mlp = project / "plugins" / "models" / "mlp.py"
    mlp.write_text(mlp.read_text().replace('activation="relu"', 'activation="tanh"'))
    out = explain(MLP, workspace, mirror, cwd=project, extra_path=[project])
    assert f"source changed: plugins.models.mlp ({mlp})" in out
    assert "[complete]" in verdict_line(out, "PreprocessImages/tiny")


def test_explain_sees_a_resumable_training(workspace, mirror):
    assert run_luigi(MLP, workspace, mirror).returncode == 0
    # A folder with checkpoints but no manifest is what a killed training leaves.
    for stage in ("train", "evaluate", "runs"):
        manifests(workspace, stage)[0].unlink()
    out = explain(MLP, workspace, mirror)
    assert "[will resume from step 60]" in verdict_line(out, "TrainImageModel/tiny-mlp")
    rerun = run_luigi(MLP, workspace, mirror)
    assert rerun.returncode == 0 and "resuming from checkpoint at step 60" in rerun.output
    assert written_since(workspace, rerun.started) == {"train/tiny-mlp", "evaluate/tiny-mlp", "runs/image-tiny-mlp"}
