"""Keras 3 on PyTorch: variables created under keras.device("cpu:0") cannot be trained (keras 3.15.1, torch 2.13.0+cpu).

Keras moves each new variable's Parameter with .to("cpu:0"), which torch answers with a copy: the
variable then holds a non-leaf tensor that autograd never fills, and fit fails with
"No gradients provided for any variable". keras.device("cpu") works.
"""
import os
os.environ["KERAS_BACKEND"] = "torch"
import keras, numpy as np
x, y = np.random.rand(64, 4).astype("float32"), np.random.randint(0, 2, 64)
for device in ("cpu", "cpu:0"):
    with keras.device(device):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        before = model.get_weights()[0].copy()
        try:
            model.fit(x, y, epochs=1, batch_size=16, verbose=0)
            print(device, "is_leaf", model.trainable_variables[0].value.is_leaf, "weights moved:", not np.allclose(before, model.get_weights()[0]))
        except Exception as e:
            print(device, "is_leaf", model.trainable_variables[0].value.is_leaf, type(e).__name__, str(e)[:200])
