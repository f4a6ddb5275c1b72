"""The only modules that talk to object storage and to the Kubernetes API."""
