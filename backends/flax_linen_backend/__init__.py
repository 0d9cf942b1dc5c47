"""The flax-linen implementation (formerly `jax`). Importing this package imports no framework."""
