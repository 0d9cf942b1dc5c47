"""The jax implementation. Importing this package imports no framework."""
