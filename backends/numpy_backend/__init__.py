"""The numpy implementation, the float64 oracle. Importing this package imports no framework."""
