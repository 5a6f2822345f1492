"""Model plugins written as a subclassed keras.Model or from tf.Module layers train through the
normal image path (train, checkpoint, export, evaluate from the SavedModel), installed out of tree."""
import json

import pytest

from tests.conftest import TINY, manifests, run_luigi
from tests.plugin_fixtures import install_custom_models

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("model", ["band_net", "module_net"])
def test_custom_model_plugin_trains_exports_and_evaluates(model, workspace, mirror, tmp_path):
    site = install_custom_models(tmp_path / "site")
    run = run_luigi(["ImageRun", *TINY, "--model", model], workspace, mirror, extra_path=[site])
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
    assert f"{model} on tiny" in report and report.count("data:image/png;base64,") == 2
