"""The text path end to end through the real `luigi` command line, on a tiny generated corpus."""
import html
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import (
    ROOT,
    TINY_NAME,
    make_corpus,
    manifests,
    run_luigi,
    stages_written_since,
    write_tiny_full_config,
)

pytestmark = pytest.mark.slow

TINY_TEXT = ["--steps", "30", "--window", "20", "--batch-size", "8", "--checkpoint-every", "15",
             "--model-params", '{"units": 16, "embedding_dim": 8}', "--length", "40", "--seed-length", "20"]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return make_corpus(tmp_path / "texts" / "tiny.txt")


def test_text_run_trains_evaluates_generates_and_reports(workspace, corpus):
    run = run_luigi(["TextRun", "--corpus", str(corpus), "--model", "lstm", *TINY_TEXT], workspace)
    assert run.returncode == 0, run
    for stage in ("download", "preprocess", "train", "evaluate", "generate", "runs"):
        assert len(manifests(workspace, stage)) == 1, stage

    download = json.loads(manifests(workspace, "download")[0].read_text())["record"]
    assert download["dataset"] == "text_file" and download["bytes"] == corpus.stat().st_size
    read = download["files"]["text"]
    assert read["path"] == str(corpus) and read["in_place"]  # read in place, not copied
    assert len(read["sha256"]) == 64
    assert manifests(workspace, "download")[0].parent.name.startswith("tiny-")
    data = manifests(workspace, "preprocess")[0].parent
    vocab = json.loads((data / "vocab.json").read_text())
    text = corpus.read_text().lower()
    assert vocab == sorted(set(text))
    meta = json.loads((data / "meta.json").read_text())
    counts = meta["counts"]
    assert counts["heldout"] == counts["validation"] == round(len(text) * 0.05)  # the defaults, 5% each
    assert counts["train"] + counts["validation"] + counts["heldout"] == len(text)
    assert meta["validation_fraction"] == meta["holdout"] == 0.05
    # Three contiguous parts in order (training, validation, held-out): together the whole text, once.
    parts = [np.load(data / name) for name in ("train_ids.npy", "valid_ids.npy", "heldout_ids.npy")]
    assert [len(part) for part in parts] == [counts["train"], counts["validation"], counts["heldout"]]
    assert "".join(vocab[i] for i in np.concatenate(parts)) == text

    train = manifests(workspace, "train")[0].parent
    record = json.loads((train / "manifest.json").read_text())["record"]
    assert record["final_step"] == 30 and record["chars_per_s"] > 0
    assert (train / "model.keras").is_file() and json.loads((train / "vocab.json").read_text()) == vocab
    history = json.loads((train / "history.json").read_text())
    assert [row["step"] for row in history["validation"]] == [15, 30]

    metrics = json.loads((manifests(workspace, "evaluate")[0].parent / "metrics.json").read_text())
    assert 0 < metrics["bits_per_char"] < 8 and metrics["perplexity"] == pytest.approx(2 ** metrics["bits_per_char"])

    generated = json.loads((manifests(workspace, "generate")[0].parent / "samples.json").read_text())
    heldout = text[-meta["counts"]["heldout"]:]
    assert len(generated["seed_text"]) == 20 and generated["seed_text"] in heldout
    assert [s["temperature"] for s in generated["samples"]] == [0.2, 0.5, 1.0, 1.2]
    assert all(len(s["text"]) == 40 and set(s["text"]) <= set(vocab) for s in generated["samples"])

    folder = manifests(workspace, "runs")[0].parent
    summary = json.loads((folder / "summary.json").read_text())["runs"][0]
    assert summary["path"] == "text" and summary["name"] == "lstm on tiny"
    assert set(summary) >= {"metrics", "steps", "train_seconds", "artefacts", "seed_text", "samples"}
    assert summary["metrics"]["val_bits_per_char"] == history["validation"][-1]["bits_per_char"]
    assert summary["metrics"]["bits_per_char"] == metrics["bits_per_char"]
    assert summary["samples"] == generated["samples"] and Path(summary["artefacts"]["samples"]).is_file()
    report = (folder / "report.html").read_text()
    assert report.count('src="data:image/png;base64,') == 1  # the training curves, embedded
    assert html.escape(generated["samples"][0]["text"]) in report
    markdown = (folder / "summary.md").read_text()
    assert "bits_per_char" in markdown and generated["samples"][0]["text"] in markdown
    assert generated["seed_text"] in run.output  # the seed passage is printed with the samples


def test_generation_settings_rerun_only_generation_and_are_reproducible(workspace, corpus):
    assert run_luigi(["TextRun", "--corpus", str(corpus), "--model", "gru", *TINY_TEXT], workspace).returncode == 0
    first = json.loads((manifests(workspace, "generate")[0].parent / "samples.json").read_text())

    changed = run_luigi(["TextRun", "--corpus", str(corpus), "--model", "gru", *TINY_TEXT,
                         "--temperatures", "[0.7]", "--length", "25", "--sample-seed", "3"], workspace)
    assert changed.returncode == 0, changed
    assert stages_written_since(workspace, changed.started) == {"generate", "runs"}
    assert len(manifests(workspace, "train")) == 1

    # The same settings give the same text: redo the first generation (and its run) from scratch.
    for path in manifests(workspace, "generate") + manifests(workspace, "runs"):
        shutil.rmtree(path.parent)
    again = run_luigi(["TextRun", "--corpus", str(corpus), "--model", "gru", *TINY_TEXT], workspace)
    assert again.returncode == 0, again
    assert stages_written_since(workspace, again.started) == {"generate", "runs"}
    folders = [path.parent for path in manifests(workspace, "generate")]
    samples = [json.loads((folder / "samples.json").read_text()) for folder in folders]
    assert first in samples


def test_bad_inputs_fail_clearly_and_leave_nothing_complete(workspace, tmp_path, corpus):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    run = run_luigi(["TextRun", "--corpus", str(empty), *TINY_TEXT], workspace)
    assert run.returncode != 0 and f"{empty}: the corpus is empty" in run.output

    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    run = run_luigi(["TextRun", "--corpus", str(binary), *TINY_TEXT], workspace)
    assert run.returncode != 0 and "looks binary" in run.output
    assert manifests(workspace, "download") == []

    short = run_luigi(["TextRun", "--corpus", str(corpus), *TINY_TEXT, "--window", "5000"], workspace)
    assert short.returncode != 0 and "shorter than one window of window=5000" in short.output
    assert manifests(workspace, "train") == []

    cold = run_luigi(["TextRun", "--corpus", str(corpus), *TINY_TEXT, "--temperatures", "[0.5, 0]"], workspace)
    assert cold.returncode != 0 and "temperature 0 must be greater than 0" in cold.output
    assert "command line" in cold.output
    assert manifests(workspace, "train") == []  # refused before anything trained

    missing = run_luigi(["TextRun", "--corpus", str(tmp_path / "nope.txt"), *TINY_TEXT], workspace)
    assert missing.returncode != 0 and "nope.txt' not found" in missing.output

    unknown = run_luigi(["TextRun", "--corpus", "tolstoy", *TINY_TEXT], workspace)
    assert unknown.returncode != 0 and "no dataset named 'tolstoy' is installed" in unknown.output
    assert "nietzsche, text_file" in unknown.output  # the text corpora there are


def test_full_run_reports_the_image_and_the_text_path(workspace, tmp_path):
    config = write_tiny_full_config(tmp_path)
    mirror = tmp_path / "mirror"
    run = run_luigi(["FullRun", "--config", str(config)], workspace, mirror)
    assert run.returncode == 0, run
    summary = json.loads((manifests(workspace, "runs")[-1].parent.parent.glob("full*/summary.json")
                          .__next__()).read_text())
    assert [entry["path"] for entry in summary["runs"]] == ["image", "text"]
    text = summary["runs"][1]
    assert text["name"] == "lstm on words" and len(text["samples"]) == 1 and len(text["samples"][0]["text"]) == 30
    data = manifests(workspace, "preprocess")
    metas = [json.loads(p.read_text())["record"] for p in data]
    assert {"lowercase": False} in [{"lowercase": m.get("lowercase")} for m in metas if "vocab_size" in m]
    assert "| lstm on words |" in run.output and f"| mlp on {TINY_NAME} |" in run.output


def run_text_worker(request: dict, out: Path) -> dict:
    """`python -m tasks.text.train` on `request` writing into `out`; its result."""
    out.mkdir(exist_ok=True)
    (out / "request.json").write_text(json.dumps({**request, "out_dir": str(out)}))
    done = subprocess.run([sys.executable, "-m", "tasks.text.train", str(out / "request.json")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return next(json.loads(line[len("@@tfpipe "):])["result"] for line in done.stdout.splitlines()
                if line.startswith("@@tfpipe ") and '"result"' in line)


def checkpoint_weights(out: Path, step: int) -> dict:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(out / "checkpoints" / f"ckpt-{step}"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name.startswith("model_variables/")}


def preprocessed(workspace: Path, corpus: Path) -> Path:
    """`corpus` preprocessed through the real command line (5% validation, the last 5% held out); its folder."""
    args = ["PreprocessText", "--corpus", "text_file", "--corpus-options", json.dumps({"path": str(corpus)}),
            "--lowercase", "true", "--validation-fraction", "0.05", "--holdout", "0.05", "--workspace", str(workspace)]
    assert run_luigi(args, workspace).returncode == 0
    return manifests(workspace, "preprocess")[0].parent


TINY_REQUEST = {"model": "lstm", "model_params": {"units": 16, "embedding_dim": 8}, "window": 20, "batch_size": 8,
                "learning_rate": 0.004, "seed": 1, "deterministic": True}


def test_text_training_validates_on_the_validation_part_not_the_heldout_part(workspace, tmp_path):
    """history.json's validation figures are the model's score on valid_ids.npy, not on the held-out
    part that evaluation reports as the test figure."""
    corpus = make_corpus(tmp_path / "tail.txt")
    corpus.write_text(corpus.read_text() + "z" * 300)  # a held-out part unlike the rest: it scores apart
    data = preprocessed(workspace, corpus)
    out = tmp_path / "train"
    result = run_text_worker({**TINY_REQUEST, "data_dir": str(data), "steps": 20, "checkpoint_every": 10}, out)

    from tasks.text.scoring import HeldoutScorer, load_char_model

    model = load_char_model(out, json.loads((data / "vocab.json").read_text()), str(out))
    validation = HeldoutScorer(model, np.load(data / "valid_ids.npy"))()["bits_per_char"]
    heldout = HeldoutScorer(model, np.load(data / "heldout_ids.npy"))()["bits_per_char"]
    last = json.loads((out / "history.json").read_text())["validation"][-1]
    assert last["step"] == 20 and result["val_bits_per_char"] == last["bits_per_char"]
    assert last["bits_per_char"] == pytest.approx(validation, abs=1e-4)
    assert abs(heldout - last["bits_per_char"]) > 0.1, (heldout, validation)  # far apart: the match is no accident


def test_text_training_resumed_from_a_checkpoint_ends_with_the_weights_of_an_uninterrupted_run(workspace, corpus,
                                                                                              tmp_path):
    """The text worker's chunks of steps after a resume are the uninterrupted run's, and so is the
    cosine learning-rate schedule (a function of the restored step); resumed at its last step
    (killed while saving the model) it trains and records nothing again."""
    request = {**TINY_REQUEST, "data_dir": str(preprocessed(workspace, corpus)), "steps": 120, "checkpoint_every": 40,
               "lr_schedule": "cosine"}
    reference = run_text_worker(request, tmp_path / "reference")
    assert reference["final_step"] == 120 and reference["resumed_from"] == 0
    assert reference["final_learning_rate"] == pytest.approx(0.0004, rel=1e-5)  # a tenth of 0.004 at the last step

    resumed_out = tmp_path / "resumed"
    (resumed_out / "checkpoints").mkdir(parents=True)
    for path in (tmp_path / "reference" / "checkpoints").glob("ckpt-40.*"):  # as if killed after step 40
        shutil.copy(path, resumed_out / "checkpoints")
    resumed = run_text_worker(request, resumed_out)
    assert resumed["resumed_from"] == 40 and resumed["final_step"] == 120
    assert resumed["final_learning_rate"] == reference["final_learning_rate"]
    expected = checkpoint_weights(tmp_path / "reference", 120)
    got = checkpoint_weights(resumed_out, 120)
    assert expected.keys() == got.keys() and expected
    for name in expected:
        np.testing.assert_array_equal(expected[name], got[name], err_msg=name)

    history = json.loads((resumed_out / "history.json").read_text())
    again = run_text_worker(request, resumed_out)
    assert again["resumed_from"] == again["final_step"] == 120
    assert json.loads((resumed_out / "history.json").read_text()) == history
    assert [row["step"] for row in history["validation"]] == [80, 120]  # 40 is the copied checkpoint's
