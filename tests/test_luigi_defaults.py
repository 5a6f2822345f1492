"""tfpipe's Luigi settings ship in the package: failures exit non-zero from any folder."""
import subprocess
import sys

from tests.conftest import ROOT, luigi_env


def run_elsewhere(folder, workspace):
    command = [sys.executable, "-m", "luigi", "--module", "pipelines", "ImageRun", "--model", "no_such_model",
               "--local-scheduler"]
    # This checkout on the path: from another folder `pipelines` would be the installed one.
    return subprocess.run(command, cwd=folder, env=luigi_env(workspace, None, [ROOT]), capture_output=True,
                          text=True, timeout=120)


def test_a_failed_run_exits_non_zero_from_a_folder_without_luigi_cfg(tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    run = run_elsewhere(folder, tmp_path / "ws")
    assert run.returncode == 35, run.stdout + run.stderr  # [retcode] scheduling_error, shipped


def test_the_users_own_luigi_cfg_wins_over_the_shipped_defaults(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "luigi.cfg").write_text("[retcode]\nscheduling-error = 7\n")
    run = run_elsewhere(folder, tmp_path / "ws")
    assert run.returncode == 7, run.stdout + run.stderr


def test_the_pid_lock_folder_is_per_workspace_unless_the_user_sets_one(tmp_path):
    from pipelines.luigi_defaults import lock_dir

    assert lock_dir(str(tmp_path / "a")) != lock_dir(str(tmp_path / "b"))
    assert lock_dir(str(tmp_path / "a")) == lock_dir(str(tmp_path / "x" / ".." / "a"))
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "luigi.cfg").write_text(f"[core]\nlock-pid-dir = {tmp_path / 'locks'}\n")
    run_elsewhere(folder, tmp_path / "ws")
    assert list((tmp_path / "locks").glob("*.pid"))  # Luigi took its lock where the user said
