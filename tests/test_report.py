"""The HTML run report: rendered from the summary alone, self-contained, images load in Chromium."""
import json
import re

import pytest

from pipelines.report import render_html
from pipelines.summary import render_markdown
from tasks.plots import confusion_matrix_png, history_png
from tests.browser import chromium, loaded_images, screenshot
from tests.conftest import manifests, run_luigi

needs_chromium = pytest.mark.skipif(chromium() is None, reason="Debian package `chromium` is not installed")


def summary_with_everything(tmp_path):
    curves, confusion = tmp_path / "training_curves.png", tmp_path / "confusion_matrix.png"
    history_png({"train": [{"step": 1, "loss": 2.0, "accuracy": 0.1}, {"step": 2, "loss": 1.0, "accuracy": 0.5}],
                 "validation": [{"step": 2, "loss": 1.2, "accuracy": 0.4}]}, curves, "toy")
    confusion_matrix_png([[5, 1], [2, 7]], ["cat", "dog"], confusion, "toy")
    return {
        "run": {"task": "FullRun()", "folder": str(tmp_path)},
        "runs": [
            {"path": "image", "name": "mlp on tiny", "metrics": {"test_accuracy": 0.8}, "steps": 60,
             "train_seconds": 1.5, "artefacts": {"model": "/w/train/x"},
             "images": {"training curves": str(curves), "confusion matrix": str(confusion)}},
            {"path": "text", "name": "lstm on nietzsche", "metrics": {"loss": 1.3}, "steps": 10,
             "train_seconds": 2.0, "artefacts": {"model": "/w/train/y"}, "seed_text": "the <will> to",
             "samples": [{"temperature": 0.5, "text": "power & more"}]},
        ],
        "tasks": [{"task_id": "TrainImageModel_x", "stage": "train", "fingerprint": "abc123", "folder": "/w/train/x",
                   "status": "reused", "duration_s": 3.2, "params": {"steps": 60}},
                  {"task_id": "EvaluateImageModel_x", "stage": "evaluate", "fingerprint": "def456",
                   "folder": "/w/evaluate/x", "status": "ran", "duration_s": 0.8, "params": {}}],
        "config": {"image": {"learning_rate": 0.001}},
    }


def test_report_holds_every_part_and_refers_to_no_file(tmp_path):
    page = render_html(summary_with_everything(tmp_path))
    assert page.count('src="data:image/png;base64,') == 2
    assert not re.search(r'(src|href)="(?!data:)', page)  # self-contained: nothing fetched
    for text in ("mlp on tiny", "test_accuracy", "abc123", '"reused"', "1 of 2 ran", "temperature 0.5",
                 "the &lt;will&gt; to", "power &amp; more", "learning_rate", "Configuration"):
        assert text.replace('"reused"', 'class="reused"') in page, text


def test_data_warnings_of_a_run_are_shown_in_the_report_and_the_summary():
    summary = {"runs": [{"path": "image", "name": "mlp on odd", "metrics": {}, "artefacts": {},
                         "warnings": ["label 5 <only> in the test set"]}]}
    assert '<p class="warning"><b>Warning:</b> label 5 &lt;only&gt; in the test set</p>' in render_html(summary)
    assert "mlp on odd:\n  WARNING: label 5 <only> in the test set\n" in render_markdown(summary)


def test_missing_image_is_said_not_broken(tmp_path):
    summary = {"runs": [{"path": "image", "name": "m", "metrics": {}, "artefacts": {},
                         "images": {"curves": str(tmp_path / "gone.png")}}]}
    page = render_html(summary)
    assert "<img" not in page and "curves: image missing" in page


@needs_chromium
def test_images_load_in_headless_chromium(tmp_path):
    report = tmp_path / "report.html"
    report.write_text(render_html(summary_with_everything(tmp_path)))
    images = loaded_images(report)
    assert [image["alt"] for image in images] == ["training curves", "confusion matrix"]
    assert all(image["complete"] and image["inline"] and image["width"] > 100 for image in images), images


@needs_chromium
@pytest.mark.slow
def test_real_run_report_renders_in_chromium(workspace, tmp_path):
    assert run_luigi(["LinearRegression", "--steps", "400", "--record-every", "100"], workspace).returncode == 0
    report = manifests(workspace, "runs")[0].parent / "report.html"
    images = loaded_images(report)
    assert len(images) == 1 and images[0]["width"] > 500 and images[0]["inline"], images
    summary = json.loads((report.parent / "summary.json").read_text())
    assert summary["tasks"][0]["fingerprint"] in report.read_text()
    shot = screenshot(report, tmp_path / "report.png", height=900)
    assert shot.read_bytes()[:4] == b"\x89PNG"
