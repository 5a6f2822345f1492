"""`--executor slurm` against a real one-node Slurm cluster (tests/slurm_cluster.py), and the
executor's bad-input errors (those need no cluster)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests import slurm_cluster
from tests.conftest import ROOT, luigi_env, manifests, run_luigi, tiny_args, write_tiny_full_config, written_since
from tests.plugin_fixtures import install_fake_distribution
from tests.test_resume import final_weights

FAST = json.dumps({"poll_s": 0.5})


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A running cluster; every Slurm command of this session (and its subprocesses) uses it."""
    reason = slurm_cluster.why_not()
    if reason:
        pytest.skip(reason)
    cluster = slurm_cluster.start(tmp_path_factory.mktemp("slurm"))
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    yield cluster
    cluster.stop()
    if previous is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = previous


@pytest.fixture
def cluster(slurm):
    yield slurm
    slurm.cancel_all()  # a failed test leaves nothing running for the next one


def start_luigi(args: list[str], workspace: Path, mirror: Path, output: Path,
                extra_path: list[Path] | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "luigi", "--module", "pipelines", *args, "--local-scheduler"]
    return subprocess.Popen(command, cwd=ROOT, env=luigi_env(workspace, mirror, extra_path),
                            stdout=output.open("w"), stderr=subprocess.STDOUT)


def wait_for(condition, what: str, timeout: float = 180, process: subprocess.Popen | None = None):
    deadline = time.time() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert process is None or process.poll() is None, f"the run ended before {what}"
        assert time.time() < deadline, f"no {what} after {timeout:.0f}s"
        time.sleep(0.2)


def running_job(workspace: Path, stage: str) -> str | None:
    """The id of the job recorded in `stage`'s folder once its log shows a progress event."""
    for record in workspace.glob(f"{stage}/*/slurm-job.json"):
        job_id = json.loads(record.read_text())["job_id"]
        log = record.parent / f"slurm-{job_id}.out"
        if log.exists() and '"event": "progress"' in log.read_text():
            return job_id
    return None


def train_folder(workspace: Path) -> Path:
    (folder,) = (path for path in workspace.glob("train/*") if path.is_dir() and not path.name.startswith("."))
    return folder


def record_of(workspace: Path, stage: str) -> dict:
    (manifest,) = manifests(workspace, stage)
    return json.loads(manifest.read_text())["record"]


# ----- runs ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_full_run_on_slurm_same_folders_as_local(tmp_path, mirror, cluster):
    """ImageRun and TextRun (a FullRun) with their stages as Slurm jobs, chosen in the config with
    per-stage options, preprocessing kept local; a local rerun then finds every folder complete."""
    config = write_tiny_full_config(tmp_path)
    config.write_text(config.read_text() + "executor:\n  name: slurm\n  stages:\n    preprocess: local\n"
                      "executors:\n  slurm:\n    poll_s: 0.5\n"
                      "    stages:\n      evaluate:\n        partition: cpu\n")
    workspace = tmp_path / "workspace"
    done = run_luigi(["FullRun", "--config", str(config)], workspace, mirror)
    assert done.returncode == 0, done

    jobs = {}
    for stage in ("preprocess", "train", "evaluate", "generate"):
        for manifest in manifests(workspace, stage):
            record = json.loads(manifest.read_text())["record"]
            if stage == "preprocess":  # local by executor.stages (text: always in the Luigi process)
                assert "slurm" not in record and not (manifest.parent / "slurm-job.json").exists()
                continue
            (job,) = record["slurm"]["jobs"]
            assert job["state"] == "COMPLETED" and (manifest.parent / job["log"]).exists()
            jobs.setdefault(stage, []).append(job["job_id"])
    assert {stage: len(ids) for stage, ids in jobs.items()} == {"train": 2, "evaluate": 2, "generate": 1}
    for job_id in jobs["evaluate"]:  # per-stage options: evaluate ran on the cpu partition
        assert "Partition=cpu" in cluster.run("scontrol", "show", "job", "-o", job_id)
    assert "Partition=debug" in cluster.run("scontrol", "show", "job", "-o", jobs["train"][0])
    assert "train mlp: step 20/20 (100%)" in done.output  # progress relayed from the job's log
    assert "submitted slurm job" in done.output

    started = time.time()
    again = run_luigi(["FullRun", "--config", str(config), "--executor", "local"], workspace, mirror)
    assert again.returncode == 0, again
    assert written_since(workspace, started) == set()  # same fingerprints: nothing to redo


PREEMPTED_STEPS = 1000


def preemption_args(data: Path) -> list[str]:
    # A wide hidden layer: training runs many steps per compiled call, so the default tiny mlp would
    # finish before both signals reach it.
    return ["ImageRun", *tiny_args(data), "--model", "mlp", "--model-params", '{"hidden_units": 20000}',
            "--steps", str(PREEMPTED_STEPS), "--checkpoint-every", "50", "--deterministic"]


@pytest.fixture
def uninterrupted(tmp_path_factory):
    """(data, final weights) of the run the preemption test interrupts, trained locally without a stop."""
    from tests.conftest import make_image_set, write_idx_folder

    tmp = tmp_path_factory.mktemp("uninterrupted")
    data = write_idx_folder(tmp / "data" / "tiny", make_image_set())
    (tmp / "mirror").mkdir()
    done = run_luigi(preemption_args(data), tmp / "workspace", tmp / "mirror")
    assert done.returncode == 0, done
    return data, final_weights(tmp / "workspace")


def assert_same_weights(expected: dict, workspace: Path) -> None:
    resumed = final_weights(workspace)
    assert expected.keys() == resumed.keys() and expected
    for name in expected:
        np.testing.assert_array_equal(expected[name], resumed[name], err_msg=name)


@pytest.mark.slow
def test_preempted_training_resumes_from_its_checkpoints_with_identical_weights(tmp_path, mirror, uninterrupted,
                                                                                  cluster):
    """Two interruptions of one training: Slurm's warning signal (the job checkpoints and asks to be
    resubmitted), then `scontrol requeue` of the resubmitted job (Slurm runs the same job again)."""
    data, expected = uninterrupted
    workspace, output = tmp_path / "preempted", tmp_path / "preempted.txt"
    run = start_luigi([*preemption_args(data), "--executor", "slurm", "--executor-options", FAST], workspace,
                      mirror, output)
    first = wait_for(lambda: running_job(workspace, "train"), "training job with progress", process=run)
    # What Slurm's --signal=B:USR1@N does before a time limit or a preemption, sent now.
    cluster.run("scancel", "--signal=USR1", "--batch", first)
    second = wait_for(lambda: (job := running_job(workspace, "train")) != first and job, "resubmitted job",
                      process=run)
    cluster.run("scontrol", "requeue", second)  # what a preemption with PreemptMode=REQUEUE does
    # Slurm holds a requeued job back for a while (BeginTime); the wait shows why. Then start it now.
    wait_for(lambda: f"slurm job {second} pending (BeginTime)" in output.read_text(), "pending reason",
             process=run)
    cluster.run("scontrol", "update", f"JobId={second}", "StartTime=now")
    assert run.wait(timeout=400) == 0, output.read_text()[-4000:]

    text = output.read_text()
    record = record_of(workspace, "train")
    stopped, resumed = record["slurm"]["jobs"]
    assert stopped["job_id"] == first and stopped["exit_code"] == "75:0"
    # The resubmitted job: requeued once by Slurm, and tfpipe followed it to the end.
    assert resumed["job_id"] == second and resumed["state"] == "COMPLETED" and resumed["restarts"] == "1"
    warned = int(re.search(r"stopped by SIGUSR1 at step (\d+) after writing a checkpoint", text).group(1))
    assert f"train mlp: resuming from checkpoint at step {warned}" in text
    requeued = record["resumed_from"]
    assert 0 < warned < requeued < PREEMPTED_STEPS and record["final_step"] == PREEMPTED_STEPS
    log = (train_folder(workspace) / f"slurm-{second}.out").read_text()
    assert f"stopped by SIGTERM at step {requeued} after writing a checkpoint" in log
    print(f"warning signal: resumed from step {warned}; scontrol requeue: resumed from step {requeued}")
    assert_same_weights(expected, workspace)


def long_training(data: Path, **options) -> list[str]:
    return ["ImageRun", *tiny_args(data), "--model", "mlp", "--steps", "100000", "--checkpoint-every", "50",
            "--executor", "slurm", "--executor-options", json.dumps({"poll_s": 0.5, **options})]


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill -9", "SIGTERM"])
def test_killed_luigi_worker_leaves_no_job_in_the_queue(tmp_path, mirror, tiny_data, cluster, how):
    workspace, output = tmp_path / "workspace", tmp_path / "run.txt"
    run = start_luigi(long_training(tiny_data, heartbeat_timeout_s=3), workspace, mirror, output)
    job_id = wait_for(lambda: running_job(workspace, "train"), "training job with progress", process=run)
    assert cluster.queue() == [job_id]
    os.kill(run.pid, how)
    run.wait()
    killed = time.time()
    wait_for(lambda: cluster.queue() == [], "empty queue", timeout=120)
    print(f"queue empty {time.time() - killed:.1f}s after {how.name}")
    folder = train_folder(workspace)
    log = (folder / f"slurm-{job_id}.out").read_text()
    assert manifests(workspace, "train") == []
    if how == signal.SIGKILL:  # nothing ran in the worker: the job noticed its silent heartbeat
        assert "stopped touching" in log and "stopped by SIGUSR1" in log  # and checkpointed on the way out
    else:  # the worker cancelled its job on the way out
        assert f"cancelled slurm job {job_id} (Interrupted)" in output.read_text()
        assert f"JOB {job_id} ON {slurm_cluster.NODE} CANCELLED" in log


@pytest.mark.slow
def test_a_rerun_reattaches_to_the_running_job_instead_of_submitting_another(tmp_path, mirror, tiny_data,
                                                                             cluster):
    args = ["ImageRun", *tiny_args(tiny_data), "--model", "mlp", "--steps", "400", "--checkpoint-every", "50",
            "--executor", "slurm", "--executor-options", json.dumps({"poll_s": 0.5, "heartbeat_timeout_s": 120})]
    workspace, output = tmp_path / "workspace", tmp_path / "first.txt"
    first = start_luigi(args, workspace, mirror, output)
    job_id = wait_for(lambda: running_job(workspace, "train"), "training job with progress", process=first)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert cluster.queue() == [job_id]  # still running: its heartbeat is not stale yet

    rerun = run_luigi(args, workspace, mirror)
    assert rerun.returncode == 0, rerun
    assert f"reattaching to slurm job {job_id} (RUNNING)" in rerun.output
    assert [job["job_id"] for job in record_of(workspace, "train")["slurm"]["jobs"]] == [job_id]
    folder = train_folder(workspace)
    assert [path.name for path in folder.glob("slurm-*.out")] == [f"slurm-{job_id}.out"]


# ----- device policies -----------------------------------------------------------------------

def one_job(folder: Path) -> tuple[str, list[str]]:
    """(job id, sbatch command) recorded in a task folder."""
    record = json.loads((folder / "slurm-job.json").read_text())
    return record["job_id"], record["sbatch"]


@pytest.mark.slow
def test_gpu_policy_asks_slurm_for_a_gpu_and_the_job_uses_the_one_slurm_gives(tmp_path, mirror, tiny_data,
                                                                              cluster, monkeypatch):
    """--device gpu under Slurm: --gpus=1 on the job, nothing probed or locked on the login node (which
    has no GPU here and a CUDA_VISIBLE_DEVICES of its own that must not reach the job), and the job's
    worker sees the GPU Slurm assigned. TensorFlow here is CPU-only: without fallback the worker says
    so, naming that GPU; with fallback: cpu the same job trains on the CPU and records it."""
    if not cluster.gpus:
        pytest.skip("the test cluster has no fake GPUs (device files could not be made: no CAP_MKNOD)")
    monkeypatch.setenv("TFPIPE_FAKE_GPUS", "")  # no GPU on the login node: locally this run would stop
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    workspace = tmp_path / "workspace"
    args = ["ImageRun", *tiny_args(tiny_data), "--model", "mlp", "--steps", "20", "--device", "gpu",
            "--executor", "slurm", "--executor-options", FAST]
    failed = run_luigi(args, workspace, mirror)
    assert failed.returncode == 30, failed
    folder = train_folder(workspace)
    job_id, sbatch = one_job(folder)
    assert "--gpus=1" in sbatch and not (workspace / ".gpu-slots").exists()
    given = re.search(r"Slurm assigned GPU\(s\) (\S+) to job", failed.output).group(1)
    assert given in ("0", "1")  # the node's fake GPUs, not the login node's 7
    last = [line for line in failed.output.splitlines() if line.strip()][-1]
    assert last == (f"tfpipe: error: device policy gpu needs a GPU but TensorFlow sees none (Slurm assigned "
                    f"GPU(s) {given} to job {job_id}: CUDA_VISIBLE_DEVICES='{given}'; is the CPU-only "
                    f"tensorflow-cpu installed, or the CUDA driver missing?). Set the device option fallback: "
                    f"cpu to train on the CPU instead, or choose --device cpu [slurm job {job_id} ended FAILED "
                    f"(exit code 2); log {folder.resolve()}/slurm-{job_id}.out]")

    done = run_luigi([*args, "--device-options", '{"fallback": "cpu"}'], workspace, mirror)
    assert done.returncode == 0, done
    job_id, sbatch = one_job(folder)
    assert "--gpus=1" in sbatch
    device = record_of(workspace, "train")["device"]
    assert device["allocated_by"] == "slurm" and len(device["gpu_ids"]) == 1 and device["effective"] == ["cpu"]
    given = device["gpu_ids"][0]
    assert given in ("0", "1")
    assert f"Slurm assigned GPU(s) {given} to job {job_id}" in device["fallback"]
    print(f"sbatch: {' '.join(sbatch[2:-1])}; CUDA_VISIBLE_DEVICES in job {job_id}: {given}")


@pytest.mark.slow
def test_multi_worker_runs_one_worker_per_slurm_task(tmp_path, mirror, tiny_data, cluster):
    """--device multi_worker with two Slurm tasks: srun starts two TensorFlow workers, TF_CONFIG from
    Slurm's environment; only the chief writes the folder and reports; a local rerun finds it complete."""
    workspace = tmp_path / "workspace"
    options = json.dumps({"poll_s": 0.5, "stages": {"train": {"ntasks": 2}}})
    started = time.time()
    done = run_luigi(["ImageRun", *tiny_args(tiny_data), "--model", "mlp", "--steps", "20", "--device",
                      "multi_worker", "--executor", "slurm", "--executor-options", options], workspace, mirror)
    took = time.time() - started
    assert done.returncode == 0, done
    record = record_of(workspace, "train")
    device = record["device"]
    assert device["strategy"] == "CollectiveAllReduceStrategy" and device["replicas"] == 2
    workers = device["applied"]["multi_worker"]["cluster"]["worker"]
    assert len(workers) == 2 and device["applied"]["multi_worker"]["task"] == {"type": "worker", "index": 0}
    assert record["final_step"] == 20
    folder = train_folder(workspace)
    job_id, sbatch = one_job(folder)
    assert "--ntasks=2" in sbatch
    log = (folder / f"slurm-{job_id}.out").read_text()
    assert log.count('"event": "result"') == 1  # the chief's; the other worker's events stay out
    assert "worker 1: log: device policy multi_worker: CollectiveAllReduceStrategy with 2 replica(s)" in log
    print(f"multi_worker: 2 tasks ({', '.join(workers)}), {record['final_step']} steps, {took:.1f}s")

    started = time.time()
    again = run_luigi(["ImageRun", *tiny_args(tiny_data), "--model", "mlp", "--steps", "20"], workspace, mirror)
    assert again.returncode == 0, again
    assert written_since(workspace, started) == set()


# ----- two runs under one luigid -------------------------------------------------------------

@pytest.mark.slow
def test_two_runs_under_one_luigid_submit_each_stage_once(tmp_path, mirror, tiny_data, cluster):
    from tests.test_server import free_port, launch_luigid, stop

    server = launch_luigid(free_port(), tmp_path / "luigid", tmp_path)
    workspace = tmp_path / "workspace"
    # `pipelines run`: plain luigi exits 10 ("already running") when another worker ran some of its tasks
    # (README "Running on a server"). --no-lock: luigi's pid lock would refuse the same command twice;
    # luigid must keep them apart.
    command = [sys.executable, "-m", "pipelines", "run", "ImageRun", *tiny_args(tiny_data),
               "--model", "mlp", "--steps", "20", "--executor", "slurm", "--executor-options", FAST, "--no-lock",
               *server.args()]
    try:
        runs = [subprocess.Popen(command, cwd=ROOT, env=luigi_env(workspace, mirror), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for _ in range(2)]
        outputs = [run.communicate(timeout=600)[0] for run in runs]
    finally:
        stop(server.process)
    assert [run.returncode for run in runs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    # Every job Slurm ran for this workspace (finished jobs stay known: MinJobAge), by its task folder.
    shown = cluster.run("scontrol", "show", "job", "-o").splitlines()
    root = workspace.resolve()
    folders = [re.search(r"StdOut=(\S+)/slurm-\d+\.out", line).group(1) for line in shown
               if f"StdOut={root}/" in line]
    per_folder = {Path(folder).relative_to(root).as_posix(): folders.count(folder) for folder in set(folders)}
    assert sorted(path.split("/")[0] for path in per_folder) == ["evaluate", "preprocess", "train"], per_folder
    assert set(per_folder.values()) == {1}, per_folder
    for folder in per_folder:
        assert len((workspace / folder / "attempts.jsonl").read_text().splitlines()) == 1, folder
    print(f"jobs per folder: {per_folder}")


# ----- failures -----------------------------------------------------------------------------

BROKEN_MODEL = '''
"""An image model with a bug: building it raises."""
KIND = "image_classifier"
DEFAULTS = {}


def build(spec):
    raise RuntimeError("a bug in the broken model")
'''


@pytest.mark.slow
def test_a_failing_worker_shows_the_slurm_state_and_log_and_a_held_job_its_pending_reason(tmp_path, mirror,
                                                                                          tiny_data, cluster):
    site = install_fake_distribution(tmp_path / "site", "tfpipe-broken", "1.0",
                                     {"brokenmodel.py": BROKEN_MODEL},
                                     {"tfpipe.models": {"broken": "brokenmodel"}})
    config = tmp_path / "held.yaml"  # per stage: only the training job is held
    config.write_text("executors:\n  slurm:\n    poll_s: 0.5\n    stages:\n      train:\n"
                      "        sbatch_args: [--hold]\n")
    workspace, output = tmp_path / "workspace", tmp_path / "run.txt"
    args = ["ImageRun", *tiny_args(tiny_data), "--model", "broken", "--executor", "slurm", "--config", str(config)]
    run = start_luigi(args, workspace, mirror, output, extra_path=[ROOT, site])
    records = wait_for(lambda: list(workspace.glob("train/*/slurm-job.json")), "training job", process=run)
    job_id = json.loads(records[0].read_text())["job_id"]
    wait_for(lambda: f"slurm job {job_id} pending (JobHeldUser)" in output.read_text(), "pending reason",
             process=run)
    cluster.run("scontrol", "release", job_id)
    assert run.wait(timeout=300) == 30, output.read_text()[-4000:]

    last = [line for line in output.read_text().splitlines() if line.strip()][-1]
    log = records[0].parent.resolve() / f"slurm-{job_id}.out"
    # The worker's own error (a plugin failing is a user error: one line), then where and how it ended.
    assert last == (f"tfpipe: error: model plugin 'broken' failed to build with {{}}: RuntimeError: a bug in the "
                    f"broken model [slurm job {job_id} ended FAILED (exit code 2); log {log}]")


@pytest.mark.slow
def test_a_cancelled_job_fails_naming_cancelled(tmp_path, mirror, tiny_data, cluster):
    workspace, output = tmp_path / "workspace", tmp_path / "run.txt"
    run = start_luigi(long_training(tiny_data), workspace, mirror, output)
    job_id = wait_for(lambda: running_job(workspace, "train"), "training job with progress", process=run)
    cluster.run("scancel", job_id)
    assert run.wait(timeout=120) == 30, output.read_text()[-4000:]
    text = output.read_text()
    folder = train_folder(workspace)
    # The worker checkpointed on Slurm's SIGTERM (exit 75), but a cancelled job stays cancelled.
    assert f"[slurm job {job_id} ended CANCELLED (exit code 75)]; last lines of " \
           f"{folder.resolve()}/slurm-{job_id}.out" in text
    assert f"error: *** JOB {job_id} ON {slurm_cluster.NODE} CANCELLED" in text  # the log's last lines


def test_sbatch_rejection_quotes_sbatch(tmp_path, mirror, tiny_data, cluster):
    options = json.dumps({"partition": "no_such_partition", "poll_s": 0.5})
    done = run_luigi(["ImageRun", *tiny_args(tiny_data), "--model", "mlp", "--executor", "slurm",
                      "--executor-options", options], tmp_path / "workspace", mirror)
    assert done.returncode == 30, done
    assert "sbatch refused the preprocess job" in done.output
    assert "sbatch: error: invalid partition specified: no_such_partition" in done.output
    assert "Traceback" not in done.output
    assert cluster.queue() == []


# ----- bad input (no cluster needed) ---------------------------------------------------------

def scheduling_error(tmp_path: Path, args: list[str], env_path: str | None = None) -> str:
    """Run ImageRun with `args`; assert one-line scheduling error (exit 35); return its last line."""
    env = luigi_env(tmp_path / "workspace", tmp_path)
    if env_path is not None:
        env["PATH"] = env_path
    command = [sys.executable, "-m", "luigi", "--module", "pipelines", "ImageRun", "--model", "mlp", *args,
               "--local-scheduler"]
    done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=120)
    assert done.returncode == 35, done.stdout[-3000:]
    assert "Traceback" not in done.stdout, done.stdout[-3000:]
    assert not (tmp_path / "workspace").exists() or not list((tmp_path / "workspace").glob("*/*/request.json"))
    return [line for line in done.stdout.splitlines() if line.strip()][-1]


def test_an_unknown_executor_lists_the_installed_ones(tmp_path):
    line = scheduling_error(tmp_path, ["--executor", "kubernetes"])
    assert "command line --executor: no executor named 'kubernetes' is installed; installed executors: " \
           "local, slurm" in line


def test_slurm_without_sbatch_on_path_is_one_line_exit_35(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    line = scheduling_error(tmp_path, ["--executor", "slurm"], env_path=str(empty))
    assert "command line --executor: the slurm executor needs Slurm's sbatch, which is not on PATH" in line


@pytest.mark.parametrize("text, message", [
    ("executors:\n  slurm:\n    partitoin: gpu\n",
     "{cfg}:3: unknown option 'partitoin' for executor plugin 'slurm' (executors.slurm.partitoin)"),
    ("executors:\n  slurm:\n    cpus: four\n",
     "{cfg}:3: executors.slurm.cpus must be a whole number of CPUs, at least 1, got 'four'"),
    ("executors:\n  slurm:\n    stages:\n      train:\n        gpus: 1.5\n",
     "{cfg}:5: executors.slurm.stages.train.gpus must be a whole number of GPUs, at least 0, got 1.5"),
    ("executors:\n  slurm:\n    stages:\n      train:\n        gpu: 1\n",
     "{cfg}:5: unknown option 'gpu' in executors.slurm.stages.train"),
    ("executors:\n  slurm:\n    stages:\n      training:\n        gpus: 1\n",
     "{cfg}:4: unknown stage 'training' in executors.slurm.stages; stages are preprocess, train, evaluate"),
    ("executor:\n  stages:\n    evaluation: local\n",
     "{cfg}:2: unknown stage 'evaluation' in executor.stages; stages are preprocess, train, evaluate"),
    ("executor:\n  stages:\n    evaluate: kubernetes\n",
     "{cfg}:2: no executor named 'kubernetes' is installed; installed executors: local, slurm"),
])
def test_executor_options_are_checked_with_file_and_line(tmp_path, text, message):
    config = tmp_path / "mine.yaml"
    config.write_text(text)
    line = scheduling_error(tmp_path, ["--executor", "slurm", "--config", str(config)], env_path=os.environ["PATH"])
    assert message.format(cfg=config) in line


@pytest.mark.parametrize("config_text, args, message", [
    ("executors:\n  slurm:\n    stages:\n      train:\n        gpus: 1\n",
     ["--device", "gpu", "--device-options", '{"count": 2}'],
     "{cfg}:5: executors.slurm.gpus asks Slurm for 1 GPU(s) but device policy gpu uses 2 (device option count); "
     "make them agree, or drop executors.slurm.gpus and let the device policy ask"),
    ("", ["--device", "gpu", "--device-options", '{"ids": [1]}'],
     "command line --device: device option ids [1] picks GPUs by id, but under the slurm executor the cluster "
     "chooses the job's GPUs; give the device option count: N instead"),
    ("", ["--device", "multi_worker"],
     "command line --device: device policy multi_worker under the slurm executor runs one worker per Slurm task: "
     "set executors.slurm.stages.train.nodes (one worker per node) or ntasks"),
    ("executors:\n  slurm:\n    stages:\n      evaluate:\n        nodes: 2\n", [],
     "{cfg}:5: executors.slurm.stages.evaluate.nodes is 2, but several tasks run the whole stage side by side"),
])
def test_device_policies_that_do_not_fit_the_slurm_job_are_refused_with_where(tmp_path, config_text, args, message):
    config = tmp_path / "mine.yaml"
    config.write_text(config_text or "{}\n")
    line = scheduling_error(tmp_path, ["--executor", "slurm", "--config", str(config), *args],
                            env_path=os.environ["PATH"])
    assert message.format(cfg=config) in line


def test_slurm_tasks_per_node_and_tf_config_of_each_task():
    from plugins.executors.slurm_workers import cluster, tasks_per_node

    assert tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    environ = {"SLURM_STEP_TASKS_PER_NODE": "2,1", "SLURM_JOB_ID": "7", "SLURM_PROCID": "2"}
    workers, index = cluster(environ, ["10.0.0.1", "10.0.0.2"])
    base = int(workers[0].split(":")[1])
    assert workers == [f"10.0.0.1:{base}", f"10.0.0.1:{base + 1}", f"10.0.0.2:{base}"] and index == 2
