"""End to end through the real `luigi` command line, on a tiny generated dataset."""
import json

import pytest

from tests.conftest import (
    TINY,
    make_image_set,
    manifests,
    run_luigi,
    stages_written_since,
    write_idx_folder,
)
from tests.plugin_fixtures import install_tiny_model

pytestmark = pytest.mark.slow


def test_image_run_trains_evaluates_and_reports(workspace, mirror):
    run = run_luigi(["ImageRun", *TINY, "--model", "mlp"], workspace, mirror)
    assert run.returncode == 0, run
    for stage in ("download", "preprocess", "train", "evaluate", "runs"):
        assert len(manifests(workspace, stage)) == 1, stage
    train_dir = manifests(workspace, "train")[0].parent
    manifest = json.loads((train_dir / "manifest.json").read_text())
    record = manifest["record"]
    assert record["final_step"] == 60 and record["resumed_from"] == 0
    # Under the real `luigi` command the code that runs is what the fingerprint hashes.
    assert {"tasks.image.train", "tasks.training_loop", "plugins.models.mlp"} <= set(manifest["components"]["code"])
    assert "plugins.models.cnn" not in manifest["components"]["code"]
    assert (train_dir / "saved_model").is_dir() and (train_dir / "model.keras").is_file()
    assert list((train_dir / "tensorboard" / "train").glob("events.out.tfevents.*"))
    history = json.loads((train_dir / "history.json").read_text())
    assert [row["step"] for row in history["validation"]] == [20, 40, 60]

    evaluate_dir = manifests(workspace, "evaluate")[0].parent
    metrics = json.loads((evaluate_dir / "metrics.json").read_text())
    assert metrics["count"] == 100 and len(metrics["confusion_matrix"]) == 4
    assert sum(map(sum, metrics["confusion_matrix"])) == 100
    assert metrics["accuracy"] > 0.5  # the toy classes are trivially separable
    assert (evaluate_dir / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    summary = manifests(workspace, "runs")[0].parent / "summary.md"
    assert str(summary) in run.output and "mlp on tiny" in summary.read_text()


def test_rerun_reuses_and_edits_rerun_only_what_they_touch(workspace, mirror, tmp_path):
    assert run_luigi(["ImageRun", *TINY, "--model", "mlp"], workspace, mirror).returncode == 0

    again = run_luigi(["ImageRun", *TINY, "--model", "mlp"], workspace, mirror)
    assert again.returncode == 0 and "Did not run any tasks" in again.output
    assert stages_written_since(workspace, again.started) == set()
    assert "results:" in again.output  # still says where the results are

    lr = run_luigi(["ImageRun", *TINY, "--model", "mlp", "--learning-rate", "0.003"], workspace, mirror)
    assert lr.returncode == 0, lr
    assert stages_written_since(workspace, lr.started) == {"train", "evaluate", "runs"}

    config = tmp_path / "mine.yaml"
    config.write_text("image:\n  learning_rate: 0.002\nmodels:\n  mlp:\n    hidden_units: 8\n")
    from_yaml = run_luigi(["ImageRun", *TINY, "--model", "mlp", "--config", str(config)], workspace, mirror)
    assert from_yaml.returncode == 0, from_yaml
    assert stages_written_since(workspace, from_yaml.started) == {"train", "evaluate", "runs"}
    hparams = [json.loads(p.read_text())["record"]["hparams"] for p in manifests(workspace, "train")]
    assert {"hidden_units": 8} in hparams


def test_failures_exit_non_zero_with_one_clear_message(workspace, mirror, tmp_path):
    unknown = run_luigi(["ImageRun", *TINY, "--model", "resnet"], workspace, mirror)
    assert unknown.returncode != 0
    assert "no model named 'resnet' is installed" in unknown.output and "cnn, mlp" in unknown.output

    bad = tmp_path / "bad.yaml"
    bad.write_text("image:\n  stepz: 3\n")
    config = run_luigi(["ImageRun", *TINY, "--config", str(bad)], workspace, mirror)
    assert config.returncode != 0 and f"{bad}:2: unknown key image.stepz" in config.output

    diverged = run_luigi(["ImageRun", *TINY, "--model", "mlp", "--learning-rate", "1e30"], workspace, mirror)
    assert diverged.returncode == 30, diverged  # [retcode] task_failed
    assert "training diverged" in diverged.output and "lower the learning rate" in diverged.output
    assert manifests(workspace, "train") == []  # nothing half-done looks complete


def test_corrupt_mirror_file_fails_by_name_and_leaves_no_manifest(workspace, tmp_path):
    mirror = tmp_path / "mirror"
    folder = write_idx_folder(mirror / "tiny", make_image_set())
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"<html>oops</html>")
    run = run_luigi(["ImageRun", *TINY, "--model", "mlp"], workspace, mirror)
    assert run.returncode != 0
    assert "t10k-images-idx3-ubyte.gz: not an IDX file" in run.output
    assert manifests(workspace, "download") == []


def test_unknown_dataset_without_local_copy_explains_where_to_put_it(workspace, tmp_path):
    run = run_luigi(["ImageRun", *TINY[2:], "--dataset", "mydigits"], workspace, tmp_path / "empty")
    assert run.returncode != 0
    assert "unknown dataset 'mydigits'" in run.output and "TFPIPE_DATA_MIRROR" in run.output


def test_third_party_plugin_trains_through_the_pipeline(workspace, mirror, tmp_path):
    site = install_tiny_model(tmp_path / "site")
    run = run_luigi(["ImageRun", *TINY, "--model", "tiny_mlp", "--model-params", '{"width": 8}'],
                    workspace, mirror, extra_path=[site])
    assert run.returncode == 0, run
    manifest = json.loads(manifests(workspace, "train")[0].read_text())
    assert manifest["components"]["plugin"]["distribution"] == "tfpipe-tinymodel"
    assert "tinymodel.model" in manifest["components"]["code"]
    assert manifest["record"]["hparams"] == {"width": 8}
