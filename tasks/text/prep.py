"""Pure functions of the text path: validate, normalise, encode and split a corpus.

No Luigi and no TensorFlow here: the data tasks, the TensorFlow workers and
the tests all use these. Decoding a corpus file belongs to the dataset plugins
(plugins.datasets.text.decode_corpus).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where it is used: the Luigi process checks settings here
    import numpy as np

from plugins.errors import TfpipeError


def normalise(text: str, lowercase: bool) -> str:
    """Line ends as LF; lower-cased if asked (a smaller vocabulary learns faster)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.lower() if lowercase else text


def id_dtype(vocab_size: int) -> str:
    """The smallest integer type that holds every id: uint16 below 65536 characters."""
    return "uint16" if vocab_size < 1 << 16 else "int32"


def build_vocab(text: str) -> list[str]:
    """The sorted distinct characters of `text`; a character's id is its index."""
    return sorted(set(text))


def encode(text: str, vocab: list[str]) -> np.ndarray:
    import numpy as np

    index = {char: i for i, char in enumerate(vocab)}
    try:
        return np.fromiter((index[char] for char in text), dtype=np.int32, count=len(text))
    except KeyError as exc:
        raise TfpipeError(f"character {exc.args[0]!r} is not in the vocabulary ({len(vocab)} "
                          "characters); the text and the vocabulary come from different data") from exc


def decode(ids, vocab: list[str]) -> str:
    return "".join(vocab[int(i)] for i in ids)


def split_text(ids: np.ndarray, validation: float, holdout: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(training, validation, held-out) ids, contiguous and in that order: the last `holdout` of
    the text is held out for evaluation, the `validation` before it validates during training.
    Contiguous parts keep every training window inside the training text."""
    check_fractions(validation, holdout)
    held, valid = holdout_size(len(ids), holdout), holdout_size(len(ids), validation)
    train = len(ids) - held - valid
    if train < 2:
        raise TfpipeError(f"the corpus has only {len(ids)} characters: too short to keep {validation:.0%} "
                          f"for validation and hold out {holdout:.0%} for evaluation (at least 2 characters "
                          "each, and 2 to train on); give a longer text")
    return ids[:train], ids[train:train + valid], ids[train + valid:]


def check_fractions(validation: float, holdout: float) -> None:
    for name, fraction in (("validation_fraction", validation), ("holdout", holdout)):
        if not 0 < fraction < 1:
            raise TfpipeError(f"text.{name}={fraction} must be between 0 and 1 (e.g. 0.05: 5% of the text)")
    if validation + holdout >= 1:
        raise TfpipeError(f"text.validation_fraction={validation} and text.holdout={holdout} leave no "
                          "text to train on; their sum must be below 1")


def holdout_size(chars: int, fraction: float) -> int:
    """Characters a `fraction` of a text of `chars` characters keeps apart (held-out or
    validation part): at least 2, one next-character target."""
    return max(2, round(chars * fraction))


def train_size(chars: int, validation: float, holdout: float) -> int:
    """Characters left to train on in a text of `chars` characters."""
    return chars - holdout_size(chars, validation) - holdout_size(chars, holdout)


def check_window(train_chars: int, window: int, batch_size: int, at_most: bool = False) -> int:
    """Number of training windows (one per start position); an error if there are too few.
    at_most: `train_chars` is an upper bound (known before the text is decoded)."""
    if window < 1:
        raise TfpipeError(f"window={window} must be at least 1 character")
    starts = train_chars - window
    up_to = "at most " if at_most else ""
    if starts < 1:
        raise TfpipeError(
            f"the training text has {up_to}{train_chars} characters, shorter than one window of "
            f"window={window} (+1 for the next-character target); use a longer corpus or a "
            f"smaller window (text.window or --window)")
    if batch_size > starts:
        windows = f"number of windows in the training text (at most {starts})" if at_most else (
            f"{starts} windows in the training text")
        raise TfpipeError(f"batch_size={batch_size} is larger than the {windows}; lower batch_size or use a "
                          "longer corpus")
    return starts


def check_temperatures(temperatures, where: str = "temperatures") -> list[float]:
    values = list(temperatures)
    if not values:
        raise TfpipeError(f"{where}: give at least one sampling temperature, e.g. [0.5, 1.0]")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TfpipeError(f"{where}: temperature {value!r} is not a number")
        if not value > 0:
            raise TfpipeError(f"{where}: temperature {value} must be greater than 0 (0 would be "
                              "greedy decoding, which is a temperature close to 0 such as 0.05)")
    return [float(value) for value in values]


def check_vocab(model_outputs: int, vocab: list[str], model_vocab: list[str] | None, where: str) -> None:
    """A model can only read and write ids of the vocabulary it was trained with."""
    if model_vocab is not None and list(model_vocab) != list(vocab):
        raise TfpipeError(
            f"{where}: the model was trained with a different vocabulary ({len(model_vocab)} "
            f"characters) than this data ({len(vocab)} characters); evaluate or sample a model "
            "only with the preprocessed data it was trained on (same corpus and lowercase setting)")
    if model_outputs != len(vocab):
        raise TfpipeError(
            f"{where}: the model predicts {model_outputs} characters but the vocabulary has "
            f"{len(vocab)}; retrain the model on this data")


def seed_passage(heldout: str, length: int, seed: int) -> str:
    """A seeded passage of the held-out text, starting at the beginning of a word."""
    import numpy as np

    if len(heldout) <= length:
        return heldout
    start = int(np.random.default_rng(seed).integers(0, len(heldout) - length + 1))
    for i in range(start, min(start + 40, len(heldout) - length)):
        if i == 0 or heldout[i - 1].isspace():
            start = i
            break
    return heldout[start:start + length]
