"""End to end through the real `luigi` command line, on tiny datasets the tests generate."""
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import (
    ROOT,
    TINY_NAME,
    make_image_set,
    manifests,
    run_luigi,
    stages_written_since,
    tiny_args,
    write_idx_folder,
)
from tests.plugin_fixtures import install_fake_distribution, install_tiny_model
from tests.test_datasets import write_image_folder

pytestmark = pytest.mark.slow


def test_image_run_trains_evaluates_and_reports(workspace, mirror, tiny):
    run = run_luigi(["ImageRun", *tiny, "--model", "mlp"], workspace, mirror)
    assert run.returncode == 0, run
    for stage in ("download", "preprocess", "train", "evaluate", "runs"):
        assert len(manifests(workspace, stage)) == 1, stage
    assert manifests(workspace, "train")[0].parent.name.startswith(f"{TINY_NAME}-mlp-")
    train_dir = manifests(workspace, "train")[0].parent
    manifest = json.loads((train_dir / "manifest.json").read_text())
    record = manifest["record"]
    assert record["final_step"] == 60 and record["resumed_from"] == 0
    assert record["data"] == {"train": 350, "val": 50, "steps_per_epoch": 17, "shuffle_buffer": 350}
    # Under the real `luigi` command the code that runs is what the fingerprint hashes.
    code = set(manifest["components"]["code"])
    assert {"tasks.image.train", "tasks.image.stream", "tasks.training_loop",
            "plugins.models.mlp"} <= code
    assert "plugins.models.cnn" not in code
    assert (train_dir / "saved_model").is_dir() and (train_dir / "model.keras").is_file()
    assert list((train_dir / "tensorboard" / "train").glob("events.out.tfevents.*"))
    history = json.loads((train_dir / "history.json").read_text())
    # 50 validation samples, fewer than the subset: every point is on the whole set.
    assert [(row["step"], row["samples"]) for row in history["validation"]] == [(20, 50), (40, 50), (60, 50)]

    preprocess = json.loads(manifests(workspace, "preprocess")[0].read_text())["record"]
    assert preprocess["counts"] == {"train": 350, "val": 50, "test": 100}
    download = json.loads(manifests(workspace, "download")[0].read_text())
    assert download["record"]["in_place"]
    assert download["record"]["class_names"] == ["0", "1", "2", "3"]
    assert list(manifests(workspace, "download")[0].parent.glob("*.gz")) == []  # read in place

    evaluate_dir = manifests(workspace, "evaluate")[0].parent
    metrics = json.loads((evaluate_dir / "metrics.json").read_text())
    assert metrics["count"] == 100 and len(metrics["confusion_matrix"]) == 4
    assert sum(map(sum, metrics["confusion_matrix"])) == 100
    assert metrics["accuracy"] > 0.5  # the toy classes are trivially separable
    assert (evaluate_dir / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    summary = manifests(workspace, "runs")[0].parent / "summary.md"
    assert str(summary) in run.output and f"mlp on {TINY_NAME}" in summary.read_text()


def test_rerun_reuses_and_edits_rerun_only_what_they_touch(workspace, mirror, tiny, tmp_path):
    assert run_luigi(["ImageRun", *tiny, "--model", "mlp"], workspace, mirror).returncode == 0

    again = run_luigi(["ImageRun", *tiny, "--model", "mlp"], workspace, mirror)
    assert again.returncode == 0 and "Did not run any tasks" in again.output
    assert stages_written_since(workspace, again.started) == set()
    assert "results:" in again.output  # still says where the results are

    lr = run_luigi(["ImageRun", *tiny, "--model", "mlp", "--learning-rate", "0.003"], workspace,
                   mirror)
    assert lr.returncode == 0, lr
    assert stages_written_since(workspace, lr.started) == {"train", "evaluate", "runs"}

    config = tmp_path / "mine.yaml"
    config.write_text("image:\n  learning_rate: 0.002\nmodels:\n  mlp:\n    hidden_units: 8\n")
    from_yaml = run_luigi(["ImageRun", *tiny, "--model", "mlp", "--config", str(config)], workspace,
                          mirror)
    assert from_yaml.returncode == 0, from_yaml
    assert stages_written_since(workspace, from_yaml.started) == {"train", "evaluate", "runs"}
    hparams = [json.loads(p.read_text())["record"]["hparams"]
               for p in manifests(workspace, "train")]
    assert {"hidden_units": 8} in hparams


def test_failures_exit_non_zero_with_one_clear_message(workspace, mirror, tiny, tmp_path):
    unknown = run_luigi(["ImageRun", *tiny, "--model", "resnet"], workspace, mirror)
    assert unknown.returncode != 0
    assert "no model named 'resnet'" in unknown.output and "mlp" in unknown.output

    bad = tmp_path / "bad.yaml"
    bad.write_text("image:\n  stepz: 3\n")
    config = run_luigi(["ImageRun", *tiny, "--config", str(bad)], workspace, mirror)
    assert config.returncode != 0 and f"{bad}:2: unknown key image.stepz" in config.output

    diverged = run_luigi(["ImageRun", *tiny, "--model", "mlp", "--learning-rate", "1e30"],
                         workspace, mirror)
    assert diverged.returncode == 30, diverged  # [retcode] task_failed
    assert "training diverged" in diverged.output and "lower the learning rate" in diverged.output
    assert manifests(workspace, "train") == []  # nothing half-done looks complete

    # 400 samples: 0.001 holds out 0.4, which rounds to none. Refused before anything runs.
    no_val = run_luigi(["ImageRun", *tiny, "--model", "mlp", "--validation-fraction", "0.001"],
                       workspace, mirror)
    assert no_val.returncode != 0
    assert "image.validation_fraction=0.001 of the 400 training samples" in no_val.output


def test_a_label_only_in_the_test_set_is_warned_about_in_the_log_and_the_report(workspace, mirror,
                                                                                tmp_path):
    data = make_image_set()  # classes 0-3 in both splits
    data["y_test"][:3] = 5
    folder = write_idx_folder(tmp_path / "data" / "odd", data)
    run = run_luigi(["ImageRun", *tiny_args(folder), "--model", "mlp"], workspace, mirror)
    assert run.returncode == 0, run
    warning = "arrays-odd: label 5 (3 test samples) is only in the test set, never in training."
    assert f"WARNING: {warning}" in run.output
    record = json.loads(manifests(workspace, "preprocess")[0].read_text())["record"]
    assert record["test_only_labels"] == {"5": 3} and record["warnings"][0].startswith(warning)
    report = manifests(workspace, "runs")[0].parent
    assert f"WARNING: {warning}" in (report / "summary.md").read_text()
    assert f"<b>Warning:</b> {warning}" in (report / "report.html").read_text()


def test_corrupt_data_file_fails_by_name_and_leaves_no_manifest(workspace, tmp_path):
    folder = write_idx_folder(tmp_path / "data" / "tiny", make_image_set())
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"<html>oops</html>")
    run = run_luigi(["ImageRun", *tiny_args(folder), "--model", "mlp"], workspace)
    assert run.returncode != 0
    assert f"{folder}/t10k-images-idx3-ubyte.gz: not an IDX file" in run.output
    assert "[dataset arrays]" in run.output
    assert manifests(workspace, "download") == []


def test_unknown_dataset_lists_the_installed_ones(workspace, tiny, tmp_path):
    run = run_luigi(["ImageRun", *tiny, "--dataset", "mydigits"], workspace, tmp_path / "empty")
    assert run.returncode != 0
    assert "no dataset named 'mydigits' is installed" in run.output
    assert "arrays, cifar10, fashion_mnist, image_folder, mnist" in run.output


def test_third_party_model_plugin_trains_through_the_pipeline(workspace, mirror, tiny, tmp_path):
    site = install_tiny_model(tmp_path / "site")
    run = run_luigi(["ImageRun", *tiny, "--model", "tiny_mlp", "--model-params", '{"width": 8}'],
                    workspace, mirror, extra_path=[site])
    assert run.returncode == 0, run
    manifest = json.loads(manifests(workspace, "train")[0].read_text())
    assert manifest["components"]["plugin"]["distribution"] == "tfpipe-tinymodel"
    assert "tinymodel.model" in manifest["components"]["code"]
    assert manifest["record"]["hparams"] == {"width": 8}


def test_image_folder_dataset_end_to_end(workspace, tmp_path):
    root = write_image_folder(tmp_path / "shapes", per_class=12, size=20)
    args = ["ImageRun", "--dataset", "image_folder", "--dataset-options",
            json.dumps({"path": str(root), "image_size": [16, 16], "test_fraction": 0.25}),
            "--model", "mlp", "--steps", "30", "--batch-size", "8", "--checkpoint-every", "15",
            "--validation-fraction", "0.2"]
    run = run_luigi(args, workspace)
    assert run.returncode == 0, run
    download = json.loads(manifests(workspace, "download")[0].read_text())
    assert manifests(workspace, "download")[0].parent.name.startswith("image_folder-shapes-")
    assert download["record"]["class_names"] == ["circle", "square", "stripes"]
    assert download["record"]["counts"] == {"train": 27, "test": 9}
    assert download["record"]["shape"] == [16, 16, 3]
    meta = json.loads((manifests(workspace, "preprocess")[0].parent / "meta.json").read_text())
    assert meta["counts"] == {"train": 22, "val": 5, "test": 9}
    metrics = json.loads((manifests(workspace, "evaluate")[0].parent / "metrics.json").read_text())
    assert metrics["class_names"] == ["circle", "square", "stripes"] and metrics["count"] == 9

    # One more image in a class folder: the content fingerprint changes, the data is read again.
    (root / "circle" / "extra.png").write_bytes((root / "circle" / "c00.png").read_bytes())
    again = run_luigi(args, workspace)
    assert again.returncode == 0, again
    assert {"download", "preprocess", "train"} <= stages_written_since(workspace, again.started)


MINE = '''
"""A third-party dataset: its own binary format found in <mirror>/mine/ (header: count, side)."""
from pathlib import Path

from plugins.datasets.api import DataError, ImageDataset, ImageSplit

KIND = "image_classification"
DEFAULTS = {}


def locate(folder, options):
    found = {split: Path(folder) / f"{split}.mine" for split in ("train", "test")}
    return found if all(p.is_file() for p in found.values()) else None


def _batches(path, rows):
    import numpy as np

    raw = np.fromfile(path, dtype=np.uint8)
    count, side = int(raw[0]) * 256 + int(raw[1]), int(raw[2])
    records = raw[3:].reshape(count, 1 + side * side)
    for start in range(0, count, rows):
        chunk = records[start:start + rows]
        yield chunk[:, 1:].reshape(-1, side, side, 1).copy(), chunk[:, 0].astype(np.int64)


def open_dataset(files, options):
    head = Path(files["train"]).read_bytes()[:3]
    if len(head) < 3:
        raise DataError(f"{files['train']}: too short to be a .mine file")
    return ImageDataset(
        splits={split: ImageSplit(count=None, source=str(path),
                                  batches=lambda rows, path=path: _batches(path, rows))
                for split, path in files.items()},
        shape=(head[2], head[2], 1), class_names=["dark", "light"])
'''


def write_mine(path, count, side, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count).astype(np.uint8)
    pixels = rng.integers(0, 80, (count, side * side)) + 170 * labels[:, None]
    body = np.concatenate([labels[:, None], pixels.astype(np.uint8)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes([count // 256, count % 256, side]) + body.tobytes())


def test_third_party_dataset_plugin_runs_without_any_change_to_tfpipe(workspace, tmp_path):
    site = install_fake_distribution(tmp_path / "site", "tfpipe-minedata", "2.0.1",
                                     {"minedata/__init__.py": "", "minedata/plugin.py": MINE},
                                     {"tfpipe.datasets": {"mine": "minedata.plugin"}})
    mirror = tmp_path / "mirror"
    write_mine(mirror / "mine" / "train.mine", 300, 8, seed=1)
    write_mine(mirror / "mine" / "test.mine", 60, 8, seed=2)
    run = run_luigi(["ImageRun", "--dataset", "mine", "--model", "mlp", "--steps", "60",
                     "--batch-size", "10", "--checkpoint-every", "30",
                     "--validation-fraction", "0.1", "--learning-rate", "0.01"],
                    workspace, mirror, extra_path=[site])
    assert run.returncode == 0, run
    download = json.loads(manifests(workspace, "download")[0].read_text())
    assert download["components"]["dataset_plugin"]["distribution"] == "tfpipe-minedata"
    assert "minedata.plugin" in download["components"]["code"]
    assert download["record"]["counts"] == {"train": 300, "test": 60}
    assert download["record"]["class_names"] == ["dark", "light"]
    metrics = json.loads((manifests(workspace, "evaluate")[0].parent / "metrics.json").read_text())
    assert metrics["count"] == 60 and metrics["accuracy"] > 0.9


def test_checkpoints_validate_on_a_fixed_subset_and_the_last_step_on_the_whole_set(workspace, mirror, tiny_data,
                                                                                   tmp_path):
    """The training worker with a 20-sample subset of the 50 validation samples (the pipeline's
    2000 exceed the tiny set): history.json says which points saw how many samples."""
    preprocess = ["PreprocessImages", "--dataset", "arrays", "--dataset-options", json.dumps({"path": str(tiny_data)}),
                  "--validation-fraction", "0.125", "--split-seed", "0", "--workspace", str(workspace)]
    assert run_luigi(preprocess, workspace, mirror).returncode == 0
    out = tmp_path / "train"
    out.mkdir()
    request = {"data_dir": str(manifests(workspace, "preprocess")[0].parent), "out_dir": str(out), "model": "mlp",
               "model_params": {}, "steps": 60, "batch_size": 20, "learning_rate": 1e-3, "checkpoint_every": 20,
               "seed": 1, "deterministic": True, "validation_subset": 20}
    (out / "request.json").write_text(json.dumps(request))
    done = subprocess.run([sys.executable, "-m", "tasks.image.train", str(out / "request.json")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = next(json.loads(line[len("@@tfpipe "):])["result"] for line in done.stdout.splitlines()
                  if line.startswith("@@tfpipe ") and '"result"' in line)
    history = json.loads((out / "history.json").read_text())["validation"]
    assert [(row["step"], row["samples"]) for row in history] == [(20, 20), (40, 20), (60, 50)]
    assert all((row["accuracy"] * row["samples"]).is_integer() for row in history)  # counted on those samples
    assert result["val_accuracy"] == history[-1]["accuracy"] and "val_samples" not in result
