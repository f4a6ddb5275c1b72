"""Test doubles for the integration tests and the sandbox (optional extra `modelreg[testing]`).

Nothing in the operator imports this package: it is a stand-in for a real API server.
"""
