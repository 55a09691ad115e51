"""Benchmarks behind `voxclone bench`."""
