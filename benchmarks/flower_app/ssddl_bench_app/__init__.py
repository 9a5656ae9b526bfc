"""The Flower app that runs one ``benchmarks.bench_flower`` point on the deployment engine."""
