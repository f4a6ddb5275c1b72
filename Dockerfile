# The operator image the Helm chart runs (non-root, read-only root filesystem friendly).
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# the operator and `modelreg fetch` (serving pods run this image as an init container)
RUN pip install --no-cache-dir ".[operator]" && rm -rf /src
USER 65532:65532
ENTRYPOINT ["modelreg-operator"]
CMD ["run", "--all-namespaces"]
