"""Fault seams for the tests: an HTTP proxy, store and warehouse wrappers,
and a crash harness."""
