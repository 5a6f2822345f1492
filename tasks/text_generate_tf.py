"""TensorFlow worker of GenerateText (runs in a subprocess).

Loads model.keras and the data's vocabulary and held-out ids; picks a seeded
seed passage from the held-out text and samples `length` characters at each
temperature, carrying the recurrent state (tasks.text_tf.Sampler). Writes
samples.txt and samples.json.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from tasks import atomic
from tasks.text_prep import check_temperatures, decode, encode, seed_passage
from tasks.text_tf import Sampler, load_char_model
from tasks.tf_runtime import start_tensorflow
from tasks.worker import emit, main


def render_samples(seed_text: str, samples: list[dict[str, Any]]) -> str:
    lines = ["seed passage (held-out text):", seed_text, ""]
    for sample in samples:
        lines += [f"--- temperature {sample['temperature']}", seed_text + sample["text"], ""]
    return "\n".join(lines)


def generate(request: dict[str, Any]) -> dict[str, Any]:
    start_tensorflow(seed=request["sample_seed"], deterministic=False)
    data_dir, model_dir, out = Path(request["data_dir"]), Path(request["model_dir"]), Path(request["out_dir"])
    temperatures = check_temperatures(request["temperatures"])
    vocab = json.loads((data_dir / "vocab.json").read_text("utf-8"))
    model = load_char_model(model_dir, vocab, str(model_dir))
    heldout = decode(np.load(data_dir / "heldout_ids.npy"), vocab)
    seed_text = seed_passage(heldout, request["seed_length"], request["sample_seed"])
    sampler = Sampler(model)
    started = time.perf_counter()
    ids = sampler(encode(seed_text, vocab), temperatures, request["length"], request["sample_seed"])
    seconds = time.perf_counter() - started  # includes tracing the compiled loop once
    samples = [{"temperature": t, "text": decode(row, vocab)} for t, row in zip(temperatures, ids)]
    emit("log", message=f"generated {len(temperatures)} x {request['length']} characters in {seconds:.1f}s")
    atomic.write_json(out / "samples.json", {"seed_text": seed_text, "samples": samples,
                                             "length": request["length"], "sample_seed": request["sample_seed"]})
    atomic.write_text(out / "samples.txt", render_samples(seed_text, samples))
    return {"seed_text": seed_text, "samples": samples, "seconds": round(seconds, 2)}


if __name__ == "__main__":
    main(generate)
