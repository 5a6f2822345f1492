"""Edits and reruns in a temporary copy of the project: exactly what an edit touches runs again."""
import shutil

import pytest

from tests.conftest import (
    ROOT,
    TINY_NAME,
    make_corpus,
    make_image_set,
    run_luigi,
    stages_written_since,
    write_idx_folder,
    written_since,
)

pytestmark = pytest.mark.slow

T = TINY_NAME
MLP_CHAIN = {f"train/{T}-mlp", f"evaluate/{T}-mlp", f"runs/image-{T}-mlp"}


@pytest.fixture
def runs(tiny):
    """(mlp, cnn) ImageRun command lines on the tiny dataset."""
    return (["ImageRun", *tiny, "--model", "mlp"],
            ["ImageRun", *tiny, "--model", "cnn", "--model-params",
             '{"filters1": 4, "filters2": 4, "dense_units": 16}'])


@pytest.fixture
def project(tmp_path):
    """A copy of the code; luigi runs from it, so edits there are what runs."""
    copy = tmp_path / "project"
    for name in ("pipelines", "tasks", "plugins"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "luigi.cfg", copy / "luigi.cfg")
    return copy


def run_both(project, workspace, mirror, runs, extra=()):
    """Rerun both models; return the task folders written by this rerun."""
    started = None
    for args in runs:
        run = run_luigi([*args, *extra], workspace, mirror, extra_path=[project], cwd=project)
        assert run.returncode == 0, run
        started = started or run.started
    return written_since(workspace, started)


def test_each_edit_reruns_exactly_what_it_touches(project, workspace, mirror, runs, tiny_data):
    first = run_both(project, workspace, mirror, runs)
    assert first >= {f"train/{T}-mlp", f"train/{T}-cnn", f"download/{T}"}
    assert run_both(project, workspace, mirror, runs) == set()

    mlp = project / "plugins" / "models" / "mlp.py"
    source = mlp.read_text()
    mlp.write_text(source.replace('activation="relu"', 'activation="tanh"'))
    assert run_both(project, workspace, mirror, runs) == MLP_CHAIN  # cnn, data: reused

    mlp.write_text('# a comment\n\n' + mlp.read_text().replace('"""Multi', '"""Edited docs. Multi')
                   .replace("hidden_units: int = 100", "hidden_units:int=100"))
    assert run_both(project, workspace, mirror, runs) == set()  # cosmetic: nothing

    assert run_both(project, workspace, mirror, runs, ["--validation-fraction", "0.1"]) == {
        f"preprocess/{T}", f"train/{T}-mlp", f"evaluate/{T}-mlp", f"runs/image-{T}-mlp",
        f"train/{T}-cnn", f"evaluate/{T}-cnn", f"runs/image-{T}-cnn"}  # not the download

    write_idx_folder(tiny_data, make_image_set(seed=99))  # same names, other content
    assert f"download/{T}" in run_both(project, workspace, mirror, runs)


def test_switching_a_value_back_costs_nothing(project, workspace, mirror, runs):
    mlp = runs[0]
    for lr in ("0.001", "0.002"):
        assert run_luigi([*mlp, "--learning-rate", lr], workspace, mirror, cwd=project).returncode == 0
    back = run_luigi([*mlp, "--learning-rate", "0.001"], workspace, mirror, cwd=project)
    assert back.returncode == 0 and written_since(workspace, back.started) == set()


def test_editing_the_sampler_reruns_generation_only(project, workspace, tmp_path):
    """Generation's code lives apart from the scorer training validates with: a sampling edit
    keeps the trained model and its evaluation."""
    text_run = ["TextRun", "--corpus", str(make_corpus(tmp_path / "tiny.txt")), "--steps", "10",
                "--window", "20", "--batch-size", "8", "--model-params", '{"units": 8, "embedding_dim": 4}',
                "--length", "20", "--seed-length", "10"]
    assert run_luigi(text_run, workspace, extra_path=[project], cwd=project).returncode == 0

    sampling = project / "tasks" / "text" / "sampling.py"
    sampling.write_text(sampling.read_text() + "\n\ndef edited() -> int:\n    return 1\n")
    rerun = run_luigi(text_run, workspace, extra_path=[project], cwd=project)
    assert rerun.returncode == 0, rerun
    assert stages_written_since(workspace, rerun.started) == {"generate", "runs"}
