"""Generation's TensorFlow side (imported only in worker processes and benchmarks), apart from
the scorer that training imports, so an edit here reruns generation and never retraining.

- `Recurrence`: one recurrent layer split into its input projection (run on a whole
  sequence, or on every character of the vocabulary at once) and its state update.
- `Stepper`: runs a plain Keras character model one character at a time,
  carrying the recurrent state, so generation costs one step per character
  instead of a whole window; primes the state with a seed passage layer by layer.
- `Sampler`: priming, then the whole seeded sampling loop, all temperatures as one
  batch, each one tf.function, XLA-compiled unless told otherwise or the model's layers
  cannot be (the random draws do not depend on it).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from plugins.errors import TfpipeError


class Recurrence:
    """One recurrent layer as `project(x)`, the part that reads only the input, and `step(projected,
    states)`, the part that carries state. Keras's own LSTM and GRU cells are split for real: the input
    projection is then a matmul done once for a whole seed, or a table lookup while sampling. Any other
    cell runs whole in `step` (project is the identity)."""

    def __init__(self, layer: Any):
        import keras

        self.layer, self.cell = layer, layer.cell
        kind = type(self.cell)  # exact types: a subclass may override call()
        # Mixed precision casts inside the cell's call; leave such cells to it.
        plain_dtype = self.cell.compute_dtype == self.cell.variable_dtype
        self.split = plain_dtype and kind in (keras.layers.LSTMCell, keras.layers.GRUCell)
        self.is_lstm = kind is keras.layers.LSTMCell

    def initial_state(self, batch: Any) -> list[Any]:
        import tensorflow as tf

        sizes = self.cell.state_size
        sizes = sizes if isinstance(sizes, (list, tuple)) else [sizes]
        return [tf.zeros((batch, int(size)), self.cell.compute_dtype) for size in sizes]

    def project(self, x: Any) -> Any:
        import tensorflow as tf

        if not self.split:
            return x
        cell = self.cell
        z = tf.matmul(x, cell.kernel.value) if x.shape.rank == 2 else tf.tensordot(x, cell.kernel.value, 1)
        if not cell.use_bias:
            return z
        bias = cell.bias.value
        # GRU with reset_after keeps (input bias, recurrent bias) as two rows.
        return z + (bias[0] if bias.shape.rank == 2 else bias)

    def step(self, projected: Any, states: list[Any]) -> tuple[Any, list[Any]]:
        if not self.split:
            out, state = self.cell(projected, states, training=False)
            return out, list(state) if isinstance(state, (list, tuple)) else [state]
        return self._lstm(projected, states) if self.is_lstm else self._gru(projected, states)

    def _lstm(self, z: Any, states: list[Any]) -> tuple[Any, list[Any]]:
        """keras.layers.LSTMCell.call at inference, given z = x @ kernel + bias."""
        import tensorflow as tf

        cell, (h, c) = self.cell, states
        i, f, g, o = tf.split(z + tf.matmul(h, cell.recurrent_kernel.value), 4, axis=-1)
        c = cell.recurrent_activation(f) * c + cell.recurrent_activation(i) * cell.activation(g)
        h = cell.recurrent_activation(o) * cell.activation(c)
        return h, [h, c]

    def _gru(self, x: Any, states: list[Any]) -> tuple[Any, list[Any]]:
        """keras.layers.GRUCell.call at inference, given x = inputs @ kernel + input bias."""
        import tensorflow as tf

        cell, (h,), units = self.cell, states, self.cell.units
        recurrent = cell.recurrent_kernel.value
        x_z, x_r, x_h = tf.split(x, 3, axis=-1)
        if cell.reset_after:
            inner = tf.matmul(h, recurrent)
            if cell.use_bias:
                inner += cell.bias.value[1]
            r_z, r_r, r_h = tf.split(inner, 3, axis=-1)
            z, r = cell.recurrent_activation(x_z + r_z), cell.recurrent_activation(x_r + r_r)
            candidate = cell.activation(x_h + r * r_h)
        else:
            r_z, r_r = tf.split(tf.matmul(h, recurrent[:, : 2 * units]), 2, axis=-1)
            z, r = cell.recurrent_activation(x_z + r_z), cell.recurrent_activation(x_r + r_r)
            candidate = cell.activation(x_h + tf.matmul(r * h, recurrent[:, 2 * units:]))
        h = z * h + (1 - z) * candidate
        return h, [h]


class Stepper:
    """One character step of a plain Keras model: walks `model.layers`, stepping each recurrent
    layer with carried states and applying every other layer directly (they act per position).

    The layers before the first recurrent layer, and that layer's input projection, depend on
    the current character alone: `table()` computes them once for the whole vocabulary, and a
    sampling step looks its row up."""

    def __init__(self, model: Any):
        import keras

        # Dropout and noise layers do nothing at inference, and a spatial dropout would refuse
        # the single positions a step feeds it: the stepper leaves them out.
        noise = (keras.layers.Dropout, keras.layers.GaussianDropout, keras.layers.GaussianNoise,
                 keras.layers.AlphaDropout)
        self.layers: list[Any] = []  # keras layers and Recurrence objects, in order
        for layer in model.layers:
            if isinstance(layer, (keras.layers.InputLayer, *noise)):
                continue
            if isinstance(layer, keras.layers.Bidirectional) or getattr(layer, "go_backwards", False):
                raise TfpipeError(f"layer {layer.name!r} reads the text backwards; a character model "
                                  "for generation must be causal (forward recurrent layers only)")
            if isinstance(layer, keras.layers.RNN) and not layer.return_sequences:
                raise TfpipeError(f"recurrent layer {layer.name!r} has return_sequences=False; a "
                                  "character language model must predict at every position")
            self.layers.append(Recurrence(layer) if isinstance(layer, keras.layers.RNN) else layer)
        self.recurrences = [item for item in self.layers if isinstance(item, Recurrence)]
        if not self.recurrences:
            raise TfpipeError(f"model {model.name!r} has no recurrent layer to carry state in")
        self.first = self.layers.index(self.recurrences[0])
        self.vocab = int(model.output_shape[-1])

    def initial_state(self, batch: Any) -> list[list[Any]]:
        return [recurrence.initial_state(batch) for recurrence in self.recurrences]

    def _first_input(self, ids: Any) -> Any:
        """ids of any shape -> the first recurrent layer's projected input, per position."""
        x = ids
        for layer in self.layers[: self.first]:
            x = layer(x, training=False)
        return self.recurrences[0].project(x)

    def table(self) -> Any:
        """(vocab, features): the first recurrent layer's projected input for every character."""
        import tensorflow as tf

        return self._first_input(tf.range(self.vocab, dtype=tf.int32))

    def step(self, ids: Any, states: list[list[Any]], table: Any = None) -> tuple[Any, list[list[Any]]]:
        """ids (batch,) -> logits (batch, vocab) and the new states; `table` from table() saves
        recomputing the layers before the first recurrent one."""
        import tensorflow as tf

        x = self._first_input(ids) if table is None else tf.gather(table, ids)
        new_states, i = [], 0
        for item in self.layers[self.first:]:
            if isinstance(item, Recurrence):
                x, state = item.step(x if i == 0 else item.project(x), states[i])
                new_states.append(state)
                i += 1
            else:
                x = item(x, training=False)
        return x, new_states

    def prime(self, ids: Any, table: Any = None) -> list[list[Any]]:
        """The states (batch 1) after reading ids (time,), layer by layer: each layer's input
        projection is one matmul over the whole passage (for the first recurrent layer, rows of
        `table` when given), and layers after the last recurrent one do not run at all."""
        import tensorflow as tf

        x, states, start = ids[:, None], [], 0  # (time, 1): time-major, a batch of one
        last = self.layers.index(self.recurrences[-1])
        if table is not None:  # what the layers before the first recurrent one and its projection give
            x, start = tf.gather(table, x), self.first
        for item in self.layers[start: last + 1]:
            if not isinstance(item, Recurrence):
                x = item(x, training=False)
                continue
            projected = x if table is not None and item is self.recurrences[0] else item.project(x)
            x, state = read_over_time(item, projected, keep_outputs=item is not self.layers[last])
            states.append(state)
        return states


def keep_shapes(states: Any, shapes: Any) -> Any:
    """States with the static shapes they entered a loop with: some cells lose the static batch
    size, and loop variables must keep their shapes. No op where nothing was lost."""
    import tensorflow as tf

    return tf.nest.map_structure(lambda s, shape: s if s.shape == shape else tf.ensure_shape(s, shape),
                                 states, shapes)


def read_over_time(recurrence: Recurrence, x: Any, keep_outputs: bool) -> tuple[Any, list[Any]]:
    """Steps `recurrence` over projected inputs x (time, 1, features) from a zero state:
    (outputs (time, 1, units), or None unless keep_outputs; final state)."""
    import tensorflow as tf

    state, time = recurrence.initial_state(1), tf.shape(x)[0]
    shapes = [s.shape for s in state]

    def read(t, state, *outputs):
        out, state = recurrence.step(x[t], state)
        return (t + 1, keep_shapes(state, shapes), *(written.write(t, out) for written in outputs))

    outputs = [tf.TensorArray(recurrence.cell.compute_dtype, size=time)] if keep_outputs else []
    _, state, *outputs = tf.while_loop(lambda t, *_: t < time, read, (tf.constant(0), state, *outputs))
    return (outputs[0].stack() if keep_outputs else None), state


def draw_categorical(logits: Any, seed: Any, step: Any) -> Any:
    """One categorical draw per row of logits (batch, classes) -> int32 (batch,), by the inverse
    CDF: one uniform per row, from Philox integer bits for the int64 pair (seed, step)
    (tasks.random_bits), so the text does not depend on whether XLA compiled the loop; a
    row's draws do not depend on the rows after it, and a longer sample extends a shorter one."""
    import tensorflow as tf

    from tasks.random_bits import philox_bits

    cdf = tf.cumsum(tf.nn.softmax(logits), axis=-1)
    bits = philox_bits(seed, step, tf.shape(logits)[:1])
    uniform = (tf.cast(tf.bitwise.bitwise_and(bits, 0xFFFFFF), tf.float32) + 0.5) * 2**-24  # in (0, 1)
    below = tf.cast(cdf < (uniform * cdf[:, -1])[:, None], tf.int32)  # scaled: the sum may round below 1
    return tf.reduce_sum(below, axis=-1)


def int64_seed(seed: int) -> int:
    """Any Python int as an int64 (two's complement of seed mod 2**64): distinct seeds mod 2**64 stay distinct."""
    return (seed + 2**63) % 2**64 - 2**63


class Sampler:
    """Seeded sampling: prime with a seed passage (`prime`), then draw `length` characters per
    temperature (`sample`); each is one tf.function, compiled by XLA if `jit_compile` (a model
    whose layers XLA cannot compile falls back to plain tf.functions, once). XLA or not, the
    random draws are the same.

    The model's weights are read once: the first call computes the first recurrent layer's
    input for every character (Stepper.table), and every later call looks its rows up. A
    Sampler is for a trained model; build a new one after changing the weights."""

    def __init__(self, model: Any, jit_compile: bool = True):
        self.stepper = Stepper(model)
        self.jit_compile = jit_compile
        self.xla_works = True  # until a layer of this model proves XLA cannot compile it
        self._functions: dict[tuple[str, bool], Any] = {}
        self._called: set[tuple[str, bool]] = set()
        self._table: Any = None

    def _function(self, name: str, xla: bool) -> Any:
        import tensorflow as tf

        if (name, xla) not in self._functions:
            loop = {"prime": self._prime, "sample": self._sample}[name]
            # The loops are written as tf.while_loop: converting them with autograph costs seconds.
            self._functions[name, xla] = tf.function(loop, jit_compile=xla, autograph=False)
        return self._functions[name, xla]

    def _run(self, name: str, *args: Any) -> Any:
        import tensorflow as tf

        xla = self.jit_compile and self.xla_works
        first, self._called = (name, xla) not in self._called, self._called | {(name, xla)}
        try:
            return self._function(name, xla)(*args)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
            if not (first and xla):
                raise
            self.xla_works = False  # a layer XLA cannot compile: plain tf.functions from now on
            return self._function(name, False)(*args)

    def table(self) -> Any:
        """Stepper.table() of the model's weights at the first call, computed once: priming and
        sampling then skip the layers before the first recurrent one and its input projection."""
        if self._table is None:
            self._table = self.stepper.table()
        return self._table

    def _prime(self, seed_ids: Any, table: Any) -> Any:
        return self.stepper.prime(seed_ids[:-1], table), seed_ids[-1]

    def _sample(self, primed: Any, temperatures: Any, length: Any, seed: Any, table: Any) -> Any:
        import tensorflow as tf

        stepper, (states, last) = self.stepper, primed
        batch = tf.shape(temperatures)[0]
        states = tf.nest.map_structure(lambda state: tf.repeat(state, batch, axis=0), states)
        shapes = tf.nest.map_structure(lambda state: state.shape, states)
        ids = tf.fill([batch], last)

        def draw(i, ids, states, out):
            logits, states = stepper.step(ids, states, table)
            ids = draw_categorical(tf.cast(logits, tf.float32) / temperatures[:, None], seed, i)
            return i + 1, ids, keep_shapes(states, shapes), out.write(i, ids)

        _, _, _, out = tf.while_loop(lambda i, *_: i < length, draw,
                                     (tf.constant(0), ids, states, tf.TensorArray(tf.int32, size=length)))
        return tf.transpose(out.stack())

    def prime(self, seed_ids: Any) -> Any:
        """The model's state after the seed passage (int ids) but its last character, and that character."""
        import tensorflow as tf

        if len(seed_ids) == 0:
            raise TfpipeError("the seed passage is empty; generation needs at least one character")
        return self._run("prime", tf.convert_to_tensor(seed_ids, tf.int32), self.table())

    def sample(self, primed: Any, temperatures: Any, length: int, seed: int) -> np.ndarray:
        """int32 array (len(temperatures), length) of ids sampled after `primed` (from prime())."""
        import tensorflow as tf

        return self._run("sample", primed, tf.convert_to_tensor(temperatures, tf.float32),
                         tf.constant(length, tf.int32), tf.constant(int64_seed(seed), tf.int64),
                         self.table()).numpy()

    def __call__(self, seed_ids: Any, temperatures: Any, length: int, seed: int) -> np.ndarray:
        """int32 array (len(temperatures), length) of sampled ids."""
        return self.sample(self.prime(seed_ids), temperatures, length, seed)
