"""Model plugins written as a subclassed keras.Model or from tf.Module layers train through the
normal image path (train, checkpoint, export, evaluate from the SavedModel), installed out of tree."""
import json

import pytest

from tests.conftest import TINY_NAME, manifests, run_luigi
from tests.plugin_fixtures import install_custom_models

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("model", ["band_net", "module_net"])
def test_custom_model_plugin_trains_exports_and_evaluates(model, workspace, mirror, tiny, tmp_path):
    site = install_custom_models(tmp_path / "site")
    run = run_luigi(["ImageRun", *tiny, "--model", model], workspace, mirror, extra_path=[site])
    assert run.returncode == 0, run
    train_dir = manifests(workspace, "train")[0].parent
    record = json.loads((train_dir / "manifest.json").read_text())
    assert record["components"]["plugin"]["distribution"] == "tfpipe-custommodels"
    assert record["record"]["final_step"] == 60 and "saved_model" in record["record"]["exported"]
    # Every variable of the model is checkpointed (a tf.Module's own tf.Variables included).
    history = json.loads((train_dir / "history.json").read_text())
    assert [row["step"] for row in history["validation"]] == [20, 40, 60]
    metrics = json.loads((manifests(workspace, "evaluate")[0].parent / "metrics.json").read_text())
    assert metrics["count"] == 100 and metrics["accuracy"] > 0.5  # learnt, and evaluated via saved_model
    report = (manifests(workspace, "runs")[0].parent / "report.html").read_text()
    assert f"{model} on {TINY_NAME}" in report and report.count("data:image/png;base64,") == 2


def test_tensorboard_reads_train_and_validation_curves(workspace, mirror, tiny):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    assert run_luigi(["ImageRun", *tiny, "--model", "mlp"], workspace, mirror).returncode == 0
    # What `tensorboard --logdir workspace/train` loads: one run per train/validation folder.
    logs = EventMultiplexer().AddRunsFromDirectory(str(workspace / "train")).Reload()
    runs = {run.rsplit("/", 1)[-1]: tags["tensors"] for run, tags in logs.Runs().items()}
    assert set(runs) == {"train", "validation"}
    for split, tags in runs.items():
        assert {"loss", "accuracy"} <= set(tags), (split, tags)
    validation = next(run for run in logs.Runs() if run.endswith("validation"))
    assert [event.step for event in logs.Tensors(validation, "loss")] == [20, 40, 60]
    report = (manifests(workspace, "runs")[0].parent / "report.html").read_text()
    assert "tensorboard --logdir" in report
