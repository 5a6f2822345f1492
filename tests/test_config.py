import pytest

from pipelines import config as cfg


def write(tmp_path, text):
    path = tmp_path / "my.yaml"
    path.write_text(text)
    return path


def test_defaults_load_and_user_file_overrides(tmp_path):
    path = write(tmp_path, "image:\n  steps: 123\nmodels:\n  mlp:\n    hidden_units: 7\n")
    config = cfg.resolve(str(path))
    assert config.get("image", "steps") == 123
    assert config.get("image", "batch_size") == 50  # from defaults.yaml
    assert config.model_params("mlp") == {"hidden_units": 7}
    assert config.origins["image.steps"] == f"{path}:2"


def test_command_line_beats_files(tmp_path):
    config = cfg.resolve(str(write(tmp_path, "image:\n  learning_rate: 0.1\n")))
    config = cfg.apply_overrides(config, "image", {"learning_rate": 0.5, "steps": None})
    assert config.get("image", "learning_rate") == 0.5
    assert config.get("image", "steps") == cfg.load_file(cfg.DEFAULTS_FILE).get("image", "steps")


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "image:\n  steps: 10\n  batch_size: [1, 2\n")
    with pytest.raises(cfg.ConfigError, match=rf"{path}:\d+:\d+: invalid YAML"):
        cfg.load_file(path)


def test_unknown_key_names_file_line_and_known_keys(tmp_path):
    path = write(tmp_path, "image:\n  steps: 10\n  stpes: 20\n")
    with pytest.raises(cfg.ConfigError, match=rf"{path}:3: unknown key image.stpes; known keys in image: .*steps"):
        cfg.load_file(path)


def test_unknown_section(tmp_path):
    path = write(tmp_path, "imgae:\n  steps: 10\n")
    with pytest.raises(cfg.ConfigError, match=rf"{path}:1: unknown section 'imgae'"):
        cfg.load_file(path)


@pytest.mark.parametrize("line, message", [
    ("steps: ten", "image.steps must be an integer, got 'ten'"),
    ("steps: 1.5", "image.steps must be an integer"),
    ("deterministic: 1", "image.deterministic must be true or false"),
    ("learning_rate: -0.1", "image.learning_rate must be greater than 0"),
    ("batch_size: 0", "image.batch_size must be greater than 0"),
    ("lr_schedule: linear", "image.lr_schedule must be one of constant, cosine, got 'linear'"),
])
def test_wrong_types_and_ranges(tmp_path, line, message):
    path = write(tmp_path, f"image:\n  {line}\n")
    with pytest.raises(cfg.ConfigError, match=rf"{path}:2: " + message.replace(".", r"\.")):
        cfg.load_file(path)


def test_integer_is_accepted_where_a_number_is_expected(tmp_path):
    assert cfg.load_file(write(tmp_path, "image:\n  learning_rate: 1\n")).get("image", "learning_rate") == 1


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(cfg.ConfigError, match="cannot read config file .*nope.yaml"):
        cfg.resolve(str(tmp_path / "nope.yaml"))


def test_bad_command_line_value():
    with pytest.raises(cfg.ConfigError, match="command line --steps: image.steps must be greater than 0"):
        cfg.apply_overrides(cfg.resolve(None), "image", {"steps": -5})
