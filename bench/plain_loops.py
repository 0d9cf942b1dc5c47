"""Reference training loops, each written the way its framework's own MNIST example is.

They share the backends' model definitions (the model is not what is measured)
but none of the harness: no chunking, no canonical weights, no progress events.
Each takes pre-stacked batches x (k, B, 28, 28), y (k, B) and trains on them,
reading the loss back every ``log_every`` steps as the examples' logging does.
``bench.overhead`` times these against the harness path in one process.
"""

from __future__ import annotations

import numpy as np


def torch_loop(recipe, log_every: int = 10, tuned: bool = False):
    """pytorch/examples mnist: ``zero_grad``, forward, ``backward``, ``step``."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from backends.torch_backend import Net, UniformDropout

    model = Net(recipe.conv1_filters, recipe.conv2_filters, recipe.hidden, recipe.dropout1, recipe.dropout2,
                UniformDropout if tuned else nn.Dropout)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.learning_rate, momentum=recipe.momentum)

    def train(x: np.ndarray, y: np.ndarray) -> float:
        model.train()
        data, target = torch.from_numpy(x).unsqueeze(2), torch.from_numpy(y.astype(np.int64))
        loss = None
        for step in range(len(data)):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(data[step]), target[step])
            loss.backward()
            optimizer.step()
            if step % log_every == 0:
                loss.item()
        return float(loss.item())

    return train


def tensorflow_loop(recipe, log_every: int = 10, tuned: bool = False):
    """TensorFlow's "quickstart for experts": a ``tf.function`` step over a Keras model.

    ``tuned``: the tuned mode's idea, written plainly: a whole chunk of steps in one
    ``tf.function`` loop.
    """
    import os

    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras
    import tensorflow as tf

    from backends.tensorflow_backend import build_model

    model = build_model(recipe)
    loss_object = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.SGD(learning_rate=recipe.learning_rate, momentum=recipe.momentum)

    def step_fn(images, labels):
        with tf.GradientTape() as tape:
            loss = loss_object(labels, model(images, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    train_step = tf.function(step_fn)

    @tf.function
    def train_steps(images, labels):
        losses = tf.TensorArray(tf.float32, size=tf.shape(images)[0])
        for step in tf.range(tf.shape(images)[0]):
            losses = losses.write(step, step_fn(images[step], labels[step]))
        return losses.stack()

    def train(x: np.ndarray, y: np.ndarray) -> float:
        images, labels = tf.constant(x[..., None]), tf.constant(y.astype(np.int32))
        if tuned:
            return float(train_steps(images, labels)[-1])
        loss = None
        for step in range(len(x)):
            loss = train_step(images[step], labels[step])
            if step % log_every == 0:
                float(loss)
        return float(loss)

    return train


def jax_loop(recipe, log_every: int = 10, seed: int = 0):
    """Flax examples/mnist: a ``TrainState`` and a jitted ``train_step``."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax.training import train_state

    from backends.jax_backend import CNN

    model = CNN(recipe.conv1_filters, recipe.conv2_filters, recipe.hidden, recipe.dropout1, recipe.dropout2)
    init_key, dropout_key = jax.random.split(jax.random.PRNGKey(seed))
    params = model.init(init_key, jnp.zeros((1, 28, 28, 1)), train=False)["params"]
    state = train_state.TrainState.create(
        apply_fn=model.apply, params=params, tx=optax.sgd(recipe.learning_rate, recipe.momentum))

    @jax.jit
    def train_step(state, images, labels, rng):
        def loss_fn(params):
            logits = state.apply_fn({"params": params}, images, train=True, rngs={"dropout": rng})
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), loss

    counter = {"step": 0}

    def train(x: np.ndarray, y: np.ndarray) -> float:
        nonlocal state
        images, labels = jnp.asarray(x[..., None]), jnp.asarray(y.astype(np.int32))
        loss = None
        for step in range(len(x)):
            rng = jax.random.fold_in(dropout_key, counter["step"])
            counter["step"] += 1
            state, loss = train_step(state, images[step], labels[step], rng)
            if step % log_every == 0:
                float(loss)
        return float(loss)

    return train


def jax_tuned_loop(recipe, log_every: int = 10, seed: int = 0):
    """The tuned mode's idea, written plainly: patch-GEMM convolutions and a ``lax.scan`` over the steps."""
    import jax
    import jax.numpy as jnp
    import optax

    from backends.jax_backend import CNN

    model = CNN(recipe.conv1_filters, recipe.conv2_filters, recipe.hidden, recipe.dropout1, recipe.dropout2,
                matmul_convs=True)
    init_key, dropout_key = jax.random.split(jax.random.PRNGKey(seed))
    params = model.init(init_key, jnp.zeros((1, 28, 28, 1)), train=False)["params"]
    tx = optax.sgd(recipe.learning_rate, recipe.momentum)
    state = (params, tx.init(params), jnp.uint32(0))

    def step(state, batch):
        params, opt_state, i = state

        def loss_fn(params):
            logits = model.apply({"params": params}, batch[0], train=True,
                                 rngs={"dropout": jax.random.fold_in(dropout_key, i)})
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, i + 1), loss

    train_steps = jax.jit(lambda state, xs, ys: jax.lax.scan(step, state, (xs, ys)), donate_argnums=0)

    def train(x: np.ndarray, y: np.ndarray) -> float:
        nonlocal state
        state, losses = train_steps(state, jnp.asarray(x[..., None]), jnp.asarray(y.astype(np.int32)))
        return float(losses[-1])

    return train


# (backend, mode) -> the plain loop the harness path of that mode is measured against.
LOOPS = {
    ("torch", "eager"): torch_loop,
    ("torch", "tuned"): lambda recipe: torch_loop(recipe, tuned=True),
    ("tensorflow", "compiled"): tensorflow_loop,
    ("tensorflow", "tuned"): lambda recipe: tensorflow_loop(recipe, tuned=True),
    ("jax", "compiled"): jax_loop,
    ("jax", "tuned"): jax_tuned_loop,
}
