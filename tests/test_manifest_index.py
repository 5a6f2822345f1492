"""The per-stage manifest index: explain scores earlier runs from one file and reads one manifest."""
import importlib
import sys

import luigi
import pytest

from pipelines import explain as explain_module
from pipelines.explain import closest_completed
from tasks import manifest_index

STAGE = '''
import luigi

from tasks.base import PipelineTask


class IndexedStage(PipelineTask):
    stage = "indexed"
    value = luigi.IntParameter()
    other = luigi.IntParameter(default=0)

    def run_name(self):
        return "indexed"

    def produce(self, folder):
        (folder / "out.txt").write_text(str(self.value + self.other))
        return {}
'''


@pytest.fixture
def stage(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "indexed_stage.py").write_text(STAGE)
    module = importlib.import_module("indexed_stage")
    workspace = str(tmp_path / "ws")

    def make(value, other=0):
        luigi.task_register.Register.clear_instance_cache()
        return module.IndexedStage(value=value, other=other, workspace=workspace)

    yield make
    luigi.task_register.Register.clear_instance_cache()
    sys.modules.pop("indexed_stage", None)


def test_each_completed_run_adds_one_line(stage):
    for value in (1, 2, 3):
        stage(value).run()
    lines = list(manifest_index.indexed(stage(1).folder().parent, "indexed"))
    assert sorted(line.name for line in lines) == sorted(stage(v).folder().name for v in (1, 2, 3))
    assert {line.task for line in lines} == {"IndexedStage"}
    assert len({line.groups["params"] for line in lines}) == 3  # one parameter differs
    assert len({line.groups["code"] for line in lines}) == 1
    side = manifest_index.groups_file(stage(1).folder().parent, "indexed").read_text().splitlines()
    assert [line.partition("\t")[0].partition(":")[0] for line in side].count("code") == 1  # stored once


def test_explain_reads_only_the_closest_runs_manifest(stage, monkeypatch):
    for value in [v for v in range(12) if v != 6]:
        stage(value, other=1).run()  # two parameters differ from the task below
    stage(5).run()  # one parameter differs: the closest
    read = []
    real = explain_module.read_manifest
    monkeypatch.setattr(explain_module, "read_manifest", lambda folder: read.append(folder.name) or real(folder))
    closest = closest_completed(stage(6))
    assert closest["fingerprint"] == stage(5).fingerprint()
    assert read == [stage(5).folder().name]


def test_folders_missing_from_the_index_are_read_and_added(stage):
    stage(1).run()
    stage(2).run()
    index = manifest_index.index_file(stage(1).folder().parent, "indexed")
    index.unlink()  # as in a workspace written before the index existed
    assert closest_completed(stage(3))["fingerprint"] in {stage(1).fingerprint(), stage(2).fingerprint()}
    assert len(index.read_text().splitlines()) == 2


def test_a_line_whose_folder_is_gone_and_a_damaged_line_are_ignored(stage):
    import shutil

    stage(1).run()
    stage(2, other=5).run()
    index = manifest_index.index_file(stage(1).folder().parent, "indexed")
    with open(index, "a") as handle:
        handle.write('{"folder": "indexed-00', )  # a line cut short by a crash
    shutil.rmtree(stage(1).folder())  # the closest run, pruned
    assert closest_completed(stage(3))["fingerprint"] == stage(2, other=5).fingerprint()


def test_the_index_counts_changes_as_explain_lists_them():
    old = {"params": {"steps": 5, "model_params": {"units": 8, "depth": 2}}, "code": {"a": "1", "b": "2"},
           "plugin": {"name": "mlp"}, "upstream": {"x": "f1"}}
    new = {"params": {"steps": 6, "model_params": {"units": 8}}, "code": {"a": "1", "b": "3", "c": "4"},
           "plugin": {"name": "cnn"}, "upstream": {"x": "f2"}}
    listed = explain_module.changes(old, new)
    assert [(change.kind, change.key) for change in listed] == [
        ("params", "model_params.depth"), ("params", "steps"), ("code", "b"), ("code", "c"),
        ("plugin", "plugin"), ("upstream", "x")]
    counted = manifest_index.differences(manifest_index.grouped_digests(old), manifest_index.grouped_digests(new))
    assert counted == len(listed)


def test_runs_come_in_the_order_of_a_full_sort_by_changes(stage):
    # Ties (same count) keep the newest-first order; a run with more differing items comes later even
    # when fewer of its groups differ.
    for value, other in [(1, 0), (2, 0), (6, 1), (1, 1), (7, 7), (6, 0)]:
        stage(value, other).run()
    task = stage(6, other=2)
    stage_dir = task.folder().parent
    runs = manifest_index.entries(stage_dir, "indexed", "IndexedStage", lambda name: True, lambda folder: None)
    runs.sort(key=lambda run: run.finished, reverse=True)
    expected = sorted(runs, key=manifest_index.Scorer(stage_dir, "indexed", task.components()).changes)
    scorer = manifest_index.Scorer(stage_dir, "indexed", task.components())
    assert list(scorer.fewest_changes_first(runs)) == expected
    assert all(scorer.at_least(run) <= scorer.changes(run) for run in runs)


def test_explain_counts_the_changes_of_only_the_runs_it_needs(stage, monkeypatch):
    for value in range(12):
        stage(value, other=value).run()  # other runs: their parameters differ in two items
    stage(50).run()  # one item off: no other run can be closer
    index = manifest_index.index_file(stage(50).folder().parent, "indexed")
    newest = stage(50).folder().name  # and the newest (the others finished within the same second)
    index.write_text("".join(line if line.startswith(newest) else line.replace("\t20", "\t19", 1)
                             for line in index.read_text().splitlines(keepends=True)))
    counted = []
    real = manifest_index.Scorer._items
    monkeypatch.setattr(manifest_index.Scorer, "_items",
                        lambda self, group, digest: counted.append(group) or real(self, group, digest))
    assert closest_completed(stage(51))["fingerprint"] == stage(50).fingerprint()
    assert counted == ["params"]  # a full sort would read the parameters of all 13 runs
