"""kill -9 in the middle of training, rerun: training resumes and ends where it would have."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, luigi_env, manifests, run_luigi, tiny_args

pytestmark = pytest.mark.slow


def resume_args(data: Path) -> list[str]:
    """Many epochs (17 steps each), so the kill lands mid-epoch with a partly skipped epoch."""
    return ["ImageRun", *tiny_args(data), "--model", "mlp", "--steps", "4000", "--batch-size", "20",
            "--checkpoint-every", "100", "--deterministic"]


def final_weights(workspace: Path) -> dict[str, np.ndarray]:
    import tensorflow as tf

    checkpoints = workspace.glob("train/*/checkpoints")
    latest = tf.train.latest_checkpoint(str(next(checkpoints)))
    reader = tf.train.load_checkpoint(latest)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(latest)
            if name.startswith("model_variables/")}


def workers_writing_into(workspace: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        # A stage's own process, or the stage process a worker's stages share (tasks/stage_server.py).
        stage_process = "tasks.image.train" in cmdline or "tasks.stage_server" in cmdline
        if stage_process and str(workspace) in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.parametrize("options", [
    ["--augment", "none"],
    ["--augment", "mirror+shift"],  # which images flip and move is drawn per step too
    # The moving average resumes too (0.999, used as 1 - 10/4000 = 0.9975: an average lost at the
    # resume would still weigh about 1e-4 at the end, which exact equality sees).
    ["--augment", "none", "--ema-momentum", "0.999"],
])
def test_killed_training_resumes_from_its_checkpoint_with_identical_weights(tmp_path, mirror,
                                                                             tiny_data, options):
    reference_ws, killed_ws = tmp_path / "reference", tmp_path / "killed"
    args = [*resume_args(tiny_data), *options]
    assert run_luigi(args, reference_ws, mirror).returncode == 0

    command = [sys.executable, "-m", "luigi", "--module", "pipelines", *args, "--local-scheduler"]
    run = subprocess.Popen(command, cwd=ROOT, env=luigi_env(killed_ws, mirror),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    # The manager writes ckpt-N files first, then the `checkpoint` state file naming them.
    while not list(killed_ws.glob("train/*/checkpoints/checkpoint")):
        assert run.poll() is None and time.time() < deadline, "training ended before a checkpoint was seen"
        time.sleep(0.02)
    assert workers_writing_into(killed_ws)  # found while it trains, so finding none below means something
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    time.sleep(0.5)
    assert workers_writing_into(killed_ws) == []  # the TF child died with its parent
    assert manifests(killed_ws, "train") == []  # a killed training never looks complete

    rerun = run_luigi(args, killed_ws, mirror)
    assert rerun.returncode == 0, rerun
    record = json.loads(manifests(killed_ws, "train")[0].read_text())["record"]
    assert 0 < record["resumed_from"] < 4000
    assert f"train mlp: resuming from checkpoint at step {record['resumed_from']}" in rerun.output
    assert record["final_step"] == 4000

    reference, resumed = final_weights(reference_ws), final_weights(killed_ws)
    assert reference.keys() == resumed.keys() and reference
    for name in reference:
        np.testing.assert_array_equal(reference[name], resumed[name], err_msg=name)
