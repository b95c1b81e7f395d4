"""Benchmarks: start lateness, burst throughput, dispatch cost and memory, and the alternative.

Not part of the test suite. Run ``python -m benchmarks`` (``make bench``); ``--help`` lists
the cases. Each case starts its own processes against a database and a Redis DB made for the
run, prints one JSON line per figure, and a table at the end.
"""
