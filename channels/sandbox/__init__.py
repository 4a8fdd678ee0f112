"""Loopback servers that speak the providers' wire protocols, so the real client libraries
run in tests, in the demo and in operators' dry runs; each records what it accepted and
injects faults on request."""
