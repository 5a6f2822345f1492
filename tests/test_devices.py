"""Device policies: option handling, GPU slots, each built-in applied in a real TF subprocess,
mirrored and multi-worker training through the pipeline, concurrent GPU assignment.

This machine has no GPU: GPU policies are checked for the ids and environment they
hand out, their clear error, and their CPU fallback; what CUDA does with them is not.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pipelines import config as cfg
from plugins.devices import memory_limit
from plugins.errors import TfpipeError
from tasks import devices
from tasks.protocol import run_stage
from tests.conftest import ROOT, luigi_env, manifests, run_luigi, stages_written_since
from tests.device_probe import ProbeDevice
from tests.plugin_fixtures import install_fake_distribution


@pytest.fixture
def fake_gpus(monkeypatch):
    def set_ids(ids: str) -> None:
        monkeypatch.setenv(devices.FAKE_GPUS_ENV, ids)
    return set_ids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----- options and planning (Luigi-process side, no TensorFlow) ---------------------------------

def test_options_are_checked_against_the_chosen_policies():
    with pytest.raises(TfpipeError, match=r"'limt' is not used by device policy gpu\+memory_limit.*"
                                          r"its options: count, fallback, ids, limit"):
        devices.resolve_options(["gpu", "memory_limit"], {"limt": 100})
    with pytest.raises(TfpipeError, match="memory_growth cannot be combined with memory_limit"):
        devices.resolve_options(["memory_growth", "memory_limit"], {})
    with pytest.raises(TfpipeError, match="fallback must be null or 'cpu'"):
        devices.resolve_options(["gpu"], {"fallback": "tpu"})
    with pytest.raises(TfpipeError, match=r"no device policy named 'tpu'.*installed device policies: cpu, gpu"):
        devices.resolve_options(["tpu"], {})
    _, merged = devices.resolve_options(["gpu", "mirrored"], {"fallback": "cpu"})
    assert merged["count"] == "all" and merged["fallback"] == "cpu"  # later policies' defaults win


def test_memory_limit_is_megabytes_or_a_fraction():
    assert memory_limit.limit_in_mb(2048, None) == 2048
    assert memory_limit.limit_in_mb(0.25, 80000) == 20000
    assert memory_limit.limit_in_mb(1, 80000) == 80000  # 1 is the whole card
    for bad in (None, 0, -5, 1.5, "2GB", True):
        with pytest.raises(TfpipeError, match="limit"):
            memory_limit.limit_in_mb(bad, 80000)


def test_config_section_and_command_line_choose_the_policy(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("device:\n  policy: [gpu, memory_growth]\n  options:\n    ids: [1]\n")
    config = cfg.resolve(str(mine))
    assert cfg.device_policy(config) == (["gpu", "memory_growth"], {"ids": [1]})
    assert cfg.device_policy(config, None, {"fallback": "cpu"}) == (
        ["gpu", "memory_growth"], {"ids": [1], "fallback": "cpu"})
    # A policy named on the command line does not inherit the config's options.
    assert cfg.device_policy(config, "mirrored", {"cpus": 2}) == (["mirrored"], {"cpus": 2})
    assert cfg.device_policy(cfg.resolve(None)) == ([], {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("device:\n  policy: 3\n")
    with pytest.raises(cfg.ConfigError, match=r"bad.yaml:2: device.policy must be a string or a list"):
        cfg.resolve(str(bad))


def test_gpu_policy_without_a_gpu_is_a_clear_error_or_the_cpu(tmp_path, fake_gpus):
    fake_gpus("")
    with (pytest.raises(TfpipeError, match="needs a GPU but none is visible.*fallback: cpu"),
          devices.applied(["gpu", "memory_growth"], {}, tmp_path, "t")):
        pass
    with devices.applied(["gpu", "memory_growth"], {"fallback": "cpu"}, tmp_path, "t") as plan:
        assert plan.effective == ["cpu"] and plan.gpu_ids is None
        assert plan.env == {"CUDA_VISIBLE_DEVICES": "-1"} and "none is visible" in plan.fallback


def test_gpu_ids_and_environment_are_handed_out(tmp_path, fake_gpus):
    fake_gpus("0,1,2")
    with devices.applied(["gpu", "memory_growth"], {}, tmp_path, "a") as first:
        with devices.applied(["gpu"], {}, tmp_path, "b") as second:
            assert (first.gpu_ids, second.gpu_ids) == (["0"], ["1"])
            assert second.env == {"CUDA_VISIBLE_DEVICES": "1"}
        with devices.applied(["mirrored"], {"count": 2}, tmp_path, "c") as mirrored:
            assert mirrored.gpu_ids == ["1", "2"] and mirrored.env == {"CUDA_VISIBLE_DEVICES": "1,2"}
    with (pytest.raises(TfpipeError, match="GPU id 7 is not visible"),
          devices.applied(["gpu"], {"ids": [7]}, tmp_path, "d")):
        pass
    with devices.applied(["multi_worker"], {"workers": ["10.0.0.1:2222", "10.0.0.2:2222"], "index": 1},
                         tmp_path, "e") as worker:
        assert json.loads(worker.env["TF_CONFIG"]) == {
            "cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}, "task": {"type": "worker", "index": 1}}
    with (pytest.raises(TfpipeError, match="index must be 0..1"),
          devices.applied(["multi_worker"], {"workers": ["a:1", "b:2"], "index": 2}, tmp_path, "f")):
        pass


HOLD = """
import sys
from pathlib import Path
from tasks.devices import gpu_slots
with gpu_slots(Path(sys.argv[1]), ["0", "1"], ["0"], 1, "holder") as ids:
    print("holding", *ids, flush=True)
    sys.stdin.read()
"""


def test_gpu_slots_are_exclusive_and_freed_when_the_holder_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().split() == ["holding", "0"]
        with devices.gpu_slots(tmp_path, ["0", "1"], None, 1, "second") as ids:
            assert ids == ["1"]  # 0 is taken
            got: list[list[str]] = []

            def third() -> None:
                with devices.gpu_slots(tmp_path, ["0", "1"], None, 1, "third") as more:
                    got.append(more)

            waiter = threading.Thread(target=third, daemon=True)
            waiter.start()
            waiter.join(1.0)
            assert got == []  # both GPUs are held: it waits
            holder.kill()  # dies without releasing: the kernel drops its lock
            waiter.join(60)
            assert got == [["0"]]
    finally:
        holder.kill()
        holder.wait()


def test_gpu_resource_follows_the_policy(fake_gpus):
    from tasks.image.train import TrainImageModel

    fake_gpus("0,1")
    common = {"dataset": "arrays", "dataset_options": {"path": "/nowhere"}, "model": "mlp",
              "validation_fraction": 0.125, "split_seed": 0, "mirror": None, "model_params": {},
              "steps": 20, "batch_size": 20, "learning_rate": 0.001, "lr_schedule": "constant",
              "seed": 1, "augment": "none", "test_augment": "none", "label_smoothing": 0.0, "ema_momentum": 0.0,
              "checkpoint_every": 10}
    assert TrainImageModel(**common).process_resources() == {}
    assert TrainImageModel(**common, device=["gpu"]).process_resources() == {"gpu": 1}
    assert TrainImageModel(**common, device=["mirrored"], device_options={"cpus": 2}).process_resources() == {}


# ----- each built-in applied in a real TensorFlow subprocess -----------------------------------

def probe(tmp_path: Path, names: list[str], options: dict, name: str) -> dict:
    folder = tmp_path / name
    folder.mkdir()
    with devices.applied(names, options, tmp_path / "slots", name) as plan:
        return run_stage(ProbeDevice(), {"device": plan.request()}, folder, env=plan.env)


@pytest.mark.slow
def test_each_builtin_policy_sets_the_tf_config_state_it_promises(tmp_path, fake_gpus):
    fake_gpus("")
    cpu = probe(tmp_path, ["cpu"], {}, "cpu")
    assert cpu["env"]["CUDA_VISIBLE_DEVICES"] == "-1" and cpu["visible_gpus"] == 0
    assert cpu["record"]["applied"] == {"cpu": {"visible_gpus": 0}} and cpu["replicas"] == 1

    mirrored = probe(tmp_path, ["mirrored"], {"cpus": 2}, "mirrored")
    assert mirrored["logical_cpus"] == ["/device:CPU:0", "/device:CPU:1"]
    assert (mirrored["strategy"], mirrored["replicas"]) == ("MirroredStrategy", 2)

    port = free_port()
    worker = probe(tmp_path, ["multi_worker"], {"workers": [f"127.0.0.1:{port}"], "index": 0}, "multi")
    assert json.loads(worker["env"]["TF_CONFIG"])["cluster"]["worker"] == [f"127.0.0.1:{port}"]
    assert worker["strategy"] == "CollectiveAllReduceStrategy" and worker["replicas"] == 1
    assert worker["record"]["applied"]["multi_worker"]["task"] == {"type": "worker", "index": 0}

    # GPU policies where TensorFlow sees no GPU although ids were handed out (fake id 0 here):
    # the worker says so, or falls back to the CPU when asked to, and records why.
    fake_gpus("0")
    for names, options in ((["gpu"], {}), (["memory_growth"], {}), (["memory_limit"], {"limit": 512})):
        with pytest.raises(TfpipeError, match=r"needs a GPU but TensorFlow sees none.*fallback: cpu"):
            probe(tmp_path, names, options, f"{names[0]}-error")
    limited = probe(tmp_path, ["gpu", "memory_limit"], {"limit": 512, "fallback": "cpu"}, "limit")
    assert limited["record"]["gpu_ids"] == ["0"] and limited["env"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert limited["record"]["effective"] == ["cpu"] and "TensorFlow sees none" in limited["record"]["fallback"]
    assert limited["visible_gpus"] == 0 and limited["strategy"] == "_DefaultDistributionStrategy"


# ----- training through the pipeline -----------------------------------------------------------

@pytest.mark.slow
def test_mirrored_trains_over_two_cpu_replicas_and_does_not_change_the_fingerprint(workspace, mirror,
                                                                                     tiny):
    run = run_luigi(["ImageRun", *tiny, "--model", "mlp", "--device", "mirrored",
                     "--device-options", '{"cpus": 2}'], workspace, mirror)
    assert run.returncode == 0, run
    record = json.loads(manifests(workspace, "train")[0].read_text())["record"]
    assert record["final_step"] == 60 and record["val_accuracy"] > 0.5
    device = record["device"]
    assert (device["strategy"], device["replicas"]) == ("MirroredStrategy", 2)
    assert device["applied"]["mirrored"]["replica_devices"] == ["/device:CPU:0", "/device:CPU:1"]
    # The same model asked for without a device policy is already there.
    again = run_luigi(["ImageRun", *tiny, "--model", "mlp"], workspace, mirror)
    assert again.returncode == 0 and stages_written_since(workspace, again.started) == set()


CHECKPOINTS_EQUAL = """
import sys, numpy as np, tensorflow as tf
readers = [tf.train.load_checkpoint(tf.train.latest_checkpoint(d)) for d in sys.argv[1:]]
names = sorted(n for n in readers[0].get_variable_to_shape_map() if n.startswith("model_variables"))
assert names, "no model variables"
same = all(np.array_equal(readers[0].get_tensor(n), readers[1].get_tensor(n)) for n in names)
print("EQUAL" if same else "DIFFERENT", len(names))
"""


@pytest.mark.slow
def test_multi_worker_trains_in_two_processes_to_the_same_weights(tmp_path, mirror, tiny):
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    command = [sys.executable, "-m", "luigi", "--module", "pipelines", "ImageRun", *tiny, "--model", "mlp",
               "--device", "multi_worker", "--local-scheduler"]
    processes = []
    for index in range(2):
        options = json.dumps({"workers": workers, "index": index})
        processes.append(subprocess.Popen(
            [*command, "--device-options", options], cwd=ROOT, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=luigi_env(tmp_path / f"ws{index}", mirror)))
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    folders = [manifests(tmp_path / f"ws{index}", "train")[0].parent for index in range(2)]
    records = [json.loads((folder / "manifest.json").read_text())["record"] for folder in folders]
    for index, record in enumerate(records):
        assert record["device"]["strategy"] == "CollectiveAllReduceStrategy"
        assert record["device"]["replicas"] == 2 and record["final_step"] == 60
        assert record["device"]["applied"]["multi_worker"]["task"]["index"] == index
    compared = subprocess.run([sys.executable, "-c", CHECKPOINTS_EQUAL,
                               *(str(f / "checkpoints") for f in folders)], check=False,
                              capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert compared.stdout.split()[0] == "EQUAL", compared.stdout + compared.stderr


# ----- concurrent tasks and a third-party policy -----------------------------------------------

RENDEZVOUS = '''
"""A third-party device policy: wait in the worker until `parties` trainings have arrived."""
import os
import time
from pathlib import Path

DEFAULTS = {"barrier": None, "parties": 2}


def environment(options, gpu_ids):
    return {"RENDEZVOUS_GPUS": ",".join(gpu_ids or [])}


def configure(tf, options, context):
    folder = Path(options["barrier"])
    folder.mkdir(exist_ok=True)
    (folder / str(os.getpid())).write_text(os.environ["RENDEZVOUS_GPUS"])
    deadline = time.time() + 300
    while len(list(folder.iterdir())) < options["parties"]:
        if time.time() > deadline:
            raise RuntimeError("the other training never arrived")
        time.sleep(0.2)
    return {"arrived": sorted(path.read_text() for path in folder.iterdir())}


def strategy(tf, options, context):
    return None
'''

TWO_RUNS = '''
import luigi
from pipelines.runs import ImageRun


class TwoRuns(luigi.WrapperTask):
    device_options = luigi.DictParameter()
    data = luigi.Parameter()

    def requires(self):
        return [ImageRun(dataset="arrays", dataset_options={"path": self.data}, model="mlp", steps=20,
                         batch_size=20, checkpoint_every=20, validation_fraction=0.125, seed=seed,
                         device="gpu,rendezvous", device_options=self.device_options)
                for seed in (1, 2)]
'''


@pytest.mark.slow
def test_two_concurrent_trainings_get_different_gpus_and_a_third_party_policy_works(workspace, mirror,
                                                                                     tmp_path, tiny_data):
    site = install_fake_distribution(
        tmp_path / "site", "tfpipe-rendezvous", "0.1", {"rendezvous.py": RENDEZVOUS, "tworuns.py": TWO_RUNS},
        {"tfpipe.devices": {"rendezvous": "rendezvous"}})
    scheduler_cfg = tmp_path / "luigi-resources.cfg"
    scheduler_cfg.write_text("[resources]\ngpu = 2\n")
    env = {**luigi_env(workspace, mirror, [site]), devices.FAKE_GPUS_ENV: "0,1",
           "LUIGI_CONFIG_PATH": str(scheduler_cfg)}
    # Both trainings hold their GPU slot while they wait for each other in the worker, so they
    # provably run at the same time; CUDA sees no GPU here, hence fallback: cpu.
    options = json.dumps({"barrier": str(tmp_path / "barrier"), "parties": 2, "fallback": "cpu"})
    run = subprocess.run([sys.executable, "-m", "luigi", "--module", "tworuns", "TwoRuns", "--workers", "2",
                          "--device-options", options, "--data", str(tiny_data), "--local-scheduler"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    records = [json.loads(path.read_text())["record"]["device"] for path in manifests(workspace, "train")]
    assert len(records) == 2
    assert sorted(tuple(record["gpu_ids"]) for record in records) == [("0",), ("1",)]
    for record in records:
        assert record["applied"]["rendezvous"]["arrived"] == ["0", "1"]
        assert record["effective"] == ["cpu", "rendezvous"] and "TensorFlow sees none" in record["fallback"]
    assert not list((workspace / ".gpu-slots").glob("*.lock")) or all(
        _unlocked(path) for path in (workspace / ".gpu-slots").glob("*.lock"))


def _unlocked(path: Path) -> bool:
    import fcntl

    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True
