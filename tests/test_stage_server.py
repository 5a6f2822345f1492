"""The stages a Luigi worker runs share one process (tasks/stage_server.py), and that changes
nothing a stage computes: real processes, real TensorFlow, a real tiny FullRun."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from plugins.errors import TfpipeError
from tasks.protocol import StageCrash, run_stage
from tests.conftest import manifests, run_luigi, write_tiny_full_config
from tests.stage_probe import ProbeStage


def stage(tmp_path: Path, action: str, **request) -> dict:
    folder = tmp_path / "stage" / f"probe-{len(list(tmp_path.glob('stage/*')))}"
    folder.mkdir(parents=True)
    return run_stage(ProbeStage(), {"action": action, **request}, folder)


def test_stages_run_one_after_another_share_one_process(tmp_path):
    first, second = stage(tmp_path, "pid"), stage(tmp_path, "pid")
    assert first["pid"] == second["pid"] == first["process"]["pid"]
    assert second["process"]["stage"] == first["process"]["stage"] + 1


@pytest.mark.parametrize("failure, raised, message", [
    ("user_error", TfpipeError, "the probe's user error"),
    ("crash", StageCrash, "RuntimeError: the probe crashed"),
    ("exit", StageCrash, "exited with code 7"),
])
def test_a_failed_stage_never_hands_its_process_to_the_next(tmp_path, failure, raised, message):
    before = stage(tmp_path, "pid")
    with pytest.raises(raised, match=message):
        stage(tmp_path, failure)
    after = stage(tmp_path, "pid")
    assert after["pid"] != before["pid"] and after["process"]["stage"] == 1


def test_a_stage_interrupted_while_relayed_is_stopped_and_its_output_never_reaches_the_next(tmp_path):
    before = stage(tmp_path, "pid")
    with pytest.raises(json.JSONDecodeError):
        stage(tmp_path, "garbled")
    assert not Path(f"/proc/{before['pid']}").exists()  # stopped at once, not left sleeping
    after = stage(tmp_path, "pid")
    assert after["pid"] != before["pid"] and after["process"]["stage"] == 1


def test_another_environment_gets_its_own_process(tmp_path, monkeypatch):
    plain = stage(tmp_path, "pid")
    monkeypatch.setenv("PROBE_MARK", "marked")  # fixed when the process starts, like CUDA_VISIBLE_DEVICES
    marked = stage(tmp_path, "pid")
    assert marked["env"] == "marked" and marked["pid"] != plain["pid"]


def test_reuse_process_false_starts_a_process_per_stage(tmp_path):
    def fresh() -> dict:
        folder = tmp_path / "stage" / f"fresh-{len(list(tmp_path.glob('stage/*')))}"
        folder.mkdir(parents=True)
        return run_stage(ProbeStage(executor_options={"reuse_process": False}), {"action": "pid"}, folder)

    assert fresh()["pid"] != fresh()["pid"]


@pytest.mark.slow
def test_each_stage_finds_tensorflow_as_a_fresh_process_would(tmp_path):
    deterministic = stage(tmp_path, "tensorflow", deterministic=True)
    later = stage(tmp_path, "tensorflow", deterministic=False)
    assert later["pid"] == deterministic["pid"]  # the same process ...
    assert deterministic["determinism"] and not later["determinism"]  # ... without the last stage's settings
    assert later["layer_name"] == deterministic["layer_name"]  # nor its Keras session
    assert later["draw"] == deterministic["draw"]  # and with its seeds set again


def final_weights(checkpoints: Path) -> dict[str, np.ndarray]:
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(checkpoints))
    reader = tf.train.load_checkpoint(latest)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(latest)
            if name.startswith("model_variables/")}


@pytest.mark.slow
def test_a_full_run_in_one_process_trains_evaluates_and_generates_exactly_as_in_one_process_per_stage(tmp_path):
    config = write_tiny_full_config(tmp_path)
    with open(config, "a", encoding="utf-8") as handle:
        handle.write("executors:\n  local:\n    reuse_process: false\n")
    separate = tmp_path / "separate.yaml"
    separate.write_text(config.read_text().replace("model: mlp", "model: mlp\n  deterministic: true")
                        .replace("model: lstm", "model: lstm\n  deterministic: true"))
    shared = tmp_path / "shared.yaml"
    shared.write_text(separate.read_text().replace("reuse_process: false", "reuse_process: true"))
    for name in ("shared", "separate"):
        run = run_luigi(["FullRun", "--config", str(tmp_path / f"{name}.yaml")], tmp_path / name, tmp_path / "mirror")
        assert run.returncode == 0, run

    def processes(workspace: Path) -> list[dict]:
        records = [json.loads(path.read_text())["record"]
                   for stage in ("preprocess", "train", "evaluate", "generate") for path in manifests(workspace, stage)]
        return [record["process"] for record in records if "process" in record]  # text preprocessing has none

    shared_processes = processes(tmp_path / "shared")
    # Image preprocessing, 2 trainings, 2 evaluations, 1 generation: one process, six stages in turn.
    assert len(shared_processes) == 6
    assert len({p["pid"] for p in shared_processes}) == 1
    assert sorted(p["stage"] for p in shared_processes) == list(range(1, 7))
    assert len({p["pid"] for p in processes(tmp_path / "separate")}) == 6

    for stage, wanted in (("train", "checkpoints"), ("evaluate", "metrics.json"), ("generate", "samples.json")):
        for ours, theirs in zip(manifests(tmp_path / "shared", stage), manifests(tmp_path / "separate", stage)):
            assert ours.parent.name == theirs.parent.name  # the same fingerprints: where it runs is not one
            if stage == "train":
                mine, other = final_weights(ours.parent / wanted), final_weights(theirs.parent / wanted)
                assert mine.keys() == other.keys() and mine
                assert all(np.array_equal(mine[name], other[name]) for name in mine)
            else:
                assert (ours.parent / wanted).read_bytes() == (theirs.parent / wanted).read_bytes()


def test_a_reuse_process_that_is_not_a_boolean_is_refused_with_its_line(tmp_path, tiny):
    config = tmp_path / "run.yaml"
    config.write_text("executors:\n  local:\n    reuse_process: maybe\n")
    run = run_luigi(["ImageRun", *tiny, "--config", str(config)], tmp_path / "ws", tmp_path / "mirror")
    assert run.returncode == 35, run
    assert f"tfpipe: error: {config}:3: executors.local.reuse_process must be true or false, got 'maybe'" in run.output
    assert not (tmp_path / "ws" / "train").exists()  # refused before anything ran
