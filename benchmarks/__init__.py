"""Reproducible quality and speed measurements with their recorded results."""
