"""A user error ends a real command line with one line, once, last, without a traceback or a retry.

Every run starts from a folder without luigi.cfg (the shipped Luigi defaults apply), with the
plain `luigi` command and with `python -m pipelines run`, on the in-process scheduler; the same
under a real luigid is in tests/test_server.py.
"""
from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import luigi
import pytest

from pipelines import user_errors
from tasks.text.preprocess import PreprocessText
from tests.conftest import ROOT, luigi_env, make_corpus
from tests.plugin_fixtures import install_fake_distribution

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")

CRASHING_DATASET = '''
"""A dataset plugin with a bug: decoding raises a RuntimeError (not a TfpipeError)."""
from pathlib import Path

KIND = "image_classification"
DEFAULTS = {"path": None}


def user_files(options):
    return {"marker": Path(options["path"])}


def locate(folder, options):
    return None


def open_dataset(files, options):
    raise RuntimeError("a bug in the crashing plugin")
'''


def command(cli: str, args: list[str]) -> list[str]:
    if cli == "luigi":
        return [sys.executable, "-m", "luigi", "--module", "pipelines", *args]
    return [sys.executable, "-m", "pipelines", "run", *args]


def elsewhere(tmp_path: Path) -> Path:
    """A folder without luigi.cfg to run from."""
    folder = tmp_path / "elsewhere"
    folder.mkdir(exist_ok=True)
    return folder


def env(tmp_path: Path, workspace: Path | None = None, site: Path | None = None) -> dict[str, str]:
    """This checkout (and `site`, fake installed plugins) on the path; an empty data mirror."""
    mirror = tmp_path / "mirror"
    mirror.mkdir(exist_ok=True)
    return luigi_env(workspace or tmp_path / "workspace", mirror, [ROOT, *([site] if site else [])])


def run(tmp_path: Path, cli: str, args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """One real command, stdout and stderr together in the order they were written."""
    return subprocess.run(command(cli, args), cwd=elsewhere(tmp_path), env=env(tmp_path, **kwargs),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)


def last_line(output: str) -> str:
    return [line for line in output.splitlines() if line.strip()][-1]


def assert_user_error(done: subprocess.CompletedProcess, code: int, message: str) -> None:
    """Exit `code`; no traceback; `message` exactly once, in the last line."""
    assert done.returncode == code, done.stdout[-4000:]
    assert "Traceback" not in done.stdout, done.stdout[-4000:]
    assert done.stdout.count(message) == 1, done.stdout[-4000:]
    assert message in last_line(done.stdout), last_line(done.stdout)


def attempts(workspace: Path, stage: str) -> int:
    """How many processes started producing the one folder of `stage` (tasks.base attempts.jsonl)."""
    (folder,) = (path for path in (workspace / stage).iterdir() if path.is_dir() and not path.name.startswith("."))
    return len((folder / "attempts.jsonl").read_text().splitlines())


def broken_idx_folder(folder: Path) -> Path:
    """Present, so scheduling works; not IDX, so the download task's run() raises a DataError."""
    folder.mkdir(parents=True)
    for name in IDX_FILES:
        (folder / name).write_bytes(b"not an IDX file")
    return folder


# ----- errors found while scheduling: one line, exit 35 -------------------------------------------

CONFIG_ERRORS = {
    "duplicate key": ("image:\n  steps: 10\n  steps: 20\n", "{cfg}:3: duplicate key image.steps (first at {cfg}:2)"),
    "duplicate section": ("image:\n  steps: 10\nimage:\n  seed: 2\n",
                          "{cfg}:3: duplicate section 'image' (first at {cfg}:1)"),
    "python tag": ("image:\n  steps: !!python/object:os.system 1\n",
                   "{cfg}:2: unsupported YAML tag !!python/object:os.system"),
    "unknown tag": ("image:\n  steps: !foo 1\n", "{cfg}:2: unsupported YAML tag !foo"),
    "nan": ("image:\n  learning_rate: .nan\n", "{cfg}:2: image.learning_rate must be a finite number, got nan"),
    "inf": ("image:\n  learning_rate: .inf\n", "{cfg}:2: image.learning_rate must be a finite number, got inf"),
    "out of range": ("image:\n  steps: 0\n", "{cfg}:2: image.steps must be at least 1, got 0"),
    "model hyper-parameter": ("models:\n  mlp:\n    hidden_units: -4\n",
                              "{cfg}:3: models.mlp.hidden_units must be at least 1, got -4"),
}


@pytest.mark.parametrize("cli", ["luigi", "run"])
@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_a_config_error_is_one_line_naming_file_and_line(tmp_path, cli, case):
    text, message = CONFIG_ERRORS[case]
    config = tmp_path / "mine.yaml"
    config.write_text(text)
    done = run(tmp_path, cli, ["ImageRun", "--model", "mlp", "--config", str(config), "--local-scheduler"])
    assert_user_error(done, 35, message.format(cfg=config))


FLAG_ERRORS = {
    "--learning-rate abc": "command line --learning-rate: image.learning_rate must be a number greater than 0, "
                           "got 'abc'",
    "--steps 1.5": "command line --steps: image.steps must be an integer at least 1, got '1.5'",
    "--steps -5": "command line --steps: image.steps must be at least 1, got -5",
    "--learning-rate inf": "command line --learning-rate: image.learning_rate must be a finite number, got inf",
    "--deterministic maybe": "command line --deterministic: image.deterministic must be true or false, got 'maybe'",
    "--model-params {": "command line --model-params: give a JSON mapping",
}


@pytest.mark.parametrize("cli", ["luigi", "run"])
@pytest.mark.parametrize("flag", sorted(FLAG_ERRORS))
def test_a_bad_flag_is_one_line_naming_flag_value_and_type(tmp_path, cli, flag):
    done = run(tmp_path, cli, ["ImageRun", "--model", "mlp", *flag.split(), "--local-scheduler"])
    assert_user_error(done, 35, FLAG_ERRORS[flag])


def test_the_text_path_refuses_a_window_longer_than_the_corpus_before_anything_runs(tmp_path):
    corpus = make_corpus(tmp_path / "short.txt", chars=500)  # a local file: its size is known
    done = run(tmp_path, "luigi", ["TextRun", "--corpus", str(corpus), "--model", "lstm", "--window", "1000",
                                   "--local-scheduler"])
    assert_user_error(done, 35, "text.window at command line --window")
    assert "shorter than one window of window=1000" in last_line(done.stdout)
    assert not (tmp_path / "workspace" / "download").exists()  # nothing ran, not even the download


def test_the_text_path_refuses_a_corpus_too_short_for_its_three_parts_before_anything_runs(tmp_path):
    corpus = tmp_path / "five.txt"
    corpus.write_text("abcde")  # 2 characters of validation and 2 held out leave 1 to train on
    done = run(tmp_path, "luigi", ["TextRun", "--corpus", str(corpus), "--model", "lstm", "--window", "1",
                                   "--batch-size", "1", "--validation-fraction", "0.1", "--local-scheduler"])
    assert_user_error(done, 35, "text.validation_fraction at command line --validation-fraction; "
                                "text.holdout (default) at pipelines/settings.py:")
    assert ("the corpus has only 5 characters: too short to keep 10% for validation and hold out 5% for "
            "evaluation (at least 2 characters each, and 2 to train on); give a longer text") in last_line(done.stdout)
    assert not (tmp_path / "workspace" / "download").exists()  # nothing ran, not even the download


def test_the_text_path_refuses_validation_and_heldout_parts_that_leave_nothing_to_train_on(tmp_path):
    config = tmp_path / "parts.yaml"
    config.write_text("text:\n  validation_fraction: 0.6\n  holdout: 0.4\n")
    corpus = make_corpus(tmp_path / "short.txt", chars=500)
    done = run(tmp_path, "luigi", ["TextRun", "--config", str(config), "--corpus", str(corpus), "--local-scheduler"])
    assert_user_error(done, 35, f"text.validation_fraction at {config}:2; text.holdout at {config}:3: "
                                "text.validation_fraction=0.6 and text.holdout=0.4 leave no text to train on; "
                                "their sum must be below 1")
    assert not (tmp_path / "workspace" / "download").exists()


def test_the_text_path_refuses_a_batch_larger_than_the_windows_of_a_preprocessed_corpus(tmp_path):
    corpus = make_corpus(tmp_path / "short.txt", chars=3000)
    args = ["TextRun", "--corpus", str(corpus), "--model", "lstm", "--window", "100", "--local-scheduler"]
    preprocess = PreprocessText(corpus="text_file", corpus_options={"path": str(corpus)}, lowercase=True,
                                validation_fraction=0.05, holdout=0.05, workspace=str(tmp_path / "workspace"))
    assert luigi.build([preprocess], local_scheduler=True, log_level="WARNING")
    train = preprocess.known_train_chars()
    assert train[1] is True  # exact, from the preprocessed text
    done = run(tmp_path, "luigi", [*args, "--batch-size", str(train[0])])
    assert_user_error(done, 35, f"batch_size={train[0]} is larger than the {train[0] - 100} windows")
    assert not (tmp_path / "workspace" / "train").exists()


# ----- errors inside run(): one line, one attempt -------------------------------------------------

@pytest.mark.parametrize("cli", ["luigi", "run"])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_user_error_in_run_is_one_line_at_the_end_and_not_retried(tmp_path, cli, workers):
    broken = broken_idx_folder(tmp_path / "broken")
    args = ["ImageRun", "--dataset", "arrays", "--dataset-options", f'{{"path": "{broken}"}}', "--model", "mlp",
            "--local-scheduler", "--workers", str(workers)]
    done = run(tmp_path, cli, args)
    assert_user_error(done, 30, f"{broken}/train-images-idx3-ubyte.gz: not an IDX file")
    assert attempts(tmp_path / "workspace", "download") == 1
    if cli == "luigi":
        assert last_line(done.stdout).startswith("tfpipe: error: ")  # after Luigi's execution summary
    else:
        assert last_line(done.stdout).startswith("tfpipe: FAILED (exit 30): ImageRun")


def crashing_run(tmp_path: Path) -> tuple[list[str], Path]:
    """ImageRun arguments whose download task crashes (a RuntimeError); the fake plugin's site."""
    site = install_fake_distribution(tmp_path / "site", "tfpipe-crashing", "0.1",
                                     {"crashing/__init__.py": "", "crashing/data.py": CRASHING_DATASET},
                                     {"tfpipe.datasets": {"crashing": "crashing.data"}})
    marker = tmp_path / "marker"
    marker.write_text("data")
    return ["ImageRun", "--dataset", "crashing", "--dataset-options", f'{{"path": "{marker}"}}', "--model",
            "mlp"], site


def assert_crash(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 30, done.stdout[-4000:]
    assert "Traceback" in done.stdout and "RuntimeError: a bug in the crashing plugin" in done.stdout
    assert "tfpipe: error:" not in done.stdout


def test_a_crash_keeps_its_traceback(tmp_path):
    args, site = crashing_run(tmp_path)
    assert_crash(run(tmp_path, "luigi", [*args, "--local-scheduler"], site=site))
    # The in-process scheduler has no other worker that could resume it: one attempt.
    assert attempts(tmp_path / "workspace", "download") == 1


def test_a_traceback_is_recognised_as_a_user_error_by_its_last_exception():
    from pipelines.settings import ConfigError

    def formatted(exception: BaseException) -> str:
        import traceback

        try:
            raise exception
        except BaseException as raised:  # noqa: BLE001
            return "".join(traceback.format_exception(raised))

    assert user_errors.user_error_in(formatted(ConfigError("my.yaml:3: bad"))) == "my.yaml:3: bad"
    assert user_errors.user_error_in(formatted(ValueError("my.yaml:3: bad"))) is None


# ----- a missing luigid -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("cli", ["scheduled", "luigi"])
def test_a_missing_luigid_says_how_to_start_it(tmp_path, cli):
    port = free_port()  # nothing listens on it
    program = [sys.executable, "-m", "pipelines", "scheduled"] if cli == "scheduled" else command("luigi", ["ImageRun"])
    done = subprocess.run([*program, "--scheduler-port", str(port)], cwd=elsewhere(tmp_path), env=env(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    message = f"no Luigi scheduler answers at http://127.0.0.1:{port}"
    assert_user_error(done, 40, message)
    assert "python -m pipelines scheduler" in last_line(done.stdout)
    assert "--local-scheduler" in last_line(done.stdout)


# ----- Luigi's pid lock knows the workspace ---------------------------------------------------------

def test_the_same_command_runs_against_another_workspace_but_not_the_same_one(tmp_path):
    """A holds Luigi's pid lock while it reads its config from a named pipe; then the same command
    line against A's workspace is refused, against another workspace it runs. The command lines are
    identical: --config cfg.yaml is relative, a pipe in A's folder and a file in the other's."""
    first, other = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    other.mkdir()
    os.mkfifo(first / "cfg.yaml")
    (other / "cfg.yaml").write_text("image:\n  steps: 10\n")
    argv = command("luigi", ["ImageRun", "--config", "cfg.yaml", "--model", "no_such_model", "--local-scheduler"])

    def start(cwd: Path, workspace: Path) -> subprocess.Popen:
        return subprocess.Popen(argv, cwd=cwd, env=env(tmp_path, workspace=workspace), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    holder = start(first, tmp_path / "ws-a")
    pipe = _open_for_writing(first / "cfg.yaml", holder)  # the holder is past the lock, reading
    try:
        same = start(other, tmp_path / "ws-a")
        same_output, _ = same.communicate(timeout=300)
        another = start(other, tmp_path / "ws-b")
        another_output, _ = another.communicate(timeout=300)
        assert holder.poll() is None  # still holding the lock all along
    finally:
        os.close(pipe)  # an empty config: the holder goes on
    holder_output, _ = holder.communicate(timeout=300)
    assert same.returncode == 10, same_output  # [retcode] already_running
    assert another.returncode == 35, another_output  # it ran: --model no_such_model is a scheduling error
    assert "command line --model" in last_line(another_output)
    assert holder.returncode == 35, holder_output


def _open_for_writing(fifo: Path, reader: subprocess.Popen) -> int:
    """Open a named pipe for writing once `reader` has opened it for reading."""
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        assert reader.poll() is None, reader.communicate()[0][-4000:]
        time.sleep(0.05)


# ----- under a real luigid --------------------------------------------------------------------------

@pytest.fixture
def luigid(tmp_path):
    from tests.test_server import free_port as luigid_port
    from tests.test_server import launch_luigid, stop

    server = launch_luigid(luigid_port(), tmp_path / "luigid", tmp_path)
    yield server
    stop(server.process)


@pytest.mark.parametrize("cli", ["luigi", "run"])
@pytest.mark.parametrize("workers", [1, 2])
def test_under_luigid_a_user_error_is_one_line_and_disabled_at_once(tmp_path, luigid, cli, workers):
    broken = broken_idx_folder(tmp_path / "broken")
    args = ["ImageRun", "--dataset", "arrays", "--dataset-options", f'{{"path": "{broken}"}}', "--model", "mlp",
            *luigid.args(), "--workers", str(workers)]
    done = run(tmp_path, cli, args)
    assert_user_error(done, 30, f"{broken}/train-images-idx3-ubyte.gz: not an IDX file")
    assert attempts(tmp_path / "workspace", "download") == 1
    disabled = luigid.api("task_list", status="DISABLED", upstream_status="", search="DownloadImageDataset")
    assert len(disabled) == 1  # not FAILED waiting for a retry: a waiting worker would run it again


def test_under_luigid_a_crash_keeps_its_traceback_and_one_retry(tmp_path, luigid):
    args, site = crashing_run(tmp_path)
    assert_crash(run(tmp_path, "luigi", [*args, *luigid.args()], site=site))
    # Retried once after [scheduler] retry_delay (what lets a waiting worker resume the task of a
    # killed one), then disabled.
    assert attempts(tmp_path / "workspace", "download") == 2


# ----- Luigi's own command-line errors: one line too -----------------------------------------------

@pytest.mark.parametrize("cli", ["luigi", "run"])
def test_a_stage_task_named_directly_says_to_run_a_run_task(tmp_path, cli):
    done = run(tmp_path, cli, ["TrainTextModel", "--local-scheduler"])
    assert_user_error(done, 40, "TrainTextModel is a stage that a run task sets up: its parameters (here 'model')")
    assert "TextRun" in last_line(done.stdout) and "TrainingRun" not in last_line(done.stdout)
    assert not (tmp_path / "workspace" / "train").exists()


@pytest.mark.parametrize("cli", ["luigi", "run"])
def test_a_misspelt_task_name_is_one_line_naming_the_nearest_tasks(tmp_path, cli):
    done = run(tmp_path, cli, ["TextRunn", "--local-scheduler"])
    assert_user_error(done, 1, "No task TextRunn. Did you mean:")
    assert "TextRun" in last_line(done.stdout).split("Did you mean:")[1]
