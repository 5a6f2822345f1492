"""Generation speed in characters per second: tfpipe's Sampler (A) against the strongest plain
stateful loop a Keras expert writes for the same model (B), priming and sampling timed apart.

    python bench/text_generation_speed.py                # 5 rounds, 1 and 64 streams
    python bench/text_generation_speed.py --rounds 3 --streams 1
    python bench/text_generation_speed.py --variants     # screen every variant of B first
    python bench/text_generation_speed.py --one-shot     # where XLA pays for itself in one call
    python bench/text_generation_speed.py --per-call     # a call's fixed cost: A's API, A's function, B

Both sides use the same model object (the `lstm` plugin: embedding 64, LSTM 256 units, dropout,
dense logits; untrained, since speed does not depend on the weights), vocabulary 57 (Nietzsche
lower-cased), a 100-character seed passage and 400 sampled characters per stream (generation's
defaults). N streams are N temperatures spread over 0.2..1.5, one batch. Both sides prime once
with a batch of one and copy the state to every stream (all streams share the seed).

B, the plain loop: the model's weights read out of its layers, the LSTM step written out
(z = x @ kernel + h @ recurrent_kernel + bias, then the gates) in a `for i in tf.range(length)`
loop inside one tf.function, and a draw at each temperature. Variants tried (`--variants`
screens them again on your machine):
  - jit_compile on / off: on is 4-7x faster for one stream. For 64 streams XLA costs less CPU
    per character (60-77k vs 33-56k characters per CPU-second here), but on a busy shared CPU
    the plain tf.function is often faster by the clock (TensorFlow's own kernels run on more
    threads, which win a bigger share of the CPU), so B runs both ways and each round counts
    the faster;
  - the step calling Keras's own `LSTMCell` / written out by hand;
  - the input projection per step (embedding row @ kernel) / folded into a (vocab, 4 units)
    table, so a step only looks its row up (saves a 64x1024 matmul), computed in every call /
    once, outside the functions, and captured by them (priming then looks the seed's rows up
    too: a 99x64x1024 matmul less per call; a sampling call saves about 0.4 ms of its fixed
    cost of about 1.1 ms here);
  - priming: the seed's input projections as one matmul, then the recurrence / step by step
    like sampling / `keras.layers.RNN(cell, return_state=True)` over the whole seed (the one
    sequence call; on CPU Keras runs it as its own while loop, there is no fused kernel);
  - drawing with tf.random.stateless_categorical (a random number per character of the
    vocabulary) / Gumbel-max over tf.random.stateless_uniform / the inverse CDF (cumsum of
    the softmax) at one tf.random.stateless_uniform per stream.
Past jit_compile, the variants differ by less than the noise of a shared machine (the same
variant measured twice can differ by 1.5x); B keeps the ones that do the least work per step:
the written-out step, the table computed once, the one-matmul (table) priming and the
inverse-CDF draw.

A, tfpipe: tasks.text.sampling.Sampler with its default, XLA (the generate stage uses it from 6,000
characters per stream, where compiling pays for itself). Under XLA, A and B compile to the
same loops (same fusions, same dots); A makes its uniforms from integer random bits, so that
XLA and plain TensorFlow draw the same text. A computes its table at its first call, B
before its first call. Both sides get the seed and the temperatures as
tensors made once; A also converts `length` and the seed per call, as its API does.

Counting rule, both sides: priming chars/s = (seed length - 1) / seconds of one priming call
(the last seed character is the first input of sampling); sampling chars/s = streams x length /
seconds of one sampling call, including its conversion to numpy. Each function is called once
with the exact shapes before any timing, so tracing and XLA compilation are excluded (their
one-off cost is printed apart). A measurement repeats a call until --seconds (1 s) have passed and divides.
Each round measures A, B XLA, B no XLA, then the same backwards, and averages each side's two;
per round, A is divided by the faster B, by the clock and per CPU-second of this process. The
machine may be shared: compare ratios, not absolute rates, across runs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from machine import machine  # noqa: E402  bench/machine.py: the script's own folder is on sys.path


def plain_loop(model, jit: bool = True, step: str = "written", table: str = "once", priming: str = "matmul",
               draw: str = "inverse_cdf"):
    """B: (prime(seed_ids) -> (h, c, last id), sample(h, c, last, temperatures, length, seed) -> ids)."""
    import keras
    import tensorflow as tf

    embedding, lstm, dense = model.layers[0], model.layers[1], model.layers[-1]
    cell, units = lstm.cell, lstm.cell.units
    E, K, R, b = (v.value for v in (embedding.embeddings, cell.kernel, cell.recurrent_kernel, cell.bias))
    W, d = dense.kernel.value, dense.bias.value

    def lstm_step(xz, h, c):  # xz = x @ K + b
        if step == "keras":
            h, (h, c) = cell(xz, [h, c], training=False)  # xz is the embedding row here
            return h, c
        i, f, g, o = tf.split(xz + tf.matmul(h, R), 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c), c

    def inputs(ids, folded):
        if step == "keras":
            return tf.gather(E, ids)
        return tf.gather(folded, ids) if table != "none" else tf.matmul(tf.gather(E, ids), K) + b

    def folded_table():
        if step == "keras" or table == "none":
            return None
        return folded_once if table == "once" else tf.matmul(E, K) + b

    rnn = keras.layers.RNN(cell, return_state=True)  # shares the cell's weights
    folded_once = tf.matmul(E, K) + b  # eager, once: the functions below capture it

    @tf.function(jit_compile=jit)
    def prime(seed_ids):
        context = seed_ids[:-1]
        if priming == "layer":
            _, h, c = rnn(tf.gather(E, context)[None])
            return h, c, seed_ids[-1]
        h, c = tf.zeros((1, units)), tf.zeros((1, units))
        if priming == "matmul" and step != "keras":
            # The whole seed at once: its rows of the table, or one matmul.
            xz = tf.gather(folded_once, context) if table == "once" else tf.matmul(tf.gather(E, context), K) + b
            for t in tf.range(tf.shape(context)[0]):
                h, c = lstm_step(xz[t][None], h, c)
        else:
            folded = folded_table()
            for t in tf.range(tf.shape(context)[0]):
                h, c = lstm_step(inputs(context[t][None], folded), h, c)
        return h, c, seed_ids[-1]

    @tf.function(jit_compile=jit)
    def sample(h, c, last, temperatures, length, seed):
        n = tf.shape(temperatures)[0]
        h, c = tf.repeat(h, n, axis=0), tf.repeat(c, n, axis=0)
        folded = folded_table()
        ids = tf.fill([n], last)
        out = tf.TensorArray(tf.int32, size=length)
        for i in tf.range(length):
            h, c = lstm_step(inputs(ids, folded), h, c)
            logits = tf.matmul(h, W) + d
            scaled, step_seed = logits / temperatures[:, None], tf.stack([seed, i])  # XLA takes int32 seeds only
            if draw == "gumbel":
                noise = -tf.math.log(-tf.math.log(tf.random.stateless_uniform(tf.shape(scaled), step_seed)))
                ids = tf.argmax(scaled + noise, axis=-1, output_type=tf.int32)
            elif draw == "inverse_cdf":  # one uniform per stream
                cdf = tf.cumsum(tf.nn.softmax(scaled), axis=-1)
                u = tf.random.stateless_uniform(tf.shape(scaled)[:1], step_seed) * cdf[:, -1]
                ids = tf.reduce_sum(tf.cast(cdf < u[:, None], tf.int32), axis=-1)
            else:
                ids = tf.random.stateless_categorical(scaled, 1, seed=step_seed, dtype=tf.int32)[:, 0]
            out = out.write(i, ids)
        return tf.transpose(out.stack())

    return prime, sample


class Side:
    """One contestant: prime() and sample(primed) with all arguments fixed, as timed."""

    def __init__(self, name, prime, sample):
        self.name, self.prime, self.sample = name, prime, sample
        started = time.perf_counter()
        self.primed = prime()
        sample(self.primed)
        self.first_call = time.perf_counter() - started  # tracing and compilation, once


def side_a(model, seed, temperatures, length, jit=True):
    import tensorflow as tf

    from tasks.text.sampling import Sampler

    sampler = Sampler(model, jit_compile=jit)
    seed_t, temps = tf.constant(seed), tf.constant(temperatures, tf.float32)  # as B gets them
    return Side("A tfpipe", lambda: sampler.prime(seed_t), lambda primed: sampler.sample(primed, temps, length, 0))


def side_b(model, seed, temperatures, length, name="B", **variant):
    import tensorflow as tf

    prime, sample = plain_loop(model, **variant)
    seed_t, temps, length_t, sample_seed = (tf.constant(seed), tf.constant(temperatures, tf.float32),
                                            tf.constant(length), tf.constant(0))
    return Side(name, lambda: prime(seed_t), lambda primed: sample(*primed, temps, length_t, sample_seed).numpy())


def rate(call, chars: int, at_least: float) -> tuple[float, float]:
    """(chars per wall-clock second, chars per CPU-second of this process), over repeated calls."""
    calls, started, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        call()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= at_least:
            return chars * calls / elapsed, chars * calls / max(time.process_time() - cpu, 1e-9)


SECONDS = 1.0  # per measurement; --seconds sets it


def measure(side: Side, seed_chars: int, sampled_chars: int) -> dict[str, tuple[float, float]]:
    return {"priming": rate(side.prime, seed_chars, SECONDS),
            "sampling": rate(lambda: side.sample(side.primed), sampled_chars, SECONDS)}


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def screen(model, seed, length: int, streams: list[int]) -> None:
    """Every variant of B per stream count, best of 3 measurements, fastest sampling first."""
    variants = [dict(jit=jit, step=step, table=table, priming=priming)
                for jit in (True, False) for step in ("written", "keras") for table in ("once", "per_call", "none")
                for priming in ("matmul", "steps", "layer")
                if not (step == "keras" and (table != "none" or priming == "matmul"))]
    variants = [dict(variant, draw="categorical") for variant in variants]
    variants += [dict(jit=jit, draw=draw) for jit in (True, False) for draw in ("gumbel", "inverse_cdf")]
    for n in streams:
        temperatures = [0.2 + 1.3 * i / max(1, n - 1) for i in range(n)]
        rows = []
        for variant in variants:
            side = side_b(model, seed, temperatures, length, **variant)
            runs = [measure(side, len(seed) - 1, n * length) for _ in range(3)]
            rows.append(({key: [max(run[key][i] for run in runs) for i in (0, 1)] for key in ("priming", "sampling")},
                         variant))
        print(f"\nvariants of B, {n} stream(s), best of 3, chars per second (wall-clock / CPU time):")
        print(f"  {'priming':>19} {'sampling':>19}")
        for best, variant in sorted(rows, key=lambda row: -row[0]["sampling"][0]):
            print(f"  {best['priming'][0]:>9,.0f}/{best['priming'][1]:<9,.0f} "
                  f"{best['sampling'][0]:>9,.0f}/{best['sampling'][1]:<9,.0f} {variant}")


def compare(model, seed, temperatures: list[float], length: int, rounds: int) -> None:
    """A against B with and without XLA, in rounds of A B1 B2 B2 B1 A; per round, A's ratio to
    the faster B (wall-clock), and to that same B per CPU-second."""
    n, seed_chars = len(temperatures), len(seed) - 1
    sides = [side_a(model, seed, temperatures, length), side_b(model, seed, temperatures, length, "B XLA"),
             side_b(model, seed, temperatures, length, "B no XLA", jit=False)]
    per_round = {side.name: [] for side in sides}
    for _ in range(rounds):
        # Forward then backward: a load that drifts during the round weighs on every side alike.
        runs = [(side, measure(side, seed_chars, n * length)) for side in sides + sides[::-1]]
        for side in sides:
            mine = [run for owner, run in runs if owner is side]
            per_round[side.name].append({key: tuple(statistics.mean(run[key][i] for run in mine) for i in (0, 1))
                                         for key in ("priming", "sampling")})
    a, b_xla, b_plain = (per_round[side.name] for side in sides)
    print(f"\n{n} stream(s), {length} chars each, {rounds} rounds; first call (tracing + compilation, not "
          "counted below): " + ", ".join(f"{side.name} {side.first_call:.2f} s" for side in sides))
    print(f"{'':<10}{'A tfpipe':>10}{'B XLA':>10}{'B no XLA':>10}   {'A/B wall-clock':<20}A/B CPU time   "
          "(B: the faster B of each round)")
    for key in ("priming", "sampling"):
        medians = [statistics.median(r[key][0] for r in side) for side in (a, b_xla, b_plain)]
        best = [max(x, y, key=lambda r: r[key][0]) for x, y in zip(b_xla, b_plain)]
        wall = [x[key][0] / y[key][0] for x, y in zip(a, best)]
        cpu = [x[key][1] / y[key][1] for x, y in zip(a, best)]
        print(f"{key:<10}" + "".join(f"{m:>10,.0f}" for m in medians) + f"   {spread(wall):<20}{spread(cpu)}")


def per_call(model, seed, calls: int) -> None:
    """A sampling call's fixed cost, one stream and one character, timed call by call with the
    variants interleaved: B, A's compiled function called with ready tensors, and A's API
    (Sampler.sample with Python ints, as the generate stage calls it)."""
    import tensorflow as tf

    from tasks.text.sampling import Sampler, int64_seed

    sampler, b = Sampler(model), side_b(model, seed, [0.2], 1)
    primed, temperatures = sampler.prime(tf.constant(seed)), tf.constant([0.2])
    function, table = sampler._function("sample", True), sampler.table()
    length, sample_seed = tf.constant(1), tf.constant(int64_seed(0), tf.int64)
    variants = {"B": lambda: b.sample(b.primed),
                "A function": lambda: function(primed, temperatures, length, sample_seed, table).numpy(),
                "A Sampler.sample": lambda: sampler.sample(primed, temperatures, 1, 0)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for call in list(variants.values()) * 10:  # warm-up: tracing and compilation
        call()
    for _ in range(calls):
        for name, call in variants.items():
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
    print(f"\none sampling call of 1 stream x 1 character, {calls} calls each, interleaved (microseconds):")
    for name, values in times.items():
        values.sort()
        print(f"  {name:<18} median {statistics.median(values) * 1e6:7.0f}   quartiles "
              f"{values[len(values) // 4] * 1e6:.0f}-{values[3 * len(values) // 4] * 1e6:.0f}")


def one_shot(args) -> None:
    """What the generate stage pays for one call: Sampler built, primed and sampled once (4
    temperatures), tracing and compilation included, each in a fresh process, plain vs XLA."""
    import subprocess

    print("\none call in a fresh process, 4 temperatures, tracing and compilation included (seconds):")
    for length in args.one_shot_lengths:
        times = {"plain": [], "XLA": []}
        for _ in range(2):
            for label in times:
                done = subprocess.run([sys.executable, __file__, "--child", label, str(length)], text=True,
                                      capture_output=True, check=True)
                times[label].append(float(done.stdout.split()[-1]))
        print(f"  {length:>6} chars: " + ", ".join(f"{label} {' / '.join(f'{t:.2f}' for t in v)}"
                                                  for label, v in times.items()))


def child(label: str, length: int) -> None:
    import numpy as np

    from plugins import registry
    from tasks.text.sampling import Sampler

    model = registry.load("models", "lstm").build({"vocab_size": 57}, units=256)
    seed = np.random.default_rng(0).integers(0, 57, 100).astype(np.int32)
    started = time.perf_counter()
    Sampler(model, jit_compile=label == "XLA")(seed, [0.2, 0.5, 1.0, 1.2], length, 0)
    print(time.perf_counter() - started)


def main() -> None:
    global SECONDS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--length", type=int, default=400, help="characters sampled per stream")
    parser.add_argument("--seed-length", type=int, default=100)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=57)
    parser.add_argument("--seconds", type=float, default=SECONDS, help="repeat each timed call this long")
    parser.add_argument("--variants", action="store_true", help="screen every variant of B first")
    parser.add_argument("--one-shot", action="store_true", help="also time one call in a fresh process")
    parser.add_argument("--one-shot-lengths", type=int, nargs="+", default=[400, 3000, 10000])
    parser.add_argument("--per-call", type=int, nargs="?", const=3000, default=0, metavar="CALLS",
                        help="also time a call's fixed cost, call by call (3000 calls each)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], int(args.child[1]))
    SECONDS = args.seconds

    import keras
    import numpy as np
    import tensorflow as tf

    from plugins import registry

    keras.utils.set_random_seed(0)
    model = registry.load("models", "lstm").build({"vocab_size": args.vocab}, units=args.units)
    seed = np.random.default_rng(0).integers(0, args.vocab, args.seed_length).astype(np.int32)
    print(f"machine: {machine()} at start; Keras {keras.__version__}")
    print(f"model: lstm plugin, {args.units} units, vocabulary {args.vocab}; seed passage {args.seed_length} chars")
    print("rule: priming chars/s = (seed length - 1) / s per priming call; sampling chars/s = streams x length / s "
          "per sampling call (result as numpy); both sides get one warm-up call with the same shapes first, so "
          "tracing and XLA compilation are excluded; each call is repeated for "
          f"{SECONDS:g} s; a round measures A, B XLA, "
          "B no XLA and back; medians over rounds; the ratio A/B per round, B being that round's faster B "
          "(wall-clock, and per CPU-second of this process)")
    tf.function(lambda x: x + 1, jit_compile=True)(tf.constant(1))  # XLA's one-off start, paid by neither side
    if args.variants:
        screen(model, seed, args.length, args.streams)
    for n in args.streams if args.rounds > 0 else []:  # --rounds 0: the screen or one-shot times alone
        compare(model, seed, [0.2 + 1.3 * i / max(1, n - 1) for i in range(n)], args.length, args.rounds)
    if args.per_call:
        per_call(model, seed, args.per_call)
    if args.one_shot:
        one_shot(args)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
