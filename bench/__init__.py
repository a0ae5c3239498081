"""Benchmarks: the same load against piman and Synapse (see compare.py)."""
