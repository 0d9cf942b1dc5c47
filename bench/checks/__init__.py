"""Checking that implementations are the same model: parity and data-parallel parity."""
