"""`make bench`: purge, partition-drop, verification, parsing and memory benchmarks (see run.py)."""
