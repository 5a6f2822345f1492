"""Random draws that come out the same with and without XLA (imported only in TensorFlow workers).

tf.random.stateless_uniform and tf.random.stateless_categorical draw other numbers when XLA
compiles them than TensorFlow's own kernels do, and so does tf.raw_ops.StatelessRandomGetKeyCounter
once a seed is 2**32 or more (XLA keeps its low 32 bits); a training step or a sampling loop
would then depend on jit_compile, which only changes speed. Philox's raw integer bits under a
key and counter we set ourselves are the same both ways for every int64 seed and step; every
seeded draw of a training step or a sample starts from them.
"""
from __future__ import annotations

from typing import Any

PHILOX = 1  # tf.random.Algorithm.PHILOX


def philox_bits(seed: Any, step: Any, shape: Any) -> Any:
    """int32 random bits of `shape` for the int64 pair (seed, step), the same XLA or not.

    Philox's 128-bit counter starts at step * 2**64 (its low word counts the draws), so two
    steps never share a draw; its key is seed XOR step, which tells seeds apart at one step.
    The key varies with the step on purpose: with a key fixed over a sampling loop, XLA hoists
    Philox's key schedule out of the loop and carries it through as 18 more loop values, which
    made sampling one stream slower than deriving everything from (seed, step) in the loop."""
    import tensorflow as tf

    step = tf.cast(step, tf.int64)
    key = tf.reshape(tf.bitcast(tf.bitwise.bitwise_xor(tf.cast(seed, tf.int64), step), tf.uint64), [1])
    counter = tf.stack([tf.constant(0, tf.uint64), tf.bitcast(step, tf.uint64)])
    return tf.raw_ops.StatelessRandomUniformFullIntV2(shape=shape, key=key, counter=counter, alg=PHILOX,
                                                      dtype=tf.int32)
