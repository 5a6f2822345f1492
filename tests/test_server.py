"""Server runs against a real luigid on a free 127.0.0.1 port (and the local scheduler).

The tasks count their own runs: every process that starts producing a folder appends a
line to its attempts.jsonl (tasks.base), under the per-output lock.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import (
    ROOT,
    TINY_NAME,
    luigi_env,
    manifests,
    stages_written_since,
    tiny_args,
    write_tiny_full_config,
)

pytestmark = pytest.mark.slow


def slow_train(data: Path) -> list[str]:
    """The tiny dataset, trained long enough to be caught mid-training."""
    return [*tiny_args(data), "--model", "mlp", "--steps", "1500", "--checkpoint-every", "100"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Luigid:
    def __init__(self, port: int, process: subprocess.Popen, state_dir: Path):
        self.port, self.process, self.state_dir = port, process, state_dir

    def api(self, method: str, **data: object) -> dict:
        query = urllib.parse.urlencode({"data": json.dumps(data)})
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/{method}?{query}", timeout=10) as reply:
            return json.loads(reply.read())["response"]

    def args(self) -> list[str]:
        return ["--scheduler-host", "127.0.0.1", "--scheduler-port", str(self.port)]


def launch_luigid(port: int, state_dir: Path, tmp_path: Path) -> Luigid:
    """The documented start command; returns once luigid answers its API."""
    overrides = tmp_path / "luigid.cfg"
    overrides.write_text("[scheduler]\nworker_disconnect_delay = 3\n")  # notice a killed worker fast
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(overrides)}
    process = subprocess.Popen([sys.executable, "-m", "pipelines", "scheduler", "--port", str(port),
                                "--state-dir", str(state_dir)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Luigid(port, process, state_dir)
    deadline = time.time() + 30
    while True:
        try:
            server.api("task_list", status="", upstream_status="", search="")
            return server
        except OSError:
            assert process.poll() is None and time.time() < deadline, "luigid did not start"
            time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def luigid(tmp_path):
    """luigid on a free port, state and log under tmp_path."""
    server = launch_luigid(free_port(), tmp_path / "luigid", tmp_path)
    yield server
    stop(server.process)


def start(args: list[str], workspace: Path, mirror: Path, scheduler: list[str] | None = None,
          wrapper: bool = True) -> subprocess.Popen:
    """`python -m pipelines run ...` (or plain `luigi`) in the background; output kept for the assert."""
    where = scheduler if scheduler is not None else ["--local-scheduler"]
    if wrapper:
        command = [sys.executable, "-m", "pipelines", "run", *args, *where]
    else:
        command = [sys.executable, "-m", "luigi", "--module", "pipelines", *args, *where]
    return subprocess.Popen(command, cwd=ROOT, env=luigi_env(workspace, mirror), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def attempts(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "attempts.jsonl").read_text().splitlines() if line.strip()]


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, f"run ended before {what}:\n{(process.communicate()[0] or '')[-4000:]}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def listening_addresses(port: int) -> set[str]:
    """Local addresses of sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_documented_scheduler_command_listens_on_loopback_only(luigid):
    assert listening_addresses(luigid.port) == {"0100007F"}  # 127.0.0.1, not 0.0.0.0 or ::
    assert (luigid.state_dir / "luigi-server.log").exists()
    readme = (ROOT / "README.md").read_text()
    pattern = r"^(?:\.venv/bin/)?(luigid .*|python -m pipelines scheduler.*)$"
    documented = re.findall(pattern, readme, re.MULTILINE)
    assert documented, "README documents no scheduler command"
    for line in documented:
        if line.startswith("luigid"):
            assert "--address 127.0.0.1" in line, line
        assert "0.0.0.0" not in line and "--address ::" not in line, line
    unit = (ROOT / "deploy/systemd/tfpipe-luigid.service").read_text()
    assert "--address 127.0.0.1" in unit


def test_luigid_shows_graph_status_and_training_progress(tmp_path, mirror, workspace, luigid,
                                                         tiny_data):
    run = start(["ImageRun", *slow_train(tiny_data)], workspace, mirror, luigid.args())
    seen = []

    def training_progress() -> bool:
        for task in luigid.api("task_list", status="RUNNING", upstream_status="", search="").values():
            if task["name"] == "TrainImageModel" and task["progress_percentage"]:
                seen.append(task)
        return bool(seen)

    wait_for(training_progress, run, "training progress in luigid")
    code, output = finish(run)
    assert code == 0, output
    assert 0 < seen[0]["progress_percentage"] <= 100
    assert re.match(r"train mlp: step \d+/1500 \(\d+%\)", luigid.api(
        "get_task_status_message", task_id=next(iter(luigid.api(
            "task_list", status="DONE", upstream_status="", search="TrainImageModel"))))["statusMessage"])
    done = luigid.api("task_list", status="DONE", upstream_status="", search="")
    families = {task["name"] for task in done.values()}
    assert {"DownloadImageDataset", "PreprocessImages", "TrainImageModel", "EvaluateImageModel",
            "ImageRun"} <= families
    root = next(task_id for task_id, task in done.items() if task["name"] == "ImageRun")
    graph = luigid.api("dep_graph", task_id=root)
    assert {task["name"] for task in graph.values()} >= {"TrainImageModel", "DownloadImageDataset"}


@pytest.mark.parametrize("scheduler", ["luigid", "local"])
def test_two_concurrent_runs_train_once(request, tmp_path, mirror, workspace, scheduler, tiny_data):
    where = request.getfixturevalue("luigid").args() if scheduler == "luigid" else None
    # --no-lock: the same command twice would otherwise be refused by luigi's pid lock.
    args = ["ImageRun", *slow_train(tiny_data), "--no-lock"]
    first = start(args, workspace, mirror, where)
    wait_for(lambda: list(workspace.glob("train/*/attempts.jsonl")), first, "training to start")
    second = start(args, workspace, mirror, where)  # starts while the first one trains
    (code1, out1), (code2, out2) = finish(first), finish(second)
    assert code1 == 0, out1
    assert code2 == 0, out2
    for stage in ("download", "preprocess", "train", "evaluate", "runs"):
        folders = [path.parent for path in manifests(workspace, stage)]
        assert len(folders) == 1, stage
        assert len(attempts(folders[0])) == 1, f"{stage} ran {len(attempts(folders[0]))} times"


def test_killed_worker_under_luigid_resumes_on_rerun(tmp_path, mirror, workspace, luigid,
                                                     tiny_data):
    run = start(["ImageRun", *slow_train(tiny_data)], workspace, mirror, luigid.args())
    wait_for(lambda: list(workspace.glob("train/*/checkpoints/ckpt-*.index")), run, "a checkpoint")
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    killed_at = time.time()
    rerun = start(["ImageRun", *slow_train(tiny_data)], workspace, mirror, luigid.args())
    code, output = finish(rerun)
    assert code == 0, output
    train = manifests(workspace, "train")[0].parent
    record = json.loads((train / "manifest.json").read_text())["record"]
    assert 0 < record["resumed_from"] < 1500 and record["final_step"] == 1500
    first, second = attempts(train)  # exactly two processes wrote the folder, one after the other
    assert first["pid"] == run.pid and second["pid"] == rerun.pid
    assert second["started_ts"] >= killed_at


def test_failing_task_exits_nonzero_with_one_line_reason(tmp_path, mirror, workspace, luigid):
    broken = tmp_path / "broken"  # present, so scheduling works; unreadable, so the download fails
    broken.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (broken / name).write_bytes(b"not an IDX file")
    args = ["ImageRun", *tiny_args(broken), "--model", "mlp"]
    code, output = finish(start(args, workspace, mirror, luigid.args()))
    assert code == 30, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("tfpipe: FAILED (exit 30): ImageRun"), last
    assert "DownloadImageDataset" in last and "broken" in last, last
    # A user error (a DataError): failed once, disabled at once, not retried.
    assert len(attempts(next((workspace / "download").glob("arrays-broken-*")))) == 1
    plain, output = finish(start(args, workspace, mirror, luigid.args(), wrapper=False))
    assert plain != 0, output


def test_scheduling_error_exits_nonzero_with_its_reason(tmp_path, mirror, workspace, tiny_data):
    code, output = finish(start(["ImageRun", *tiny_args(tiny_data), "--model", "mlp",
                                 "--dataset", "not_in_mirror"],
                                workspace, mirror))
    assert code == 35, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("tfpipe: FAILED (exit 35)"), last
    assert "no dataset named 'not_in_mirror'" in last, last


def test_same_command_twice_exits_already_running(tmp_path, mirror, workspace, tiny_data):
    args = ["ImageRun", *slow_train(tiny_data)]
    first = start(args, workspace, mirror)
    wait_for(lambda: list(workspace.glob("train/*/attempts.jsonl")), first, "training to start")
    code, output = finish(start(args, workspace, mirror))
    assert code == 10, output
    assert output.strip().splitlines()[-1].startswith("tfpipe: ALREADY RUNNING (exit 10)")
    assert finish(first)[0] == 0


def test_nightly_scheduled_run_with_no_change_trains_nothing(tmp_path, workspace):
    config = write_tiny_full_config(tmp_path)  # both paths of FullRun, tiny
    mirror = tmp_path / "mirror"
    night1 = subprocess.run([sys.executable, "-m", "pipelines", "scheduled", "--date", "2024-05-01",
                             "--config", str(config), "--local-scheduler"], cwd=ROOT,
                            env=luigi_env(workspace, mirror), capture_output=True, text=True,
                            timeout=600, check=False)
    assert night1.returncode == 0, night1.stderr[-4000:]
    since = time.time()
    time.sleep(1.1)  # manifest times have 1 s resolution
    night2 = subprocess.run([sys.executable, "-m", "pipelines", "scheduled", "--date", "2024-05-02",
                             "--config", str(config), "--local-scheduler"], cwd=ROOT,
                            env=luigi_env(workspace, mirror), capture_output=True, text=True,
                            timeout=600, check=False)
    assert night2.returncode == 0, night2.stderr[-4000:]
    assert stages_written_since(workspace, since) == {"runs"}
    reports = sorted((workspace / "runs").glob("scheduled-*"))
    assert [path.name[:20] for path in reports] == ["scheduled-2024-05-01", "scheduled-2024-05-02"]
    stages = json.loads((reports[1] / "stages.json").read_text())
    assert {row["stage"] for row in stages} >= {"download", "preprocess", "train", "evaluate"}
    assert {row["status"] for row in stages} == {"reused"}
    first = json.loads((reports[0] / "stages.json").read_text())
    assert any(row["stage"] == "train" and row["status"] == "ran" for row in first)
    assert f"mlp on {TINY_NAME}" in (reports[1] / "summary.md").read_text()


def test_restarting_luigid_mid_run_finishes_the_job_without_double_work(tmp_path, mirror, workspace,
                                                                        luigid, tiny_data):
    first = start(["ImageRun", *slow_train(tiny_data)], workspace, mirror, luigid.args())
    wait_for(lambda: list(workspace.glob("train/*/checkpoints/checkpoint")), first, "a first checkpoint")
    luigid.process.kill()  # the scheduler dies mid-training ...
    luigid.process.wait()
    restarted = launch_luigid(luigid.port, luigid.state_dir, tmp_path)  # ... and comes back
    try:
        # --no-lock: the same command line on one host would otherwise exit "already running".
        second = start(["ImageRun", *slow_train(tiny_data), "--no-lock"], workspace, mirror,
                       restarted.args())
        code, output = finish(second)
        assert code == 0, output
        first_code, first_output = finish(first)
    finally:
        stop(restarted.process)
    # The first worker outlives the scheduler and finishes its training; the restarted luigid
    # no longer grants it the tasks after that, which it says in one line (the rerun did them).
    assert first_code == 0 or first_output.strip().splitlines()[-1].startswith("tfpipe: FAILED"), first_output
    for stage in ("download", "preprocess", "train", "evaluate"):
        folder = manifests(workspace, stage)[0].parent
        assert len(attempts(folder)) == 1, (stage, attempts(folder))  # written by one process only
    record = json.loads(manifests(workspace, "train")[0].read_text())["record"]
    assert record["final_step"] == 1500


def test_a_run_whose_last_task_runs_under_another_worker_waits_for_it_and_exits_0(tmp_path, luigid):
    """Luigi's worker stops when every task it needs runs under another worker; the run waits."""
    gate = tmp_path / "gate"
    gate.mkdir()
    command = [sys.executable, "-m", "pipelines", "run", "GateTask", "--module", "tests.gate_task",
               "--folder", str(gate), "--no-lock", *luigid.args()]  # --no-lock: the same command twice
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = tmp_path / "second.log"
    try:
        wait_for(lambda: luigid.api("task_list", status="RUNNING", upstream_status="", search="GateTask"),
                 first, "the first run's task to run")
        with log.open("w") as out:
            second = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
            wait_for(lambda: "running under another worker" in log.read_text(), second, "the second run to wait")
    finally:
        (gate / "release").touch()  # the first run's task ends whatever happened
    assert finish(second) == (0, None), log.read_text()
    code, output = finish(first)
    assert code == 0, output
    assert "GateTask" in log.read_text().split("running under another worker")[0].splitlines()[-1]
