"""The umbrella above the server and the apps: the `qc` command, the demo, the city
simulation and the benchmarks. It may import `server` and the apps; neither imports it."""
