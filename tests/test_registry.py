import subprocess
import sys

import pytest

from plugins import registry
from tests.conftest import ROOT, luigi_env
from tests.plugin_fixtures import install_fake_distribution, install_tiny_model


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


def test_builtins_are_found_from_metadata_with_their_distribution():
    found = {info.name: info for info in registry.find("models")}
    assert {"mlp", "cnn"} <= set(found)
    assert found["cnn"].distribution == "tfpipe" and found["cnn"].module == "plugins.models.cnn"


def test_out_of_tree_plugin_is_found_and_loaded(site):
    install_tiny_model(site)
    info = registry.get("models", "tiny_mlp")
    assert (info.distribution, info.version) == ("tfpipe-tinymodel", "0.3.1")
    assert registry.load("models", "tiny_mlp").DEFAULTS == {"width": 16}


def test_broken_plugin_is_named_and_does_not_hide_others(site):
    install_fake_distribution(site, "tfpipe-broken", "1.0", {"brokenplug.py": "import no_such_module\n"},
                              {"tfpipe.models": {"broken": "brokenplug"}})
    with pytest.raises(registry.FailedToLoadPlugin,
                       match=r"'broken' \(brokenplug\) from distribution tfpipe-broken 1.0: "
                             r"ModuleNotFoundError: No module named 'no_such_module'"):
        registry.load("models", "broken")
    assert registry.load("models", "mlp").KIND == "image_classifier"
    assert "broken" in [info.name for info in registry.find("models")]


def test_plugin_missing_required_attributes(site):
    install_fake_distribution(site, "tfpipe-half", "1.0", {"halfplug.py": "KIND = 'image_classifier'\n"},
                              {"tfpipe.models": {"half": "halfplug"}})
    with pytest.raises(registry.FailedToLoadPlugin, match="lacks DEFAULTS, build"):
        registry.load("models", "half")


def test_unknown_name_lists_installed():
    with pytest.raises(registry.UnknownPlugin, match=r"no model named 'resnet'.*installed models: .*cnn, .*mlp"):
        registry.get("models", "resnet")


def test_plugins_command_lists_third_party_without_importing_tensorflow(tmp_path):
    site = install_tiny_model(tmp_path / "site")
    code = ("import sys, runpy; sys.argv = ['pipelines', 'plugins'];\n"
            "try:\n    runpy.run_module('pipelines', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('TF-IMPORTED' if 'tensorflow' in sys.modules else 'TF-FREE')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=luigi_env(tmp_path / "ws", None, [site]), check=True).stdout
    assert "tiny_mlp" in out and "tfpipe-tinymodel 0.3.1" in out
    assert "cnn" in out and "tfpipe 0.1.0" in out
    assert out.strip().endswith("TF-FREE")


def test_broken_dataset_plugin_is_named_and_the_others_keep_working(site):
    install_fake_distribution(site, "tfpipe-baddata", "2.0",
                              {"baddata.py": "KIND = 'image_classification'\nDEFAULTS = {}\nimport no_such_lib\n"},
                              {"tfpipe.datasets": {"baddata": "baddata"}})
    with pytest.raises(registry.FailedToLoadPlugin,
                       match=r"datasets plugin 'baddata' \(baddata\) from distribution tfpipe-baddata 2.0: "
                             r"ModuleNotFoundError: No module named 'no_such_lib'"):
        registry.DATASETS.load("baddata", "image_classification")
    assert registry.DATASETS.load("arrays", "image_classification").KIND == "image_classification"
    assert registry.DATASETS.load("nietzsche", "text_corpus").KIND == "text_corpus"


def test_a_name_two_distributions_register_is_an_error_naming_both(site):
    install_fake_distribution(site, "tfpipe-othermlp", "0.9", {"othermlp.py": "KIND = 'image_classifier'\n"},
                              {"tfpipe.models": {"mlp": "othermlp"}})
    assert "mlp" in registry.MODELS.clashes()
    with pytest.raises(registry.DuplicatePlugin, match="'mlp' is registered by more than one") as raised:
        registry.MODELS.get("mlp")
    assert "tfpipe 0.1.0 (plugins.models.mlp)" in str(raised.value)
    assert "tfpipe-othermlp 0.9 (othermlp)" in str(raised.value)


def test_a_kind_mismatch_lists_the_plugins_of_the_right_kind():
    with pytest.raises(registry.WrongKind, match=r"model 'lstm' is a char_language_model plugin; this path "
                                                 r"needs a image_classifier: cnn, mlp"):
        registry.MODELS.get("lstm", "image_classifier")
