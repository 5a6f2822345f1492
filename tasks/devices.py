"""Device policies, Luigi-process side: resolve, hand out GPU slots, build the child environment.

A device policy is a ``tfpipe.devices`` plugin (see plugins/devices/). A run
names one or several (``["gpu", "memory_growth"]``) plus one flat mapping of
options that the chosen policies share (``ids``, ``fallback``, ``limit`` ...).
This module never imports TensorFlow: it decides which GPU ids a training
subprocess gets (an flock per id, held while the task runs and released by the
kernel when the task ends or dies), what goes into the subprocess environment
(CUDA_VISIBLE_DEVICES, TF_CONFIG) and what is recorded in the manifest. The
tf.config part and the strategy are applied in the worker (tasks.tf_runtime).
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import subprocess
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from plugins import registry
from plugins.errors import TfpipeError

logger = logging.getLogger(__name__)

# Options every GPU policy understands: how GPUs are chosen and what to do without one.
FAKE_GPUS_ENV = "TFPIPE_FAKE_GPUS"  # "0,1": pretend these GPU ids exist (tests, dry runs)
SLOT_POLL_S = 0.5


@dataclass
class Plan:
    """A resolved device policy: what the worker applies and the manifest records."""

    policies: list[str]  # as asked
    options: dict[str, Any]
    effective: list[str] = field(default_factory=list)  # applied (differs after a CPU fallback)
    gpu_ids: list[str] | None = None  # physical ids handed to this task (None: not managed)
    env: dict[str, str] = field(default_factory=dict)
    fallback: str | None = None  # why the run fell back to the CPU, if it did
    allocated_by: str | None = None  # the executor whose cluster hands out GPUs and workers (slurm)

    def request(self) -> dict[str, Any]:
        """The JSON part of a worker request (tasks.tf_runtime.start_tensorflow reads it)."""
        return {"policies": self.policies, "effective": self.effective, "options": self.options,
                "gpu_ids": self.gpu_ids, "env": self.env, "fallback": self.fallback,
                "allocated_by": self.allocated_by}


def normalise(policy: str | Sequence[str] | None) -> list[str]:
    """'gpu,memory_growth' / ['gpu', 'memory_growth'] / None -> list of names."""
    if policy is None:
        return []
    if isinstance(policy, str):
        return [name.strip() for name in policy.split(",") if name.strip()]
    return [str(name) for name in policy]


def load_policy(name: str) -> Any:
    return registry.DEVICES.load(name)


def gpu_request(plugin: Any, options: dict[str, Any]) -> dict[str, Any] | None:
    """What GPUs a policy needs: None (none), {} (any visible), {"ids": [...]} or {"count": n|"all"}."""
    ask = getattr(plugin, "gpu_request", None)
    return ask(options) if ask else None


def resolve_options(names: list[str], options: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Load the plugins; merge their DEFAULTS (later policies win) under the user's options."""
    if len(set(names)) != len(names):
        raise TfpipeError(f"device policy {'+'.join(names)} names a policy twice")
    plugins = [load_policy(name) for name in names]
    for name, plugin in zip(names, plugins):
        clash = sorted(set(getattr(plugin, "CONFLICTS", ())) & set(names))
        if clash:
            raise TfpipeError(f"device policy {name} cannot be combined with {', '.join(clash)}; "
                              f"choose one")
    merged: dict[str, Any] = {}
    for plugin in plugins:
        merged.update(plugin.DEFAULTS)
    unknown = sorted(set(options) - set(merged))
    if unknown:
        raise TfpipeError(
            f"device option {', '.join(map(repr, unknown))} is not used by device policy "
            f"{'+'.join(names) or '(none)'} (its options: {', '.join(sorted(merged)) or 'none'}); "
            f"fix device.options in your config or --device-options")
    merged.update(options)
    if merged.get("fallback") not in (None, "cpu"):
        raise TfpipeError(f"device option fallback must be null or 'cpu', got {merged['fallback']!r}")
    return plugins, merged


def visible_gpus() -> list[str]:
    """Physical GPU ids this process may hand out, found without TensorFlow.

    $TFPIPE_FAKE_GPUS wins (tests); else CUDA_VISIBLE_DEVICES if set; else nvidia-smi.
    """
    fake = os.environ.get(FAKE_GPUS_ENV)
    if fake is not None:
        return [gpu.strip() for gpu in fake.split(",") if gpu.strip()]
    cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cuda is not None:
        return cuda_visible_ids(cuda)
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def cuda_visible_ids(value: str) -> list[str]:
    """The GPU ids a CUDA_VISIBLE_DEVICES value names ("-1" and blanks name none)."""
    return [gpu.strip() for gpu in value.split(",") if gpu.strip() and gpu.strip() != "-1"]


def combine_requests(requests: list[dict[str, Any]], visible: list[str]) -> tuple[list[str] | None, int]:
    """(explicit ids or None, how many to take) from the policies' GPU requests."""
    ids = [list(map(str, r["ids"])) for r in requests if r.get("ids")]
    if ids:
        if any(other != ids[0] for other in ids[1:]):
            raise TfpipeError(f"device policies ask for different GPU ids {ids}; give one ids option")
        missing = [gpu for gpu in ids[0] if gpu not in visible]
        if missing:
            raise TfpipeError(f"GPU id {', '.join(missing)} is not visible (visible: "
                              f"{', '.join(visible) or 'none'}); fix the ids option")
        return ids[0], len(ids[0])
    counts = [r["count"] for r in requests if r.get("count") is not None]
    if "all" in counts:
        return None, len(visible)
    count = max(counts, default=0)
    if count > len(visible):
        raise TfpipeError(f"device policy asks for {count} GPUs but {len(visible)} are visible "
                          f"({', '.join(visible) or 'none'}); lower the count option")
    return None, int(count)


@contextmanager
def gpu_slots(slot_dir: Path, visible: list[str], ids: list[str] | None, count: int,
              who: str) -> Iterator[list[str]]:
    """Hold an exclusive flock per GPU id; yield the ids. Waits while they are all taken.

    Explicit ids wait for exactly those; otherwise the first `count` free ids are
    taken. The kernel drops a lock when its holder dies, so a killed task frees its GPUs.
    """
    slot_dir.mkdir(parents=True, exist_ok=True)
    wanted = ids if ids is not None else visible
    waiting_logged = False
    while True:
        stack = ExitStack()
        held: list[str] = []
        for gpu in wanted:
            handle = stack.enter_context(open(slot_dir / f"gpu-{gpu}.lock", "a+"))
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    stack.close()
                    raise
                if ids is not None:
                    break  # explicit ids: all or nothing
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(f"{who} pid {os.getpid()}\n")
            handle.flush()
            held.append(gpu)
            if len(held) == count:
                break
        if len(held) == count:
            break
        stack.close()  # releases what was taken: never hold part of a request while waiting
        if not waiting_logged:
            logger.info("%s: waiting for %d free GPU(s) of %s", who, count, ", ".join(wanted))
            waiting_logged = True
        time.sleep(SLOT_POLL_S)
    logger.info("%s: GPU(s) %s assigned", who, ",".join(held))
    with stack:
        yield held


def cluster_needs(names: Sequence[str], options: dict[str, Any], executor: str) -> dict[str, Any]:
    """What a policy asks of an executor that hands out GPUs and workers itself (Slurm), found
    without looking at this machine: {"gpus": 0 | N | "any" | "all", "workers": bool, "policy": names}.
    Explicit GPU ids cannot be honoured there: the cluster chooses the job's GPUs."""
    names = normalise(names)
    plugins, merged = resolve_options(names, dict(options))
    requests = [r for r in (gpu_request(p, merged) for p in plugins) if r is not None]
    if any(r.get("ids") for r in requests):
        raise TfpipeError(f"device option ids {merged.get('ids')!r} picks GPUs by id, but under the {executor} "
                          f"executor the cluster chooses the job's GPUs; give the device option count: N instead")
    counts = [r["count"] for r in requests if r.get("count") is not None]
    gpus: int | str = "all" if "all" in counts else max(counts, default="any" if requests else 0)
    workers = any(getattr(p, "MULTI_WORKER", False) for p in plugins)
    if workers and (merged.get("workers") or merged.get("index") is not None):
        raise TfpipeError(f"device options workers and index name the multi_worker cluster, but under the "
                          f"{executor} executor it is built from the job's tasks; drop them and set the "
                          f"number of workers in executors.{executor} (nodes or ntasks)")
    return {"gpus": gpus, "workers": workers, "policy": "+".join(names)}


def planned_for_cluster(names: Sequence[str], options: dict[str, Any], executor: str) -> tuple[Plan, dict[str, Any]]:
    """(plan, needs) for a stage whose executor's cluster hands out GPUs and workers: no GPU is
    probed or locked on this machine, no CUDA_VISIBLE_DEVICES is set (the cluster sets the job's
    own), and TF_CONFIG is built in each of the job's tasks (plugins/executors/slurm_workers.py)."""
    names = normalise(names)
    needs = cluster_needs(names, options, executor)
    plugins, merged = resolve_options(names, dict(options))
    plan = Plan(policies=names, options=merged, effective=list(names), allocated_by=executor)
    for plugin in plugins:
        if getattr(plugin, "MULTI_WORKER", False):
            continue  # its TF_CONFIG comes from the job's tasks
        plan.env.update(plugin.environment(merged, None))
    return plan, needs


def gpus_needed(names: Sequence[str], options: dict[str, Any]) -> int:
    """How many GPUs a policy will hold (for Luigi resources); 0 if none or none visible."""
    names = normalise(names)
    if not names:
        return 0
    plugins, merged = resolve_options(names, dict(options))
    requests = [r for r in (gpu_request(p, merged) for p in plugins) if r is not None]
    visible = visible_gpus()
    if not requests or not visible:
        return 0
    try:
        return combine_requests(requests, visible)[1]
    except TfpipeError:
        return 0  # reported properly when the task runs


@contextmanager
def applied(names: Sequence[str], options: dict[str, Any], slot_dir: Path, who: str) -> Iterator[Plan]:
    """Resolve the policy for one task run; hold its GPU slots until the block ends."""
    names = normalise(names)
    plugins, merged = resolve_options(names, dict(options))
    requests = [r for r in (gpu_request(p, merged) for p in plugins) if r is not None]
    plan = Plan(policies=names, options=merged, effective=list(names))
    with ExitStack() as stack:
        if requests:
            visible = visible_gpus()
            if not visible:
                reason = (f"device policy {'+'.join(names)} needs a GPU but none is visible "
                          f"(nvidia-smi and CUDA_VISIBLE_DEVICES show none)")
                if merged.get("fallback") != "cpu":
                    raise TfpipeError(f"{reason}. Install the GPU build ('tfpipe[gpu]') on a machine "
                                      f"with a GPU, choose --device cpu, or set the device option "
                                      f"fallback: cpu to train on the CPU instead")
                logger.warning("%s: %s; falling back to the CPU (fallback: cpu)", who, reason)
                plan.fallback = reason
                keep = [(n, p) for n, p in zip(names, plugins) if gpu_request(p, merged) is None]
                plan.effective = ["cpu"] + [n for n, _ in keep if n != "cpu"]
                plugins = [load_policy("cpu")] + [p for n, p in keep if n != "cpu"]
            else:
                ids, count = combine_requests(requests, visible)
                if count:
                    plan.gpu_ids = stack.enter_context(gpu_slots(slot_dir, visible, ids, count, who))
        for plugin in plugins:
            for key, value in plugin.environment(merged, plan.gpu_ids).items():
                if key in plan.env and plan.env[key] != value:
                    raise TfpipeError(f"device policies {'+'.join(names)} disagree on {key} "
                                      f"({plan.env[key]!r} vs {value!r}); drop one of them")
                plan.env[key] = value
        yield plan
