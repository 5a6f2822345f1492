"""oneDNN's CPU kernels per model (tasks/onednn.py): chosen in the Luigi process from the model
plugin's literal ONEDNN or the onednn setting, applied by TensorFlow in the stage's own process,
shared by the stages of that model, and never a reason to retrain."""
from __future__ import annotations

import json

import pytest

from plugins import registry
from tasks.onednn import ENV, onednn_env
from tests.conftest import manifests, run_luigi


def test_on_and_off_decide_for_every_model_and_over_the_environment(monkeypatch):
    monkeypatch.setenv(ENV, "0")
    assert onednn_env("on", "mlp") == {ENV: "1"}
    monkeypatch.setenv(ENV, "1")
    assert onednn_env("off", "cnn") == {ENV: "0"}


def test_auto_follows_the_model_plugin(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert onednn_env("auto", "cnn") == {ENV: "1"}  # plugins/models/cnn.py: ONEDNN = True
    assert onednn_env("auto", "mlp") == {}  # declares nothing: TensorFlow's own default


def test_under_auto_the_users_own_variable_is_left_as_it_is(monkeypatch):
    monkeypatch.setenv(ENV, "0")
    assert onednn_env("auto", "cnn") == {}  # the stage's environment inherits their 0


def test_the_plugins_choice_is_read_from_its_source_without_importing_it(tmp_path, monkeypatch):
    (tmp_path / "onednn_probe_model.py").write_text(
        'KIND = "image_classifier"\nONEDNN = False\nraise RuntimeError("imported")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    info = registry.PluginInfo("models", "probe", "onednn_probe_model", "probe-dist", "1.0")
    assert info.declared("ONEDNN") is False
    assert info.declared("KIND") == "image_classifier"
    assert info.declared("ANYTHING_ELSE") is None


def stage_records(workspace, stage: str) -> list[dict]:
    return [json.loads(path.read_text())["record"] for path in manifests(workspace, stage)]


@pytest.mark.slow
def test_the_cnn_trains_and_is_evaluated_with_onednn_in_one_process_and_off_retrains_nothing(
        tiny, workspace, mirror, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    small_cnn = ["--model", "cnn", "--model-params", '{"filters1": 4, "filters2": 4, "dense_units": 16}']
    run = run_luigi(["ImageRun", *tiny, *small_cnn], workspace, mirror)
    assert run.returncode == 0, run
    (train,), (evaluate,) = stage_records(workspace, "train"), stage_records(workspace, "evaluate")
    assert train["onednn"] == "on"  # as TensorFlow itself reports it in the stage's process
    assert evaluate["process"]["pid"] == train["process"]["pid"]  # the same environment: one process

    run = run_luigi(["ImageRun", *tiny, *small_cnn, "--onednn", "off"], workspace, mirror)
    assert run.returncode == 0, run
    assert len(manifests(workspace, "train")) == 1  # rounding, not what is learnt: nothing retrains
    assert [record["onednn"] for record in stage_records(workspace, "train")] == ["on"]


@pytest.mark.slow
def test_off_reaches_tensorflow_in_the_stage_process(tiny, workspace, mirror, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    run = run_luigi(["ImageRun", *tiny, "--model", "cnn", "--model-params",
                     '{"filters1": 4, "filters2": 4, "dense_units": 16}', "--onednn", "off"], workspace, mirror)
    assert run.returncode == 0, run
    assert [record["onednn"] for record in stage_records(workspace, "train")] == ["off"]
