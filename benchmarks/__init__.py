"""The benchmarks of latentsearch and lpn-arc, run from the repository root as modules:
``python -m benchmarks.run_all [--quick]``, ``python -m benchmarks.bench_search --help``.

``common`` holds the shared harness (machine info, timing, result rows, the results
files); ``benchmarks/README.md`` lists every script and what it writes.
"""
