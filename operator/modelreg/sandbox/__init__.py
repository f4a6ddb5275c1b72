"""The sandbox (`modelreg sandbox`, optional extra `modelreg[sandbox]`): an emulated Kubernetes API
server with the API-server semantics an operator relies on, an S3 endpoint, a stand-in Deployment
controller and the real operator, on loopback. The integration tests run on it too.

Nothing in the operator imports this package: it stands in for a real cluster.
"""
