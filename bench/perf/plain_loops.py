"""Plain training loops, each written the way its framework's own MNIST example is, sharing nothing with the harness.

``python -m mnist_bench.bench.perf.plain_loops BACKEND MODE --steps N`` trains one in its own process and
prints its steady-state samples/s as JSON; :mod:`mnist_bench.bench.perf.overhead` runs it against
``mnist-bench run`` in interleaved rounds. The default-mode loops define their own model
(the same network) and hold the whole normalised training set in the framework, slicing
each batch out of it as the examples do, with no chunking, canonical weights, progress
events or records:

* ``torch``/``eager``: pytorch/examples ``mnist/main.py``: ``zero_grad``, forward,
  ``nll_loss`` of ``log_softmax``, ``backward``, ``step``; ``loss.item()`` every 10 batches.
* ``tensorflow``/``compiled``: TensorFlow's "quickstart for experts": a Keras ``Sequential``
  model and a ``tf.function`` ``GradientTape`` step.
* ``jax``/``compiled``: Flax ``examples/mnist`` (Linen): a ``TrainState`` and a jitted
  ``train_step`` fed NumPy batches.

The tuned modes' loops write each tuned mode's one idea plainly (a cheaper dropout draw
for PyTorch; a whole chunk of steps in one ``tf.function`` loop; patch-GEMM convolutions
in a ``lax.scan``, with the JAX backend's module, since that module *is* the idea).

Timing matches the harness: the same data order (seed 0, epoch 0), the first step timed
alone, then chunks of ``chunk_steps`` steps with the loss read back (which synchronises)
before each clock read; steady state is the median chunk rate, leaving out the first two
chunks as :mod:`mnist_bench.bench.run.training` does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

LOG_EVERY = 10  # pytorch/examples' --log-interval: the loss is read back this often


def torch_loop(recipe, train_x, train_y, tuned: bool = False):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, recipe.conv1_filters, 3, 1)
            self.conv2 = nn.Conv2d(recipe.conv1_filters, recipe.conv2_filters, 3, 1)
            self.dropout1 = nn.Dropout(recipe.dropout1)
            self.dropout2 = nn.Dropout(recipe.dropout2)
            self.fc1 = nn.Linear(12 * 12 * recipe.conv2_filters, recipe.hidden)
            self.fc2 = nn.Linear(recipe.hidden, 10)

        def drop(self, layer, x):
            if tuned and self.training:  # the tuned mode's mask: rand >= p instead of bernoulli_
                return x * ((torch.rand_like(x) >= layer.p).to(x.dtype) / (1.0 - layer.p))
            return layer(x)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = F.relu(self.conv2(x))
            x = F.max_pool2d(x, 2)
            x = self.drop(self.dropout1, x)
            x = torch.flatten(x, 1)
            x = F.relu(self.fc1(x))
            x = self.drop(self.dropout2, x)
            return F.log_softmax(self.fc2(x), dim=1)

    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.learning_rate, momentum=recipe.momentum)
    images, labels = torch.from_numpy(train_x).unsqueeze(1), torch.from_numpy(train_y.astype(np.int64))

    def train(rows: np.ndarray) -> float:
        model.train()
        for batch_idx, index in enumerate(torch.from_numpy(rows)):
            data, target = images[index], labels[index]
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()
            if batch_idx % LOG_EVERY == 0:
                loss.item()
        return loss.item()

    return train


def tensorflow_loop(recipe, train_x, train_y, tuned: bool = False):
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
            if batch_idx % LOG_EVERY == 0:
                float(loss)
        return float(loss)

    return train


def jax_loop(recipe, train_x, train_y, tuned: bool = False, seed: int = 0):
    import jax
    import jax.numpy as jnp
    import optax
    from flax import linen as nn
    from flax.training import train_state

    if tuned:
        return _jax_tuned_loop(recipe, train_x, train_y, seed)

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool):
            x = nn.relu(nn.Conv(recipe.conv1_filters, (3, 3), padding="VALID")(x))
            x = nn.relu(nn.Conv(recipe.conv2_filters, (3, 3), padding="VALID")(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
            x = nn.Dropout(recipe.dropout1, deterministic=not train)(x)
            x = x.reshape((x.shape[0], -1))
            x = nn.relu(nn.Dense(recipe.hidden)(x))
            x = nn.Dropout(recipe.dropout2, deterministic=not train)(x)
            return nn.Dense(10)(x)

    model = CNN()
    init_key, dropout_key = jax.random.split(jax.random.PRNGKey(seed))
    params = model.init(init_key, jnp.zeros((1, 28, 28, 1)), train=False)["params"]
    state = train_state.TrainState.create(apply_fn=model.apply, params=params,
                                          tx=optax.sgd(recipe.learning_rate, recipe.momentum))

    @jax.jit
    def train_step(state, images, labels, rng):
        def loss_fn(params):
            logits = state.apply_fn({"params": params}, images, train=True, rngs={"dropout": rng})
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), loss

    images, labels = train_x[..., None], train_y.astype(np.int32)

    def train(rows: np.ndarray) -> float:
        nonlocal state
        for batch_idx, index in enumerate(rows):
            rng = jax.random.fold_in(dropout_key, state.step)
            state, loss = train_step(state, images[index], labels[index], rng)
            if batch_idx % LOG_EVERY == 0:
                float(loss)
        return float(loss)

    return train


def _jax_tuned_loop(recipe, train_x, train_y, seed: int):
    import jax
    import jax.numpy as jnp
    import optax

    from mnist_bench.backends.jax_backend.backend import CNN

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
    images, labels = train_x[..., None], train_y.astype(np.int32)

    def train(rows: np.ndarray) -> float:
        nonlocal state
        state, losses = train_steps(state, images[rows], labels[rows])
        return float(losses[-1])

    return train


# (backend, mode) -> the plain loop the harness path of that mode is measured against.
LOOPS = {
    ("torch", "eager"): torch_loop,
    ("torch", "tuned"): lambda *args: torch_loop(*args, tuned=True),
    ("tensorflow", "compiled"): tensorflow_loop,
    ("tensorflow", "tuned"): lambda *args: tensorflow_loop(*args, tuned=True),
    ("jax", "compiled"): jax_loop,
    ("jax", "tuned"): lambda *args: jax_loop(*args, tuned=True),
}


def measure(backend: str, mode: str, steps: int, chunk_steps: int, threads: int, data_dir: str | None) -> dict:
    """Train ``steps`` steps of the plain loop; time it as the harness times a run."""
    from mnist_bench.bench.run.process_setup import configure_process

    configure_process(threads, "cpu")  # the same pinning and thread counts as a worker, before any framework
    from mnist_bench.bench.run.training import _chunk_sizes
    from mnist_bench.common import contention, datasets, pipeline
    from mnist_bench.common.recipe import Recipe

    recipe = Recipe()
    arrays = pipeline.prepare(datasets.load("mnist", data_dir), recipe)
    order = pipeline.epoch_order(0, 0, len(arrays.train_y))[:steps * recipe.batch_size]
    rows = order.reshape(steps, recipe.batch_size)
    train = LOOPS[backend, mode](recipe, arrays.train_x, arrays.train_y)
    monitor = contention.Monitor(contention.pinned_cpus(threads)).start()
    rates, done = [], 0
    for index, size in enumerate(_chunk_sizes(steps, chunk_steps, first_alone=True)):
        start = time.perf_counter()
        train(rows[done:done + size])
        elapsed = time.perf_counter() - start
        done += size
        monitor.sample()
        if index > 1:  # the lone first step (compilation) and the first chunk, as in mnist_bench.bench.run.training
            rates.append(size * recipe.batch_size / elapsed)
    return {"backend": backend, "mode": mode, "steps": steps, "chunk_steps": chunk_steps,
            "steady_samples_per_s": float(np.median(rates)) if rates else None, "chunks": len(rates),
            "contention": monitor.summary()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_bench.bench.perf.plain_loops", description=__doc__.splitlines()[0])
    parser.add_argument("backend")
    parser.add_argument("mode")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--chunk-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    if (args.backend, args.mode) not in LOOPS:
        print(f"no plain loop for {args.backend} in mode {args.mode!r}; choose from "
              f"{', '.join(f'{b}/{m}' for b, m in LOOPS)}", file=sys.stderr)
        return 2
    print(json.dumps(measure(args.backend, args.mode, args.steps, args.chunk_steps, args.threads, args.data_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
