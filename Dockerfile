# The operator image the Helm chart runs (non-root, read-only root filesystem friendly).
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# the operator and `modelreg fetch` (serving pods run this image as an init container)
RUN pip install --no-cache-dir ".[operator]" && rm -rf /src
# modelreg_build_info{commit}: docker build --build-arg MODELREG_COMMIT=$(git rev-parse HEAD)
ARG MODELREG_COMMIT=unknown
ENV MODELREG_COMMIT=${MODELREG_COMMIT}
USER 65532:65532
ENTRYPOINT ["modelreg-operator"]
CMD ["run", "--all-namespaces"]
