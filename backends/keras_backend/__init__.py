"""Keras 3 (``model.compile`` + ``model.fit``) on JAX, PyTorch or TensorFlow: three implementations, one folder."""
