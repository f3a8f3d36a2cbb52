"""Helpers more than one benchmark uses: the Redis db claim, the setup error, process-group clean-up.

Kept apart from each benchmark's own package so that importing them (benchmarks/drift.py
does) loads none of the serving benchmark.
"""
