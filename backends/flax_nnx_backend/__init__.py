"""The flax-nnx implementation. Importing this package imports no framework."""
