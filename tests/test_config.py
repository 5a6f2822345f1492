"""YAML layers: defaults from pipelines/settings.py, the user's file, the command line."""
import re

import pytest

from pipelines import config as cfg
from pipelines import settings


def write(tmp_path, text):
    path = tmp_path / "my.yaml"
    path.write_text(text)
    return path


def test_defaults_load_and_user_file_overrides(tmp_path):
    path = write(tmp_path, "image:\n  steps: 123\nmodels:\n  mlp:\n    hidden_units: 7\n")
    config = cfg.resolve(str(path))
    assert config.get("image", "steps") == 123
    assert config.get("image", "batch_size") == settings.get("image.batch_size").default == 128
    assert config.model_params("mlp") == {"hidden_units": 7}
    assert config.model_params("cnn") == {"dropout": 0.4}  # the declared default entry
    assert str(config.origins["image.steps"]) == f"{path}:2"
    assert config.where("models.mlp.hidden_units") == f"{path}:5"
    assert config.set_by("image.batch_size").startswith("image.batch_size (default) at "
                                                        "pipelines/settings.py:")


def test_command_line_beats_files(tmp_path):
    config = cfg.resolve(str(write(tmp_path, "image:\n  learning_rate: 0.1\n")))
    config = cfg.apply_command_line(config, {"image.learning_rate": 0.5, "image.steps": None})
    assert config.get("image", "learning_rate") == 0.5
    assert config.get("image", "steps") == settings.get("image.steps").default
    assert config.set_by("image.learning_rate") == ("image.learning_rate at command line "
                                                    "--learning-rate")


def test_command_line_entry_merges_over_the_config_entry(tmp_path):
    config = cfg.resolve(str(write(tmp_path, "models:\n  cnn:\n    filters1: 8\n")))
    config = cfg.apply_entry(config, "models", "cnn", {"dense_units": 16}, "--model-params")
    assert config.model_params("cnn") == {"dropout": 0.4, "filters1": 8, "dense_units": 16}
    assert config.where("models.cnn.dense_units") == "command line --model-params"
    assert config.where("models.cnn.filters1") == f"{tmp_path / 'my.yaml'}:3"


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "image:\n  steps: 10\n  batch_size: [1, 2\n")
    with pytest.raises(cfg.ConfigError, match=rf"{path}:\d+:\d+: invalid YAML"):
        cfg.load_file(path)


def test_duplicate_key_is_an_error_with_file_and_line(tmp_path):
    path = write(tmp_path, "image:\n  steps: 10\n  batch_size: 5\n  steps: 20\n")
    with pytest.raises(cfg.ConfigError,
                       match=rf"{path}:4: duplicate key image\.steps \(first at {path}:2\)"):
        cfg.load_file(path)


def test_duplicate_section_is_an_error_with_file_and_line(tmp_path):
    path = write(tmp_path, "image:\n  steps: 10\ntext:\n  steps: 5\nimage:\n  batch_size: 2\n")
    with pytest.raises(cfg.ConfigError,
                       match=rf"{path}:5: duplicate section 'image' \(first at {path}:1\)"):
        cfg.load_file(path)


def test_duplicate_model_option_is_an_error(tmp_path):
    path = write(tmp_path, "models:\n  mlp:\n    hidden_units: 1\n    hidden_units: 2\n")
    with pytest.raises(cfg.ConfigError,
                       match=rf"{path}:4: duplicate key models\.mlp\.hidden_units"):
        cfg.load_file(path)


def test_unknown_key_names_file_line_and_known_keys(tmp_path):
    path = write(tmp_path, "image:\n  steps: 10\n  stpes: 20\n")
    with pytest.raises(cfg.ConfigError,
                       match=rf"{path}:3: unknown key image.stpes; known keys in image: .*steps"):
        cfg.load_file(path)


def test_old_validation_size_key_is_unknown(tmp_path):
    path = write(tmp_path, "image:\n  validation_size: 50\n")
    with pytest.raises(cfg.ConfigError, match=rf"{path}:2: unknown key image.validation_size; "
                                              r"known keys in image: .*validation_fraction"):
        cfg.load_file(path)


def test_unknown_section(tmp_path):
    path = write(tmp_path, "imgae:\n  steps: 10\n")
    with pytest.raises(cfg.ConfigError, match=rf"{path}:1: unknown section 'imgae'"):
        cfg.load_file(path)


@pytest.mark.parametrize("line, message", [
    ("steps: ten", "image.steps must be an integer at least 1, got 'ten'"),
    ("steps: 1.5", "image.steps must be an integer"),
    ("deterministic: 1", "image.deterministic must be true or false"),
    ("learning_rate: -0.1", "image.learning_rate must be greater than 0, got -0.1"),
    ("learning_rate: .nan", "image.learning_rate must be a finite number, got nan"),
    ("learning_rate: .inf", "image.learning_rate must be a finite number, got inf"),
    ("batch_size: 0", "image.batch_size must be at least 1, got 0"),
    ("validation_fraction: 1.0", "image.validation_fraction must be between 0 and 1 (exclusive)"),
    ("validation_fraction: 0", "image.validation_fraction must be between 0 and 1 (exclusive)"),
    ("lr_schedule: linear", "image.lr_schedule must be one of constant, cosine, got 'linear'"),
])
def test_wrong_types_and_ranges(tmp_path, line, message):
    path = write(tmp_path, f"image:\n  {line}\n")
    with pytest.raises(cfg.ConfigError, match=rf"{path}:2: " + message.replace(".", r"\.")
                       .replace("(", r"\(").replace(")", r"\)")):
        cfg.load_file(path)


@pytest.mark.parametrize("line, message", [
    ("validation_fraction: 0", "text.validation_fraction must be between 0 and 1 (exclusive), got 0"),
    ("validation_fraction: 1.0", "text.validation_fraction must be between 0 and 1 (exclusive), got 1.0"),
    ("validation_fraction: ten", "text.validation_fraction must be a number between 0 and 1"),
    ("lr_schedule: linear", "text.lr_schedule must be one of constant, cosine, got 'linear'"),
])
def test_text_validation_fraction_and_lr_schedule_are_checked_with_file_and_line(tmp_path, line, message):
    path = write(tmp_path, f"text:\n  {line}\n")
    with pytest.raises(cfg.ConfigError, match=rf"{path}:2: " + re.escape(message)):
        cfg.load_file(path)


def test_nan_inside_a_model_entry_is_rejected(tmp_path):
    path = write(tmp_path, "models:\n  cnn:\n    dropout: .nan\n")
    with pytest.raises(cfg.ConfigError, match=rf"{path}:3: models.cnn.dropout must be a finite"):
        cfg.load_file(path)


def test_temperatures_are_checked_item_by_item(tmp_path):
    path = write(tmp_path, "text:\n  temperatures: [0.5, 0]\n")
    with pytest.raises(cfg.ConfigError, match=rf"{path}:2: text.temperatures: temperature 0 must "
                                              "be greater than 0"):
        cfg.load_file(path)
    with pytest.raises(cfg.ConfigError, match="text.temperatures must not be empty"):
        cfg.load_file(write(tmp_path, "text:\n  temperatures: []\n"))


def test_integer_is_accepted_where_a_number_is_expected(tmp_path):
    config = cfg.load_file(write(tmp_path, "image:\n  learning_rate: 1\n"))
    value = config.get("image", "learning_rate")
    assert value == 1.0 and isinstance(value, float)  # one value, one fingerprint


def test_exponent_without_dot_is_a_number(tmp_path):
    # YAML 1.1 reads 1e-3 as a string; a user writing it means the number.
    assert cfg.load_file(write(tmp_path, "image:\n  learning_rate: 1e-3\n")).get(
        "image", "learning_rate") == 0.001


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(cfg.ConfigError, match="cannot read config file .*nope.yaml"):
        cfg.resolve(str(tmp_path / "nope.yaml"))


def test_bad_command_line_value():
    with pytest.raises(cfg.ConfigError,
                       match="command line --steps: image.steps must be at least 1, got -5"):
        cfg.apply_command_line(cfg.resolve(None), {"image.steps": -5})


def test_nan_learning_rate_on_the_command_line_is_rejected():
    with pytest.raises(cfg.ConfigError, match="command line --learning-rate: text.learning_rate "
                                              "must be a finite number, got nan"):
        cfg.apply_command_line(cfg.resolve(None), {"text.learning_rate": float("nan")})


def test_reference_config_is_valid():
    reference = cfg.load_file(cfg.Path(__file__).parent.parent / "pipelines/configs/reference.yaml")
    assert reference.get("image", "lr_schedule") == "constant"
    assert reference.get("image", "augment") == "none"  # as the plain tutorial script trains


@pytest.mark.parametrize("text, line, tag", [
    ("image:\n  steps: !!python/object:os.system 1\n", 2, "!!python/object:os.system"),
    ("image:\n  steps: 5\n  model: !foo cnn\n", 3, "!foo"),
    ("models:\n  cnn:\n    dropout: [1,\n      !!python/tuple [2]]\n", 4, "!!python/tuple"),
])
def test_an_unsupported_tag_names_the_file_line_and_tag(tmp_path, text, line, tag):
    path = write(tmp_path, text)
    with pytest.raises(cfg.ConfigError) as raised:
        cfg.load_file(path)
    assert str(raised.value).startswith(f"{path}:{line}: unsupported YAML tag {tag};")
    assert "<unicode string>" not in str(raised.value)


def test_a_value_its_tag_cannot_hold_names_the_file_and_line(tmp_path):
    path = write(tmp_path, "models:\n  mlp:\n    hidden_units: !!int abc\n")
    with pytest.raises(cfg.ConfigError, match=rf"^{path}:3: invalid value"):
        cfg.load_file(path)


def test_text_given_for_a_number_names_the_flag_value_and_type():
    with pytest.raises(cfg.ConfigError, match=r"^command line --steps: image.steps must be an integer at "
                                              r"least 1, got '1\.5' \(a whole number"):
        cfg.apply_command_line(cfg.resolve(None), {"image.steps": "1.5"})
