"""Pydantic models of the custom resources (camelCase aliases, as in the CRDs)."""
