"""Benchmarks of Argus: a seeded devops workload (`bench.workload`) and the harness that
measures a running `argus up` with it (`bench.run`). See bench/README.md."""
