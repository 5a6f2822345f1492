"""Pure functions of the text path: no TensorFlow, no Luigi."""
from pathlib import Path

import numpy as np
import pytest

from plugins.datasets.api import DataError
from plugins.datasets.text import decode_corpus
from plugins.errors import TfpipeError
from tasks.text.download import corpus_label
from tasks.text.prep import (
    build_vocab,
    check_temperatures,
    check_vocab,
    check_window,
    decode,
    encode,
    id_dtype,
    normalise,
    seed_passage,
    split_text,
    train_size,
)
from tasks.text.scoring import heldout_streams


def test_decode_corpus_accepts_utf8_and_drops_a_bom():
    assert decode_corpus("\ufeffÜber alles\n".encode("utf-8"), "x.txt") == "Über alles\n"


@pytest.mark.parametrize("data, message", [
    (b"", "the corpus is empty"),
    (b"  \n\n", "the corpus is empty"),
    (b"text\x00\x01\x02", "looks binary (a NUL byte at offset 4)"),
    ("caf\u00e9".encode("latin-1"), "not UTF-8 text (invalid byte at offset 3)"),
])
def test_decode_corpus_rejects_bad_input_by_name(data, message):
    with pytest.raises(DataError, match=r"^mine\.txt: ") as error:
        decode_corpus(data, "mine.txt")
    assert message in str(error.value)


def test_normalise_lowercases_and_unifies_line_ends():
    assert normalise("Ab\r\nC\rD", lowercase=True) == "ab\nc\nd"
    assert normalise("Ab\r\nC", lowercase=False) == "Ab\nC"


def test_vocab_encode_decode_round_trip():
    text = "hello, world!\n"
    vocab = build_vocab(text)
    assert vocab == sorted(set(text)) and len(vocab) == 11
    ids = encode(text, vocab)
    assert ids.dtype == np.int32 and decode(ids, vocab) == text
    compact = ids.astype(id_dtype(len(vocab)))  # what preprocessing stores
    assert compact.dtype == np.uint16 and decode(compact, vocab) == text
    assert id_dtype(65535) == "uint16" and id_dtype(70000) == "int32"
    with pytest.raises(TfpipeError, match="'z' is not in the vocabulary"):
        encode("z", vocab)


def test_split_keeps_training_validation_and_heldout_contiguous_in_that_order():
    ids = np.arange(1000, dtype=np.int32)
    train, valid, held = split_text(ids, 0.1, 0.05)
    assert (len(train), len(valid), len(held)) == (850, 100, 50) == (train_size(1000, 0.1, 0.05), 100, 50)
    # In order, nothing shared and nothing lost: no training window reaches into the other parts.
    np.testing.assert_array_equal(np.concatenate([train, valid, held]), ids)
    assert [len(part) for part in split_text(np.arange(6), 0.05, 0.05)] == [2, 2, 2]  # the smallest that splits
    with pytest.raises(TfpipeError, match=r"^the corpus has only 5 characters: too short to keep 5% for "
                                          r"validation and hold out 5% for evaluation"):
        split_text(np.arange(5), 0.05, 0.05)
    with pytest.raises(TfpipeError, match=r"text.validation_fraction=0.5 and text.holdout=0.5 leave no text to "
                                          r"train on; their sum must be below 1"):
        split_text(ids, 0.5, 0.5)
    with pytest.raises(TfpipeError, match="text.holdout=1.5 must be between 0 and 1"):
        split_text(ids, 0.05, 1.5)


def test_check_window():
    assert check_window(101, 100, 1) == 1
    with pytest.raises(TfpipeError, match="shorter than one window of window=100"):
        check_window(100, 100, 1)
    with pytest.raises(TfpipeError, match="batch_size=64 is larger than the 10 windows"):
        check_window(110, 100, 64)


@pytest.mark.parametrize("bad, message", [([0.5, 0], "temperature 0 must be greater than 0"),
                                          ([-1.0], "temperature -1.0 must be greater than 0"),
                                          ([], "at least one"), (["hot"], "'hot' is not a number")])
def test_check_temperatures(bad, message):
    assert check_temperatures((0.2, 1)) == [0.2, 1.0]
    with pytest.raises(TfpipeError, match="^cfg.yaml:3: ") as error:
        check_temperatures(bad, "cfg.yaml:3")
    assert message in str(error.value)


def test_check_vocab():
    check_vocab(3, ["a", "b", "c"], ["a", "b", "c"], "m")
    with pytest.raises(TfpipeError, match="predicts 4 characters but the vocabulary has 3"):
        check_vocab(4, ["a", "b", "c"], None, "m")
    with pytest.raises(TfpipeError, match="different vocabulary"):
        check_vocab(3, ["a", "b", "c"], ["a", "b", "d"], "m")


def test_seed_passage_is_seeded_and_starts_at_a_word():
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi"
    first = seed_passage(text, 20, seed=3)
    assert first == seed_passage(text, 20, seed=3) and len(first) == 20 and first in text
    start = text.index(first)
    assert start == 0 or text[start - 1] == " "
    assert seed_passage("short", 20, seed=0) == "short"


def test_heldout_streams_cover_the_text_contiguously():
    ids = np.arange(101, dtype=np.int32)
    x, y = heldout_streams(ids, streams=4)
    assert x.shape == (4, 25) and (y == x + 1).all() and x[1, 0] == 25


def test_corpus_labels():
    assert corpus_label("nietzsche", {}) == "nietzsche"
    assert corpus_label("text_file", {"path": "~/books/mine.txt"}) == "mine"
    for url in ("https://example.org/books/war and peace.txt",
                "https://example.org/b/war%20and%20peace.txt?x=1"):
        assert corpus_label("text_file", {"path": url}) == "war_and_peace"
    assert corpus_label("text_file", {"path": "https://example.org/"}) == "corpus"
    assert corpus_label("mine", {"path": "elsewhere.txt"}) == "mine"  # another plugin: its name


def test_a_corpus_path_or_url_means_the_text_file_plugin(tmp_path, monkeypatch):
    from pipelines.plugin_checks import resolve_corpus

    assert resolve_corpus("nietzsche", None, "text.corpus")[:2] == ("nietzsche", None)
    home = Path.home()
    assert resolve_corpus("~/books/mine.txt", None, "x")[:2] == ("text_file", str(home / "books/mine.txt"))
    url = "https://example.org/a.txt"
    assert resolve_corpus(url, None, "x")[:2] == ("text_file", url)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README").write_text("text")
    assert resolve_corpus("README", None, "x")[:2] == ("text_file", str(tmp_path / "README"))  # an existing file
    with pytest.raises(TfpipeError, match="text.corpus: no dataset named 'unknown_corpus'.*nietzsche"):
        resolve_corpus("unknown_corpus", None, "text.corpus")
