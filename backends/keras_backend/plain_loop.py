"""Keras's plain training loop, as Keras users write it: ``model.compile`` then one ``model.fit``; shares
nothing with the harness.

``model.fit`` trains every step in one call, so this loop is a *whole-run* loop (``train.whole_run``):
:mod:`mnist_bench.bench.perf.plain_loops` passes it all the rows at once with the chunk sizes, and it
calls ``on_chunk()`` at each boundary from the smallest callback a Keras user writes to time batches
(it reads the loss, which Keras has already brought to the host). ``KERAS_BACKEND`` comes from the
implementation's spec, set before this module imports Keras.
"""

from __future__ import annotations

import numpy as np


def keras_fit_loop(recipe, train_x, train_y, log_every: int):
    import keras

    layers = keras.layers
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(recipe.conv1_filters, 3, activation="relu"),
        layers.Conv2D(recipe.conv2_filters, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(recipe.dropout1),
        layers.Flatten(),
        layers.Dense(recipe.hidden, activation="relu"),
        layers.Dropout(recipe.dropout2),
        layers.Dense(10),
    ])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=recipe.learning_rate, momentum=recipe.momentum),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    class Boundaries(keras.callbacks.Callback):
        def __init__(self, chunk_sizes, on_chunk):
            super().__init__()
            self.ends, self.on_chunk = set(np.cumsum(chunk_sizes).tolist()), on_chunk

        def on_train_batch_end(self, batch, logs=None):
            if batch + 1 in self.ends:
                float(logs["loss"])
                self.on_chunk()

    def train(rows: np.ndarray, chunk_sizes: list[int], on_chunk) -> None:
        index = rows.reshape(-1)
        model.fit(train_x[index][..., None], train_y[index].astype(np.int32), batch_size=rows.shape[1], epochs=1,
                  shuffle=False, verbose=0, callbacks=[Boundaries(chunk_sizes, on_chunk)])

    train.whole_run = True
    return train


# mode -> the plain loop that mode of the harness is measured against: Keras's default, what its users run.
LOOPS = {"fit": keras_fit_loop}
