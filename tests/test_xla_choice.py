"""Which training steps tfpipe XLA-compiles when jit_compile is auto (tasks.tf_runtime)."""
import pytest

from tasks.tf_runtime import layers_support_xla, use_xla, xla_wanted


@pytest.mark.parametrize("choice, flag, on_gpu, layers_ok, deterministic, expected", [
    ("always", False, False, False, True, True),      # the setting overrides everything
    ("never", True, True, True, False, False),
    ("auto", True, False, True, False, True),          # mlp's JIT_COMPILE = True, on a CPU too
    ("auto", False, True, True, False, False),         # a plugin that opts out, even on a GPU
    ("auto", None, True, True, False, True),           # unset: XLA on a GPU ...
    ("auto", None, False, True, False, False),         # ... not on a CPU
    ("auto", None, True, False, False, False),         # a layer without XLA support (cuDNN LSTM)
    ("auto", None, True, True, True, False),           # deterministic ops
])
def test_auto_follows_the_plugin_then_keras_rule(choice, flag, on_gpu, layers_ok, deterministic, expected):
    assert xla_wanted(choice, flag, on_gpu, layers_ok, deterministic) is expected


def test_layers_support_xla_reads_the_keras_layers_of_a_real_model():
    import keras
    import tensorflow as tf

    dense = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 5), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    # Keras marks some layers as not XLA-compilable: hashing here; on a GPU, its cuDNN LSTM and GRU.
    hashing = keras.Sequential([keras.Input((1,), dtype="int64"), keras.layers.Hashing(num_bins=4),
                                keras.layers.Dense(2)])
    assert layers_support_xla(dense)
    assert not layers_support_xla(hashing)
    assert not layers_support_xla(tf.Module())


def test_on_this_cpu_auto_compiles_only_the_plugin_that_asks():
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    strategy = tf.distribute.get_strategy()
    assert not tf.config.list_logical_devices("GPU")
    assert use_xla("auto", "mlp", strategy, model, False)
    assert not use_xla("auto", "cnn", strategy, model, False)
    assert use_xla("always", "cnn", strategy, model, False)
