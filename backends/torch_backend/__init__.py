"""The torch implementation. Importing this package imports no framework."""
