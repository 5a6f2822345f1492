"""One stage process that runs the stages of a Luigi worker one after another (the `local`
executor's default, ``reuse_process: true``).

Starting a stage's process costs a Python start and, for the TensorFlow stages, an import of
TensorFlow (seconds). A run's stages share that cost here: the first stage starts
``python -m tasks.stage_server``, which reads one order per line on stdin (the stage's module and
request file), runs that module's ``work()`` exactly as ``python -m MODULE REQUEST`` would
(tasks.protocol.run_request), and ends each with an ``exit`` event carrying the exit code the
process would have had. Every stage still writes its own folder, fingerprint and manifest.

Reused only while it is safe to: by the same Luigi worker process and thread (a forked worker
starts its own), with the same environment and device policy (both are fixed when TensorFlow
starts), and only after a stage that succeeded; a failed or killed stage's process is never given
another. It dies with the Luigi worker (PR_SET_PDEATHSIG), as a one-stage process does.
"""
from __future__ import annotations

import atexit
import gc
import importlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

# Retire a process after this many stages, so a long sweep does not carry one process's heap forever.
MAX_STAGES = 50


# ----- child side -----------------------------------------------------------------------------

def serve() -> None:
    from tasks.protocol import emit, run_request

    for line in sys.stdin:
        order = json.loads(line)
        module = importlib.import_module(order["module"])
        _fresh_state()
        code = run_request(module.work, order["request"])
        emit("exit", code=code)


def _fresh_state() -> None:
    """What a stage would find in a new process: no Keras models or layer names left from the last
    stage (clear_session), no op determinism it did not ask for (tasks.tf_runtime sets both the
    seeds and, when asked, determinism)."""
    if "keras" in sys.modules:
        import keras
        from tensorflow.python.framework import config

        keras.backend.clear_session()
        config.disable_op_determinism()
    gc.collect()


# ----- parent side ----------------------------------------------------------------------------

class _Server:
    def __init__(self, key: tuple, env: dict[str, str], label: str):
        from tasks.protocol import die_with_parent

        self.key, self.stages = key, 0
        # `label` (the workspace) is only there for people reading `ps`.
        self.process = subprocess.Popen([sys.executable, "-m", "tasks.stage_server", label],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True,
                                        env=env, preexec_fn=die_with_parent())

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        if self.alive():
            self.process.stdin.close()  # its loop ends; between stages it holds nothing unwritten
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_current: _Server | None = None


def run(task: Any, command: list[str], env: dict[str, str], device: Any) -> dict[str, Any]:
    """Run the stage ``command`` (``python -m MODULE REQUEST``) in this worker's stage process,
    starting one if there is none fit to take it; relay what it says; return its result."""
    from tasks.protocol import Relay

    global _current
    module, request = command[2], command[3]
    key = (os.getpid(), threading.get_ident(), tuple(sorted(env.items())), json.dumps(device, sort_keys=True))
    if _current is not None and (_current.key != key or not _current.alive() or _current.stages >= MAX_STAGES):
        if _current.key[0] == os.getpid():  # a forked worker leaves its parent's process alone
            _current.close()
        _current = None
    if _current is None:
        _current = _Server(key, env, str(Path(request).resolve().parent.parent.parent))
    server, relay = _current, Relay(task, module)
    server.stages += 1
    try:
        code = _relay_stage(server, relay, module, request)
    except BaseException:
        # Interrupted mid-stage (Ctrl-C, a garbled event line): the stage may still be running, and
        # its output must never be read as the next stage's. Stop it now.
        server.process.kill()
        server.process.wait()
        _current = None
        raise
    if code != 0:
        server.close()
        _current = None
    result = relay.outcome(code)
    # Which process ran it, and as its how-manyth stage: the manifest shows the sharing.
    return {**result, "process": {"pid": server.process.pid, "stage": server.stages}}


def _relay_stage(server: _Server, relay: Any, module: str, request: str) -> int:
    """Send the order, relay the stage's output up to its exit event; return its exit code."""
    try:
        server.process.stdin.write(json.dumps({"module": module, "request": request}) + "\n")
        server.process.stdin.flush()
    except BrokenPipeError:
        pass  # it died before reading the order: its exit status below says how
    for line in server.process.stdout:
        relay.line(line)
        if relay.exit_code is not None:
            return relay.exit_code
    return server.process.wait()  # its output ended without an exit event: the process itself ended


@atexit.register
def _close_at_exit() -> None:
    if _current is not None and _current.key[0] == os.getpid():
        _current.close()


if __name__ == "__main__":
    serve()
