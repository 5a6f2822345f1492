"""`explain`: exact origins of each setting, the closest earlier run, `key: old -> new` changes.

Earlier runs are stood in for by manifests written from the real tasks' components, so
nothing trains here and no TensorFlow starts.
"""
import importlib
import sys

import luigi
import pytest
from luigi.task import flatten

import pipelines  # noqa: F401  registers the run tasks
from pipelines.explain import closest_completed, diff_components, explain, explain_command_line
from pipelines.runs import TextRun
from pipelines.settings import get as setting
from tasks.integrity import write_manifest
from tests.conftest import make_corpus


@pytest.fixture
def corpus(tmp_path):
    return make_corpus(tmp_path / "texts" / "tiny.txt")


@pytest.fixture(autouse=True)
def fresh_instances():
    # Luigi caches task instances by parameters; each test builds its own graph.
    luigi.task_register.Register.clear_instance_cache()
    yield
    luigi.task_register.Register.clear_instance_cache()


def graph(task):
    yield task
    for upstream in flatten(task.requires()):
        yield from graph(upstream)


def pretend_completed(run: luigi.Task, family: str) -> None:
    """Write the manifest a finished run of `family` in run's graph would have written."""
    task = next(task for task in graph(run) if task.get_task_family() == family)
    task.folder().mkdir(parents=True, exist_ok=True)
    write_manifest(task.folder(), {
        "task": family, "fingerprint": task.fingerprint(), "components": task.components(),
        "finished": "2024-01-01T00:00:00+00:00", "files": {}})


def reasons_of(verdicts, label):
    return next(v.reasons for v in verdicts if v.task.label() == label)


def test_text_learning_rate_on_the_command_line_is_named_as_text_learning_rate(tmp_path, corpus):
    workspace = str(tmp_path / "ws")
    pretend_completed(TextRun(corpus=str(corpus), workspace=workspace), "TrainTextModel")
    verdicts = explain_command_line(["TextRun", "--corpus", str(corpus), "--workspace", workspace,
                                     "--learning-rate", "0.03"])
    assert reasons_of(verdicts, "TrainTextModel/tiny-lstm") == [
        (f"parameter learning_rate: {setting('text.learning_rate').default} -> 0.03 (set by text.learning_rate "
         "at command line --learning-rate)")]


def test_origins_are_exact_per_path_file_line_and_model(tmp_path, corpus):
    workspace = str(tmp_path / "ws")
    pretend_completed(TextRun(corpus=str(corpus), model="gru", workspace=workspace,
                              model_params={"units": 16}), "TrainTextModel")
    config = tmp_path / "mine.yaml"
    config.write_text("image:\n  learning_rate: 0.5\ntext:\n  learning_rate: 0.02\n"
                      "models:\n  mlp:\n    hidden_units: 3\n  gru:\n    units: 8\n")
    verdicts = explain_command_line(["TextRun", "--corpus", str(corpus), "--workspace", workspace,
                                     "--model", "gru", "--config", str(config)])
    assert reasons_of(verdicts, "TrainTextModel/tiny-gru") == [
        f"parameter learning_rate: {setting('text.learning_rate').default} -> 0.02 (set by text.learning_rate at "
        f"{config}:4)",
        f"parameter model_params.units: 16 -> 8 (set by models.gru.units at {config}:9)"]


def test_a_default_names_its_declaration(tmp_path, corpus):
    workspace = str(tmp_path / "ws")
    pretend_completed(TextRun(corpus=str(corpus), workspace=workspace, steps=10), "TrainTextModel")
    verdicts = explain_command_line(["TextRun", "--corpus", str(corpus), "--workspace", workspace])
    [reason] = reasons_of(verdicts, "TrainTextModel/tiny-lstm")
    assert reason.startswith(f"parameter steps: 10 -> {setting('text.steps').default} (set by text.steps "
                             "(default) at pipelines/settings.py:")


STAGE = '''
import luigi

from tasks.base import PipelineTask


class EditedStage(PipelineTask):
    stage = "edited"
    value = luigi.IntParameter()

    def run_name(self):
        return "edited"

    def produce(self, folder):
        (folder / "out.txt").write_text(str(self.value * 2))
        return {}
'''


def test_after_an_edit_and_its_revert_explain_compares_with_the_matching_run(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    source = tmp_path / "edited_stage.py"
    source.write_text(STAGE)
    module = importlib.import_module("edited_stage")
    workspace = str(tmp_path / "ws")

    def stage(value):
        luigi.task_register.Register.clear_instance_cache()
        return module.EditedStage(value=value, workspace=workspace)

    stage(1).run()  # code as written
    first = stage(1).fingerprint()
    source.write_text(STAGE.replace("* 2", "* 20"))
    stage(1).run()  # after an edit: the newest run
    source.write_text(STAGE)  # the edit reverted

    task = stage(2)
    assert closest_completed(task)["fingerprint"] == first
    [verdict] = explain(task)
    assert verdict.reasons == ["parameter value: 1 -> 2"]  # no source change blamed
    sys.modules.pop("edited_stage", None)


def test_changes_are_printed_as_key_old_new_with_nested_keys_flattened():
    old = {"params": {"steps": 5, "model_params": {"hidden_units": 100}, "temperatures": [0.5]},
           "plugin": {"name": "mlp", "version": "0.1"}}
    new = {"params": {"steps": 5, "model_params": {"hidden_units": 200, "dropout": 0.1},
                      "temperatures": [0.5, 1.0]},
           "plugin": {"name": "mlp", "version": "0.2"}}
    reasons = diff_components(old, new, lambda key: "models.mlp.hidden_units at a.yaml:3"
                              if key == "model_params.hidden_units" else None)
    assert reasons == [
        "parameter model_params.dropout: (unset) -> 0.1",
        ("parameter model_params.hidden_units: 100 -> 200 (set by models.mlp.hidden_units at "
         "a.yaml:3)"),
        "parameter temperatures: [0.5] -> [0.5, 1.0]",
        "plugin changed: version: 0.1 -> 0.2",
    ]
    assert not any("{" in reason for reason in reasons)
