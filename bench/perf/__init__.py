"""Investigating performance: peak probes, the ceiling, harness overhead and profiles."""
