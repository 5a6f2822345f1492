"""Each setting is declared once (pipelines/settings.py); everything else derives from it."""
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import luigi
import pytest
from luigi.parameter import _no_value

import pipelines  # noqa: F401  registers the run tasks
import tasks.image
import tasks.text
from pipelines import config as cfg
from pipelines import settings
from pipelines.params import show
from pipelines.runs import FullRun, ImageRun, TextRun
from pipelines.scheduled import ScheduledRun
from tasks.base import PipelineTask
from tests.conftest import ROOT, make_corpus, run_luigi, write_tiny_full_config

# Run-task parameters that are not settings: which file to read, where results go, and the
# values a Sweep gives one of its trials (pipelines/sweep, never on the command line).
NOT_SETTINGS = {"config", "workspace", "date", "sweep_trial"}


def no_task_folders(workspace: Path) -> bool:
    """No task wrote a folder (hidden caches such as .cache/ do not count)."""
    return not workspace.exists() or not any(p for p in workspace.iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("run", [ImageRun, TextRun, FullRun, ScheduledRun])
def test_every_run_task_parameter_is_generated_from_a_setting(run):
    for name, param in run.get_params():
        if name in NOT_SETTINGS:
            continue
        path = run.setting_params[name]
        assert param._default is None, f"{run.__name__}.{name} has a default of its own"
        if path in settings.FREE_FORM:
            assert f"config key {path}." in param.description
            continue
        declared = settings.SETTINGS[path]
        assert declared.param == name
        assert param.description == (f"{declared.help}; {declared.describe()} (default: "
                                      f"{show(declared.default)}, config key {path})")


@pytest.mark.parametrize("run, section, free", [
    (ImageRun, "image", {"model_params", "dataset_options"}),
    (TextRun, "text", {"model_params", "corpus_options"}),
])
def test_run_tasks_expose_every_setting_of_their_section(run, section, free):
    names = {name for name, _ in run.get_params()}
    expected = {declared.param for declared in settings.of_section(section)}
    assert expected | free | {"mirror", "device", "device_options"} <= names


def test_defaults_come_only_from_the_declarations():
    assert not (ROOT / "pipelines" / "configs" / "defaults.yaml").exists()
    values = cfg.defaults().values
    for path, declared in settings.SETTINGS.items():
        section, key = path.split(".")
        assert values[section][key] == declared.default
    assert values["models"]["cnn"] == {"dropout": 0.4}
    assert values["image"]["validation_fraction"] == 0.1
    assert values["image"]["lr_schedule"] == "cosine"
    assert values["text"]["validation_fraction"] == values["text"]["holdout"] == 0.05
    assert values["text"]["lr_schedule"] == "cosine"


def test_tfpipe_defaults_prints_a_valid_config_of_every_setting(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pipelines", "defaults"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    path = tmp_path / "defaults.yaml"
    path.write_text(done.stdout)
    printed = cfg.load_file(path)  # the YAML validator accepts exactly the declared keys
    assert printed.values == cfg.defaults().values
    assert {f"{s}.{k}" for s, items in printed.values.items() if s not in settings.FREE_FORM
            for k in items} == set(settings.SETTINGS)
    assert "# learning rate of Adam (a number greater than 0; command line --learning-rate)" in (
        done.stdout)


def test_each_declaration_records_its_own_file_and_line():
    lines = (ROOT / "pipelines" / "settings.py").read_text().splitlines()
    for path, declared in settings.SETTINGS.items():
        file, line = declared.declared_at.rsplit(":", 1)
        assert file == "pipelines/settings.py"
        section, key = path.split(".")
        assert f'setting("{section}", "{key}"' in lines[int(line) - 1], path


def _stage_classes() -> list[type]:
    found = []
    for package in (tasks.image, tasks.text):
        for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            loaded = importlib.import_module(module.name)
            found += [obj for obj in vars(loaded).values() if isinstance(obj, type)
                      and issubclass(obj, PipelineTask) and obj.__module__ == loaded.__name__]
    return found


def test_no_stage_task_has_a_default_for_a_significant_parameter():
    classes = _stage_classes()
    assert {"DownloadImageDataset", "PreprocessImages", "TrainImageModel", "EvaluateImageModel",
            "DownloadCorpus", "PreprocessText", "TrainTextModel", "EvaluateTextModel",
            "GenerateText"} <= {cls.__name__ for cls in classes}
    defaulted = [f"{cls.__name__}.{name}" for cls in classes for name, param in cls.get_params()
                 if param.significant and param._default is not _no_value]
    assert defaulted == []


@pytest.mark.parametrize("task, expected", [
    ("DownloadImageDataset", {"dataset", "dataset_options", "mirror"}),
    ("PreprocessImages", {"validation_fraction", "split_seed"}),
    ("TrainImageModel", {"model", "model_params", "steps", "batch_size", "learning_rate",
                         "lr_schedule", "seed", "checkpoint_every", "deterministic", "device",
                         "device_options"}),
    ("DownloadCorpus", {"corpus", "corpus_options", "mirror"}),
    ("PreprocessText", {"lowercase", "validation_fraction", "holdout"}),
    ("TrainTextModel", {"model", "model_params", "window", "steps", "batch_size", "learning_rate",
                        "lr_schedule", "seed", "checkpoint_every", "deterministic", "device", "device_options"}),
    ("GenerateText", {"temperatures", "length", "sample_seed", "seed_length"}),
])
def test_stage_tasks_take_the_parameter_names_the_run_tasks_pass(task, expected):
    cls = luigi.task_register.Register.get_task_cls(task)
    assert expected <= {name for name, _ in cls.get_params()}


@pytest.mark.parametrize("run, default", [("ImageRun", "0.002"), ("TextRun", "0.01")])
def test_luigi_help_shows_each_settings_default_and_meaning(run, default):
    done = subprocess.run([sys.executable, "-m", "luigi", "--module", "pipelines", run, "--help"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    text = " ".join(done.stdout.split())  # argparse wraps lines at the terminal width
    section = run.removesuffix("Run").lower()
    assert ("--learning-rate LEARNING_RATE learning rate of Adam" in text
            and f"(default: {default}, config key {section}.learning_rate)" in text), text


def test_model_of_the_wrong_kind_fails_in_the_luigi_process_before_any_task_runs(workspace, mirror, tiny):
    run = run_luigi(["ImageRun", *tiny, "--model", "lstm"], workspace, mirror)
    assert run.returncode != 0
    assert ("command line --model: model 'lstm' is a char_language_model plugin; this path needs "
            "a image_classifier: cnn, mlp") in run.output
    assert no_task_folders(workspace)  # no task ran


def test_unknown_model_option_names_the_config_file_and_line(workspace, mirror, tmp_path, tiny):
    config = tmp_path / "mine.yaml"
    config.write_text("models:\n  mlp:\n    hidden_unit: 8\n")
    run = run_luigi(["ImageRun", *tiny, "--model", "mlp", "--config", str(config)], workspace,
                    mirror)
    assert run.returncode != 0
    assert (f"{config}:3: unknown hyper-parameter 'hidden_unit' for model plugin 'mlp' "
            "(models.mlp.hidden_unit); it takes: hidden_units") in run.output
    assert no_task_folders(workspace)


def test_full_run_refuses_a_bad_image_setting_before_the_text_path_runs(workspace, tmp_path):
    config = write_tiny_full_config(tmp_path)
    text = config.read_text().replace("model: mlp", "model: gru")
    config.write_text(text)
    line = text.splitlines().index("  model: gru") + 1
    run = run_luigi(["FullRun", "--config", str(config)], workspace, tmp_path / "mirror")
    assert run.returncode != 0
    assert f"{config}:{line}: model 'gru' is a char_language_model plugin" in run.output
    assert no_task_folders(workspace)  # the text path trained nothing


def test_nan_learning_rate_is_rejected_with_the_flag(workspace, mirror, tiny):
    run = run_luigi(["ImageRun", *tiny, "--model", "mlp", "--learning-rate", "nan"], workspace,
                    mirror)
    assert run.returncode != 0
    assert "command line --learning-rate: image.learning_rate must be a finite number, got nan" in (
        run.output)


def test_default_validation_fraction_works_on_a_tiny_dataset(workspace, mirror, tiny_data):
    from tasks.image.preprocess import PreprocessImages

    run = ImageRun(dataset="arrays", dataset_options={"path": str(tiny_data)}, model="mlp", mirror=str(mirror),
                   workspace=str(workspace))
    preprocess = next(task for task in _graph(run.requires()) if isinstance(task, PreprocessImages))
    assert preprocess.validation_fraction == settings.get("image.validation_fraction").default
    assert luigi.build([preprocess], local_scheduler=True, log_level="WARNING")
    meta = json.loads((preprocess.folder() / "meta.json").read_text())
    assert meta["counts"]["val"] == 40 and meta["counts"]["train"] == 360  # 10 percent of 400


def _graph(task):
    yield task
    for upstream in luigi.task.flatten(task.requires()):
        yield from _graph(upstream)


def test_text_validation_fraction_is_preprocessings_and_lr_schedule_is_trainings(tmp_path):
    """Changing text.validation_fraction reruns preprocessing and what follows, not the download;
    text.lr_schedule reruns training, evaluation and generation, not preprocessing."""
    corpus = make_corpus(tmp_path / "words.txt")

    def folders(**values) -> dict[str, Path]:
        tasks = TextRun(corpus=str(corpus), workspace=str(tmp_path / "ws"), **values).requires()
        return {task.stage: task.folder() for task in [*_graph(tasks["generate"]), tasks["evaluate"]]}

    base = folders()
    assert set(base) == {"download", "preprocess", "train", "evaluate", "generate"}
    constant, validation = folders(lr_schedule="constant"), folders(validation_fraction=0.1)
    assert {stage for stage in base if constant[stage] != base[stage]} == {"train", "evaluate", "generate"}
    assert {stage for stage in base if validation[stage] != base[stage]} == {"preprocess", "train", "evaluate",
                                                                             "generate"}
