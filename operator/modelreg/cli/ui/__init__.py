"""`kubectl modelreg ui`: a local web interface acting with the user's own kubeconfig credentials."""
