"""One TensorFlow worker per Slurm task: device policy multi_worker under the slurm executor.

``srun ... python -m plugins.executors.slurm_workers -- python -m STAGE_MODULE REQUEST.json``

- TF_CONFIG comes from Slurm's environment: every task of the step is a worker at its node's
  address (NodeAddr) and a port of its own, numbered node by node (srun --distribution=block);
  task 0 is the chief.
- Only the chief speaks for the stage: it writes the task's folder and its progress and result
  are relayed to tfpipe (exactly one result per job). Every other worker trains into a scratch
  folder on its node, starting from a copy of the folder's checkpoints (so all workers resume
  from the same step), removed when it ends; its log lines and errors reach the job's output as
  plain text, prefixed with its rank.
No TensorFlow here.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tasks.protocol import EVENT_PREFIX

# Ports of a job's workers: a base per job id (so two jobs sharing a node differ) plus the
# task's position on its node.
_PORT_FIRST, _PORT_SPAN, _TASKS_PER_NODE_MAX = 20000, 40000, 32


def tasks_per_node(text: str) -> list[int]:
    """SLURM_STEP_TASKS_PER_NODE ("2(x3),1") as one count per node."""
    counts = []
    for part in text.split(","):
        match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if match is None:
            raise ValueError(f"cannot read tasks per node {text!r}")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def node_addresses(nodelist: str) -> list[str]:
    """The step's nodes in order, each as the address Slurm reaches it at (NodeAddr)."""
    names = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                           check=True).stdout.split()
    shown = subprocess.run(["scontrol", "show", "node", "-o", nodelist], capture_output=True, text=True,
                           check=True).stdout
    address = {}
    for line in shown.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "NodeName" in fields:
            address[fields["NodeName"]] = fields.get("NodeAddr") or fields["NodeName"]
    return [address.get(name, name) for name in names]


def cluster(environ: dict[str, str], addresses: list[str]) -> tuple[list[str], int]:
    """(worker "host:port" list, this task's index) from Slurm's step variables."""
    counts = tasks_per_node(environ["SLURM_STEP_TASKS_PER_NODE"])
    base = _PORT_FIRST + (int(environ["SLURM_JOB_ID"]) * _TASKS_PER_NODE_MAX) % _PORT_SPAN
    workers = [f"{host}:{base + position}" for host, count in zip(addresses, counts) for position in range(count)]
    return workers, int(environ["SLURM_PROCID"])


def tf_config(workers: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def scratch_request(request_path: Path, rank: int) -> tuple[Path, Path]:
    """(scratch folder, its request) for a worker other than the chief: the request's out_dir
    points at a node-local folder holding a copy of the task folder's checkpoints."""
    request = json.loads(request_path.read_text("utf-8"))
    scratch = Path(tempfile.mkdtemp(prefix=f"tfpipe-worker{rank}-"))
    checkpoints = Path(request["out_dir"]) / "checkpoints"
    if checkpoints.is_dir():
        shutil.copytree(checkpoints, scratch / "checkpoints")
    request["out_dir"] = str(scratch)
    (scratch / "request.json").write_text(json.dumps(request), "utf-8")
    return scratch, scratch / "request.json"


def run_quietly(command: list[str], env: dict[str, str], rank: int) -> int:
    """Run a worker other than the chief: its events are not the stage's (the chief's are); its
    log lines and error pass on as text. Stop signals are passed on (srun may signal only us)."""
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)

    def forward(number: int, frame: object) -> None:
        if worker.poll() is None:
            worker.send_signal(number)

    for number in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(number, forward)
    assert worker.stdout is not None
    for line in worker.stdout:
        if not line.startswith(EVENT_PREFIX):
            sys.stdout.write(line)
            continue
        event = json.loads(line[len(EVENT_PREFIX):])
        if event["event"] in ("log", "error"):
            sys.stdout.write(f"worker {rank}: {event['event']}: {event['message']}\n")
    code = worker.wait()
    return code if code >= 0 else 128 - code


def main(command: list[str]) -> int:
    workers, index = cluster(dict(os.environ), node_addresses(os.environ["SLURM_STEP_NODELIST"]))
    env = {**os.environ, "TF_CONFIG": tf_config(workers, index)}
    if index == 0:
        print(f"tfpipe: multi_worker: {len(workers)} workers ({', '.join(workers)}); this task is the chief",
              flush=True)
        os.execvpe(command[0], command, env)
    scratch, request = scratch_request(Path(command[-1]), index)
    try:
        return run_quietly([*command[:-1], str(request)], env, index)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    arguments = sys.argv[1:]
    sys.exit(main(arguments[1:] if arguments[:1] == ["--"] else arguments))
