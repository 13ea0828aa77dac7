"""synthgen benchmarks: ``python -m bench NAME [--data DIR] [--quick]`` -> bench/results/NAME.json."""
