"""TensorFlow's plain training loop, written as TensorFlow's "quickstart for experts" is: a Keras ``Sequential``
model and a ``tf.function`` ``GradientTape`` step; shares nothing with the harness.

The tuned mode's loop writes its one idea plainly: a whole chunk of steps in one ``tf.function`` loop.
:mod:`mnist_bench.bench.perf.plain_loops` times it against ``mnist-bench run``."""

from __future__ import annotations

from functools import partial

import numpy as np


def tensorflow_loop(recipe, train_x, train_y, log_every: int, tuned: bool = False):
    import os

    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras
    import tensorflow as tf

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
    loss_object = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.SGD(learning_rate=recipe.learning_rate, momentum=recipe.momentum)
    images, labels = tf.constant(train_x[..., None]), tf.constant(train_y.astype(np.int32))

    def step(index):
        with tf.GradientTape() as tape:
            loss = loss_object(tf.gather(labels, index), model(tf.gather(images, index), training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    train_step = tf.function(step)

    @tf.function
    def train_steps(rows):
        loss = tf.constant(0.0)
        for i in tf.range(tf.shape(rows)[0]):
            loss = step(rows[i])
        return loss

    def train(rows: np.ndarray) -> float:
        if tuned:
            return float(train_steps(tf.constant(rows)))
        for batch_idx, index in enumerate(rows):
            loss = train_step(tf.constant(index))
            if batch_idx % log_every == 0:
                float(loss)
        return float(loss)

    return train


# mode -> the plain loop that mode of the harness is measured against.
LOOPS = {"compiled": tensorflow_loop, "tuned": partial(tensorflow_loop, tuned=True)}
