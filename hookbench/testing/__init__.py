"""What hookbench's tests and benchmarks share, imported the normal way (like numpy.testing): the
stock-server stand-in (`hookbench.testing.stock_server`), the reference server as tests drive it,
`python -m hookbench` as a user runs it, a test's MLflow store, composed configs, and the soak and
fault-matrix drivers. Nothing in hookbench imports it; it needs the `server` and `dev` extras."""
