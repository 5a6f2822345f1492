"""Text corpora as dataset plugins (nietzsche, text_file) and the text data stages, in process,
on tiny files the tests write. No TensorFlow."""
import functools
import hashlib
import http.server
import json
import threading
from pathlib import Path

import luigi
import numpy as np
import pytest

from plugins import registry
from plugins.datasets import nietzsche, text_file
from plugins.datasets.api import DataError, RemoteFile
from plugins.errors import TfpipeError
from tasks.text.download import DownloadCorpus
from tasks.text.preprocess import PreprocessText
from tests.conftest import make_corpus

SHARED_COPY = Path(__file__).resolve().parents[2] / "shared" / "data" / "nietzsche.txt"


def build(*tasks: luigi.Task) -> None:
    assert luigi.build(list(tasks), local_scheduler=True, log_level="WARNING")


def record(task: luigi.Task) -> dict:
    return json.loads((task.folder() / "manifest.json").read_text())["record"]


def pin(monkeypatch, text: bytes, urls=("http://127.0.0.1:9/nietzsche.txt",)) -> None:
    """Pin the nietzsche plugin to a tiny text (the real file is 600 kB)."""
    remote = RemoteFile("nietzsche.txt", urls, hashlib.sha256(text).hexdigest(), len(text))
    monkeypatch.setattr(nietzsche, "REMOTE", (remote,))


def test_both_plugins_are_text_corpora_of_the_registry():
    assert {"nietzsche", "text_file"} <= set(registry.DATASETS.names("text_corpus"))
    assert registry.DATASETS.load("nietzsche", "text_corpus") is nietzsche
    assert registry.DATASETS.load("text_file", "text_corpus") is text_file


@pytest.mark.skipif(not SHARED_COPY.is_file(), reason="no shared copy of nietzsche.txt here")
def test_nietzsche_pins_match_the_real_copy():
    data = SHARED_COPY.read_bytes()
    (remote,) = nietzsche.REMOTE
    assert remote.urls == ("https://s3.amazonaws.com/text-datasets/nietzsche.txt",)
    assert (remote.size, remote.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    corpus = nietzsche.open_dataset(nietzsche.locate(SHARED_COPY.parent, {}), {})
    assert len(corpus.text) == 600901 and "\r" not in corpus.text


def test_nietzsche_is_found_in_the_mirror_and_copied(tmp_path, monkeypatch):
    copy = make_corpus(tmp_path / "mirror" / "nietzsche" / "nietzsche.txt")
    pin(monkeypatch, copy.read_bytes())
    assert nietzsche.locate(tmp_path / "mirror" / "nietzsche", {}) == {"text": copy}
    assert nietzsche.locate(tmp_path, {}) is None

    task = DownloadCorpus(corpus="nietzsche", corpus_options={}, mirror=str(tmp_path / "mirror"),
                          workspace=str(tmp_path / "ws"))
    build(task)
    assert task.folder().name.startswith("nietzsche-")
    assert (task.folder() / "nietzsche.txt").read_bytes() == copy.read_bytes()
    found = record(task)
    assert found["source"] == str(tmp_path / "mirror" / "nietzsche")
    assert found["files"]["text"] == {"path": "nietzsche.txt", "in_place": False,
                                      "bytes": copy.stat().st_size,
                                      "sha256": hashlib.sha256(copy.read_bytes()).hexdigest()}
    assert found["characters"] == len(copy.read_text())
    manifest = json.loads((task.folder() / "manifest.json").read_text())
    assert manifest["components"]["plugin"]["name"] == "nietzsche"
    assert "plugins.datasets.nietzsche" in manifest["components"]["code"]


@pytest.mark.parametrize("wrong", ["size", "sha256"])
def test_a_mirror_copy_that_is_not_the_pinned_file_is_refused_by_name(tmp_path, monkeypatch, wrong):
    copy = make_corpus(tmp_path / "mirror" / "nietzsche" / "nietzsche.txt")
    if wrong == "sha256":  # same size, other bytes
        pin(monkeypatch, copy.read_bytes().replace(b"e", b"o"))
        expected = "sha256 .*, expected"
    else:  # the real pins: the tiny copy is far shorter than the real file
        expected = f"{copy.stat().st_size} bytes, expected 600918"
    task = DownloadCorpus(corpus="nietzsche", corpus_options={}, mirror=str(tmp_path / "mirror"),
                          workspace=str(tmp_path / "ws"))
    with pytest.raises(DataError, match=f"^{copy}: {expected}") as error:
        task.fingerprint()
    assert nietzsche.REMOTE[0].urls[0] in str(error.value)  # where the right file comes from
    assert "delete it" in str(error.value)


def test_no_mirror_and_no_network_is_one_message_with_the_folder_to_use(tmp_path, monkeypatch):
    monkeypatch.delenv("TFPIPE_DATA_MIRROR", raising=False)
    pin(monkeypatch, b"some text", urls=("http://127.0.0.1:9/nietzsche.txt",))  # nothing listens
    task = DownloadCorpus(corpus="nietzsche", corpus_options={}, workspace=str(tmp_path / "ws"))
    with pytest.raises(TfpipeError) as error:
        task.run()
    message = str(error.value)
    assert "http://127.0.0.1:9/nietzsche.txt" in message
    assert message.endswith("set TFPIPE_DATA_MIRROR (or data.mirror in your config) to a folder "
                            "and put the file at $TFPIPE_DATA_MIRROR/nietzsche/nietzsche.txt")
    assert "<" not in message
    assert not (task.folder() / "manifest.json").exists()


def test_text_file_reads_a_local_file_in_place(tmp_path):
    corpus = make_corpus(tmp_path / "books" / "mine.txt", chars=600)
    options = {"path": str(corpus)}
    preprocess = PreprocessText(corpus="text_file", corpus_options=options, lowercase=False,
                                validation_fraction=0.05, holdout=0.1, workspace=str(tmp_path / "ws"))
    build(preprocess)
    download = preprocess.requires()
    assert download.folder().name.startswith("mine-")
    written = sorted(path.name for path in download.folder().iterdir())
    assert written == ["attempts.jsonl", "manifest.json"]  # no copy
    files = record(download)["files"]
    assert files["text"]["path"] == str(corpus) and files["text"]["in_place"] is True

    text = corpus.read_text()
    vocab = json.loads((preprocess.folder() / "vocab.json").read_text())
    ids = np.concatenate([np.load(preprocess.folder() / f"{split}_ids.npy")
                          for split in ("train", "valid", "heldout")])
    assert ids.dtype == np.uint16 and "".join(vocab[i] for i in ids) == text
    assert json.loads((preprocess.folder() / "meta.json").read_text())["ids_dtype"] == "uint16"

    # Read in place means checked in place: an edit is caught, never read silently.
    corpus.write_text(text.upper())
    with pytest.raises(DataError, match=f"^{corpus} changed since .* rerun to use the new content"):
        download.files()
    luigi.task_register.Register.clear_instance_cache()  # as a new run would see it
    again = DownloadCorpus(corpus="text_file", corpus_options=options,
                           workspace=str(tmp_path / "ws"))
    assert again is not download and again.fingerprint() != download.fingerprint()


@pytest.mark.parametrize("options, message", [
    ({}, "dataset text_file needs the option path"),
    ({"path": ""}, "dataset text_file needs the option path"),
    ({"path": "/no/such/mine.txt"}, "corpus file '/no/such/mine.txt' not found"),
    ({"path": "x.txt", "encoding": "latin1"},
     "dataset 'text_file' has no option 'encoding' (it takes: path); fix --corpus-options"),
])
def test_text_file_options_are_checked_with_one_clear_error(tmp_path, options, message):
    task = DownloadCorpus(corpus="text_file", corpus_options=options,
                          workspace=str(tmp_path / "ws"))
    with pytest.raises(DataError) as error:
        task.fingerprint()
    assert message in str(error.value)


@pytest.fixture
def http_folder(tmp_path):
    """A folder served over http on 127.0.0.1; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_text_file_downloads_a_url_unpinned_and_records_its_sha256(tmp_path, http_folder):
    served, base = http_folder
    corpus = make_corpus(served / "books" / "war and peace.txt", chars=800)
    url = f"{base}/books/war%20and%20peace.txt"
    preprocess = PreprocessText(corpus="text_file", corpus_options={"path": url}, lowercase=True,
                                validation_fraction=0.05, holdout=0.1, workspace=str(tmp_path / "ws"))
    build(preprocess)
    download = preprocess.requires()
    assert download.folder().name.startswith("war_and_peace-")
    found = record(download)
    assert found["source"] == {"war_and_peace.txt": url}
    assert found["files"]["text"]["sha256"] == hashlib.sha256(corpus.read_bytes()).hexdigest()
    assert (download.folder() / "war_and_peace.txt").read_bytes() == corpus.read_bytes()
    vocab = json.loads((preprocess.folder() / "vocab.json").read_text())
    assert vocab == sorted(set(corpus.read_text().lower()))


def test_a_url_that_is_not_text_is_refused_by_decoding(tmp_path, http_folder):
    served, base = http_folder
    (served / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    task = DownloadCorpus(corpus="text_file", corpus_options={"path": f"{base}/image.txt"},
                          workspace=str(tmp_path / "ws"))
    with pytest.raises(DataError, match=r"image.txt: looks binary \(a NUL byte at offset 8\)"):
        task.run()
    assert not (task.folder() / "manifest.json").exists()


def test_a_url_without_network_is_taken_from_the_mirror_or_named_there(tmp_path, monkeypatch):
    monkeypatch.delenv("TFPIPE_DATA_MIRROR", raising=False)
    options = {"path": "http://127.0.0.1:9/books/mine.txt"}  # nothing listens there
    mirror = tmp_path / "mirror"
    missing = DownloadCorpus(corpus="text_file", corpus_options=options, mirror=str(mirror),
                             workspace=str(tmp_path / "ws"))
    expected = f"Without internet, put the file at {mirror}/text_file/mine.txt$"
    with pytest.raises(TfpipeError, match=expected):
        missing.run()

    copy = make_corpus(mirror / "text_file" / "mine.txt", chars=300)
    luigi.task_register.Register.clear_instance_cache()
    task = DownloadCorpus(corpus="text_file", corpus_options=options, mirror=str(mirror),
                          workspace=str(tmp_path / "ws"))
    build(task)
    assert record(task)["source"] == str(mirror / "text_file")
    assert (task.folder() / "mine.txt").read_bytes() == copy.read_bytes()
