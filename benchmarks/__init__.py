"""Speed and scale benchmarks; `python -m benchmarks.run_all` runs them and writes benchmarks/RESULTS.md."""
