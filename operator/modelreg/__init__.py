"""modelreg: a Kubernetes-native ML model registry."""

GROUP = "modelreg.io"
VERSION = "v1alpha1"
