"""Benchmarks, one module per `cityseg bench` verb: loader, latency, serve, synth."""
