"""Which tasks an edit makes run again: each edit made in a temporary copy of the project.

python bench/edit_table.py

Copies pipelines/, tasks/, plugins/ and luigi.cfg to a temporary folder, runs
FullRun there on tiny generated data (image path: mlp, text path: lstm), then
makes one edit at a time, reruns FullRun and prints which task folders that
rerun wrote. tests/test_incremental.py asserts the same behaviour.
"""
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import (  # noqa: E402  (after the sys.path line above)
    make_image_set,
    run_luigi,
    write_idx_folder,
    write_tiny_full_config,
    written_since,
)


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    if old not in text:
        sys.exit(f"{old!r} not found in {path}")
    path.write_text(text.replace(old, new, 1))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        project = tmp / "project"
        for name in ("pipelines", "tasks", "plugins"):
            shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "luigi.cfg", project / "luigi.cfg")
        config = write_tiny_full_config(tmp)
        mirror, workspace = tmp / "mirror", tmp / "workspace"
        models = project / "plugins" / "models"
        base_config = config.read_text()

        edits = [
            ("first run", lambda: None),
            ("nothing changed", lambda: None),
            ("lstm plugin code: dropout halved",
             lambda: replace_in(models / "lstm.py", "units, embedding_dim, dropout)",
                                "units, embedding_dim, dropout * 0.5)")),
            ("mlp plugin: a comment, a docstring, reformatting",
             lambda: replace_in(models / "mlp.py", '"""Multi', '# a comment\n\n"""Edited docs. Multi')),
            ("mlp plugin code: relu -> tanh", lambda: replace_in(models / "mlp.py", '"relu"', '"tanh"')),
            ("config image.validation_fraction 0.125 -> 0.1",
             lambda: config.write_text(base_config.replace("validation_fraction: 0.125",
                                                           "validation_fraction: 0.1"))),
            ("config image.learning_rate -> 0.002",
             lambda: config.write_text(config.read_text().replace("image:\n", "image:\n  learning_rate: 0.002\n", 1))),
            ("config image.learning_rate back to 0.001",
             lambda: config.write_text(config.read_text().replace("  learning_rate: 0.002\n", "", 1))),
            ("image data files (read in place) replaced with other content",
             lambda: write_idx_folder(tmp / "data" / "tiny", make_image_set(seed=7))),
        ]
        print("| edit | tasks that ran again (stage/name) |")
        print("|---|---|")
        for label, make_edit in edits:
            make_edit()
            run = run_luigi(["FullRun", "--config", str(config)], workspace, mirror, extra_path=[project], cwd=project)
            if run.returncode:
                sys.exit(f"FullRun failed after '{label}':\n{run.output[-4000:]}")
            ran = ", ".join(sorted(written_since(workspace, run.started))) or "nothing"
            print(f"| {label} | {ran} |", flush=True)


if __name__ == "__main__":
    main()
