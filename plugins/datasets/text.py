"""Helpers of text-corpus dataset plugins: decode a UTF-8 file into a TextCorpus.

Errors are :class:`DataError` s naming the file: empty, binary or not UTF-8.
Standard library only, so the Luigi process can use these cheaply.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from plugins.datasets.api import DataError, TextCorpus


def decode_corpus(data: bytes, where: str) -> str:
    """The corpus as text; an empty, binary or non-UTF-8 file is an error naming it."""
    if not data.strip():
        raise DataError(f"{where}: the corpus is empty; give a UTF-8 text file with some text "
                        "in it")
    if b"\x00" in data:
        offset = data.index(b"\x00")
        raise DataError(f"{where}: looks binary (a NUL byte at offset {offset}), not text; "
                        "give a UTF-8 text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not UTF-8 text (invalid byte at offset {exc.start}); "
                        "convert it, e.g. iconv -f latin1 -t utf-8") from exc
    return text.removeprefix("\ufeff")  # a byte-order mark is not part of the text


def read_corpus(path: Path) -> TextCorpus:
    """Read and decode one UTF-8 text file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the corpus ({exc.strerror}); check the path "
                        "and its permissions") from exc
    return TextCorpus(decode_corpus(data, str(path)), str(path))


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def file_name(path_or_url: str) -> str:
    """The file name a path or URL ends in, made safe for file and folder names
    (``corpus.txt`` when it has none, e.g. ``https://example.org/``)."""
    if is_url(path_or_url):
        tail = unquote(urlsplit(path_or_url).path).rstrip("/").rsplit("/", 1)[-1]
    else:
        tail = Path(path_or_url).expanduser().name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", tail).strip("._") or "corpus.txt"


def stem(path_or_url: str) -> str:
    """`file_name` without its extension: ``~/books/mine.txt`` -> ``mine``."""
    name = file_name(path_or_url)
    return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
