"""Random draws that come out the same with and without XLA (imported only in TensorFlow workers).

tf.random.stateless_uniform and tf.random.stateless_categorical draw other numbers when XLA
compiles them than TensorFlow's own kernels do, and so does tf.raw_ops.StatelessRandomGetKeyCounter
once a seed is 2**32 or more or negative; a training step or a sampling loop would then depend
on jit_compile, which only changes speed. Philox's raw integer bits under a key and counter we
set ourselves are the same both ways for every int64 seed and step; every seeded draw of a
training step or a sample starts from them.
"""
from __future__ import annotations

from typing import Any

PHILOX = 1  # tf.random.Algorithm.PHILOX


def philox_bits(seed: Any, step: Any, shape: Any) -> Any:
    """int32 random bits of `shape` for the int64 pair (seed, step), the same XLA or not: Philox
    keyed by the seed, its 128-bit counter starting at step * 2**64 (the low word counts the
    draws), so distinct pairs never share a draw."""
    import tensorflow as tf

    key = tf.reshape(tf.bitcast(tf.cast(seed, tf.int64), tf.uint64), [1])
    counter = tf.stack([tf.constant(0, tf.uint64), tf.bitcast(tf.cast(step, tf.int64), tf.uint64)])
    return tf.raw_ops.StatelessRandomUniformFullIntV2(shape=shape, key=key, counter=counter, alg=PHILOX,
                                                      dtype=tf.int32)
