"""The tensorflow implementation. Importing this package imports no framework."""
