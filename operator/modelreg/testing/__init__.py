"""Test-only stand-ins (not part of the sandbox): controllers for serving kinds the sandbox does not run."""
