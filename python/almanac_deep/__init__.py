"""Almanac's deep global forecaster (JAX)."""
