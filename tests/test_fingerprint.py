import textwrap

import pytest

from tasks.fingerprint import code_hashes, digest, locate_module


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A throwaway top-level package `fpdemo` with a module importing a helper."""
    root = tmp_path / "fpdemo"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "helper.py").write_text("def scale(x):\n    return 2 * x\n")
    (root / "model.py").write_text(textwrap.dedent('''
        """Docstring."""
        from . import helper
        import numpy


        def build(x):
            # a comment
            return helper.scale(x)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    return root


def hashes(package):
    return code_hashes(["fpdemo.model"], follow=["fpdemo"])


def test_imports_are_followed_into_the_package_only(package):
    found = hashes(package)
    assert set(found) == {"fpdemo", "fpdemo.model", "fpdemo.helper"}  # numpy is not followed


def test_comments_docstrings_and_formatting_do_not_change_the_hash(package):
    before = hashes(package)
    model = package / "model.py"
    model.write_text(model.read_text().replace("# a comment", "# another comment\n\n")
                     .replace('"""Docstring."""', '"""Changed docs."""')
                     .replace("return helper.scale(x)", "return helper.scale(  x  )"))
    assert hashes(package) == before


def test_a_code_edit_in_an_imported_helper_changes_the_hash(package):
    before = hashes(package)
    (package / "helper.py").write_text("def scale(x):\n    return 3 * x\n")
    after = hashes(package)
    assert after["fpdemo.helper"] != before["fpdemo.helper"]
    assert after["fpdemo.model"] == before["fpdemo.model"]


def test_locating_a_module_does_not_import_it(package):
    (package / "__init__.py").write_text("raise RuntimeError('imported!')\n")
    assert locate_module("fpdemo.model") == package / "model.py"


def test_digest_ignores_dictionary_order():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})
