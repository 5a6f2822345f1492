"""A real single-node Slurm cluster for tests: munged, slurmctld and slurmd on this machine.

Everything lives in one temporary folder (slurm.conf, state, spool, logs); the daemons and
every Slurm client find it through SLURM_CONF, so nothing under /etc is touched. Needs root
and Debian's slurm-wlm and munge packages (`apt-get install -y slurm-wlm munge`); `why_not()`
says what is missing. The node has two fake GPUs (`fake_gpus`): Slurm hands them out as it would
real ones. Also a command line for the benchmark: ``python -m tests.slurm_cluster``.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

NODE = "tfpipe-node"
PARTITIONS = ("debug", "cpu")  # debug is the default
GPUS = (0, 1)  # fake GPUs of the node (gres.conf)
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")


def why_not() -> str | None:
    """Why a test cluster cannot start here (None: it can)."""
    if os.geteuid() != 0:
        return "the Slurm test cluster needs root (it starts munged, slurmctld and slurmd)"
    missing = [name for name in _BINARIES if shutil.which(name) is None
               and not Path("/usr/sbin", name).exists()]
    if missing:
        return (f"Slurm or munge is not installed (missing {', '.join(missing)}); "
                "apt-get install -y slurm-wlm munge")
    if not Path("/etc/munge/munge.key").exists():
        return "munge has no key (/etc/munge/munge.key); reinstall munge or run mungekey"
    return None


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _node_line(gpus: bool) -> str:
    """This machine as slurmd sees it (CPUs, cores, memory), under the test node's name."""
    found = subprocess.run(["/usr/sbin/slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(part.split("=", 1) for part in found.split()[1:] if "=" in part and not part.startswith("UpTime"))
    fields["RealMemory"] = str(int(fields.get("RealMemory", "4000")) // 2)
    return " ".join([f"NodeName={NODE} NodeHostname={socket.gethostname()} NodeAddr=127.0.0.1",
                     *(f"{key}={value}" for key, value in fields.items()),
                     *([f"Gres=gpu:{len(GPUS)}"] if gpus else []), "State=UNKNOWN"])


def slurm_conf(root: Path, gpus: bool = False) -> str:
    controller, node = _free_ports(2)
    partitions = "\n".join(
        f"PartitionName={name} Nodes={NODE} Default={'YES' if name == PARTITIONS[0] else 'NO'} "
        "MaxTime=INFINITE State=UP OverSubscribe=FORCE:4" for name in PARTITIONS)
    return f"""\
ClusterName=tfpipe-test
{"GresTypes=gpu" if gpus else ""}
SlurmctldHost={socket.gethostname()}(127.0.0.1)
SlurmctldPort={controller}
SlurmdPort={node}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# Finished jobs stay visible to `scontrol show job` (no slurmdbd here: no sacct).
MinJobAge=3600
KillWait=10
InactiveLimit=0
SchedulerParameters=sched_interval=1
{_node_line(gpus)}
{partitions}
"""


def fake_gpus(root: Path) -> bool:
    """Device files for the node's GPUs (gres.conf): character devices with NVIDIA's major number,
    as slurmd accepts nothing else. Slurm hands them out and sets CUDA_VISIBLE_DEVICES in the job,
    but nothing opens them and no GPU is there (TensorFlow in a job finds none). False where
    device files cannot be made (no CAP_MKNOD): the cluster then has no GPUs."""
    (root / "dev").mkdir(exist_ok=True)
    try:
        for index in GPUS:
            path = root / "dev" / f"nvidia{index}"
            if not path.exists():
                os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(195, index))
    except OSError:
        return False
    (root / "gres.conf").write_text("AutoDetect=off\n" + "".join(f"Name=gpu File={root}/dev/nvidia{index}\n"
                                                                  for index in GPUS))
    return True


@dataclass
class Cluster:
    root: Path
    env: dict[str, str] = field(default_factory=dict)
    gpus: bool = False  # whether the node has its fake GPUs (fake_gpus)
    processes: list[int] = field(default_factory=list)  # pids of the daemons this cluster started
    munged: subprocess.Popen | None = None

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def run(self, *command: str, check: bool = True) -> str:
        done = subprocess.run(list(command), env=self.env, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
        return done.stdout

    def queue(self) -> list[str]:
        """Job ids in the queue (pending or running)."""
        return self.run("squeue", "-h", "-o", "%i").split()

    def cancel_all(self) -> None:
        ids = self.queue()
        if ids:
            self.run("scancel", *ids, check=False)

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged (in that order: the daemons
        need munge to say goodbye), each killed if it does not end within seconds."""
        self.cancel_all()
        deadline = time.time() + 15
        while self.queue() and time.time() < deadline:
            time.sleep(0.3)
        for pid_file in ("slurmd.pid", "slurmctld.pid"):
            try:
                _end(int((self.root / pid_file).read_text().strip()))
            except (OSError, ValueError):
                pass
        for pid in _step_daemons(self.root):
            _end(pid)
        if self.munged is not None:
            self.munged.terminate()
            self.munged.wait(timeout=10)


def _end(pid: int, grace: float = 5) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + grace
        while time.time() < deadline:
            os.kill(pid, 0)
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except (OSError, IndexError):
        return  # gone


def _step_daemons(root: Path) -> list[int]:
    """slurmstepd processes of this cluster still alive (their job's spool is under `root`)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == "slurmstepd" \
                    and str(root) in (proc / "environ").read_bytes().decode("utf-8", "replace"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _start_munged(root: Path) -> subprocess.Popen | None:
    """munged, unless one already answers on the default socket (left for whoever started it)."""
    if MUNGE_SOCKET.exists() and subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
        return None
    MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
    (root / "munge").mkdir(exist_ok=True)
    process = subprocess.Popen(["/usr/sbin/munged", "--foreground", "--force",
                                f"--log-file={root}/munge/munged.log", f"--seed-file={root}/munge/seed",
                                f"--pid-file={root}/munge/munged.pid"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
        if process.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"munged did not start; see {root}/munge/munged.log")
        time.sleep(0.2)
    return process


def start(root: Path, timeout: float = 60) -> Cluster:
    """Start a one-node cluster whose files live in `root`; returns once the node is idle."""
    root = Path(root).resolve()
    for sub in ("state", "spool"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    gpus = fake_gpus(root)
    (root / "slurm.conf").write_text(slurm_conf(root, gpus))
    cluster = Cluster(root, env={**os.environ, "SLURM_CONF": str(root / "slurm.conf")}, gpus=gpus)
    cluster.munged = _start_munged(root)
    try:
        subprocess.run(["/usr/sbin/slurmctld", "-i"], env=cluster.env, check=True)  # -i: ignore old state
        subprocess.run(["/usr/sbin/slurmd", "-N", NODE], env=cluster.env, check=True)
        deadline = time.time() + timeout
        while True:
            states = cluster.run("sinfo", "-h", "-N", "-o", "%T", check=False).split()
            if states and all(state == "idle" for state in states):
                return cluster
            if time.time() > deadline:
                raise RuntimeError(f"the Slurm node is not idle after {timeout:.0f}s (sinfo: {states}); "
                                   f"see {root}/slurmctld.log and {root}/slurmd.log")
            time.sleep(0.5)
    except BaseException:
        cluster.stop()
        raise


if __name__ == "__main__":
    import sys

    reason = why_not()
    if reason:
        sys.exit(reason)
    started = start(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/tfpipe-slurm"))
    print(f"export SLURM_CONF={started.conf}")
