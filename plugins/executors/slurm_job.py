"""The batch script's process on the compute node: runs the stage and keeps it from outliving tfpipe.

``python -m plugins.executors.slurm_job --heartbeat FILE --timeout S [--workers] -- COMMAND...``

- Forwards the stop signals it gets (Slurm's ``--signal=B:USR1`` warning, SIGTERM) to the stage,
  whose training loop checkpoints and exits with EXIT_REQUEUE; any stage stopped by them exits
  with EXIT_REQUEUE, so tfpipe resubmits it.
- Watches the heartbeat file the Luigi worker touches while it waits for this job. When it has
  not changed for S seconds (by this node's own clock, so clock skew between nodes does not
  matter) the worker is gone, even if it was killed with SIGKILL: the stage is asked to stop
  (it checkpoints), killed after a grace period, and the job ends, freeing its node.
No TensorFlow here.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tasks.protocol import EXIT_REQUEUE

_GRACE_S = 60  # how long a stage asked to stop may take to checkpoint


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="slurm_job")
    parser.add_argument("--heartbeat", type=Path, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--workers", action="store_true", help="one worker per task, under srun")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    if args.workers:
        # --kill-on-bad-exit: a worker that fails ends the others (they would wait for it forever);
        # block distribution: task ranks run node by node, as slurm_workers numbers the workers.
        args.command = ["srun", "--kill-on-bad-exit=1", "--distribution=block", "--export=ALL", sys.executable,
                        "-m", "plugins.executors.slurm_workers", "--", *args.command]

    seen = _mtime(args.heartbeat)
    if seen is None or time.time() - seen > args.timeout:
        print(f"tfpipe: not starting: {args.heartbeat} is {'missing' if seen is None else 'stale'}, "
              "the tfpipe run that submitted this job is gone", flush=True)
        return EXIT_REQUEUE
    stage = subprocess.Popen(args.command)
    stop_signals: list[int] = []

    def forward(number: int, frame: object) -> None:
        stop_signals.append(number)
        if stage.poll() is None:
            stage.send_signal(number)

    for number in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(number, forward)

    changed, asked_at = time.monotonic(), None
    while stage.poll() is None:
        time.sleep(0.5)
        now, current = time.monotonic(), _mtime(args.heartbeat)
        if current != seen:
            seen, changed = current, now
        if asked_at is None and now - changed > args.timeout:
            print(f"tfpipe: the tfpipe run that submitted this job stopped touching {args.heartbeat} "
                  f"{args.timeout:g}s ago (it was killed); stopping the stage", flush=True)
            asked_at = now
            forward(signal.SIGUSR1, None)
        if asked_at is not None and now - asked_at > _GRACE_S:
            stage.kill()
    code = stage.wait()
    if stop_signals and (code == EXIT_REQUEUE or code < 0):
        return EXIT_REQUEUE
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(sys.argv[1:]))
