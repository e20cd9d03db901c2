# The pach_airflow worker image: what the Kubernetes runner's pods run besides the user's own image.
#
#   init container "stage"   pach-airflow worker stage ...  (inputs from S3, env files, the shim, and
#                            /bin/busybox copied to /pach/bin/busybox for the user's container)
#   sidecar "upload"         waits for /pach/done, then pach-airflow worker upload ...
#
# It holds our package with only the worker's runtime dependencies (boto3, pydantic, PyYAML, jsonpatch:
# no Airflow) and Debian's static busybox, the shell the shim needs inside images that have none.
#
# Build and push (name and tag are yours; point [pach_airflow] worker_image at the result):
#   docker build -t registry.example.com/pach-airflow-worker:0.1.0 .
#   docker push registry.example.com/pach-airflow-worker:0.1.0
# Options: --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm (any Debian-based Python >= 3.11).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pach_airflow ./pach_airflow
RUN pip wheel --no-cache-dir --no-deps -w /wheels .

FROM ${PYTHON_IMAGE}
# busybox-static: a statically linked busybox, so it runs in any user image (no libc needed there)
RUN apt-get update \
 && apt-get install -y --no-install-recommends busybox-static ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && /bin/busybox --help >/dev/null
# The worker's own dependencies, pinned as in requirements.lock; our package without its Airflow deps.
COPY requirements.lock /tmp/requirements.lock
COPY --from=wheel /wheels /tmp/wheels
RUN python -m venv /opt/pach-airflow \
 && /opt/pach-airflow/bin/pip install --no-cache-dir -c /tmp/requirements.lock \
      boto3 botocore s3transfer pydantic PyYAML jsonpatch \
 && /opt/pach-airflow/bin/pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels /tmp/requirements.lock \
 && /opt/pach-airflow/bin/pach-airflow worker stage --help >/dev/null
ENV PATH=/opt/pach-airflow/bin:$PATH \
    PACH_AIRFLOW_BUSYBOX=/bin/busybox \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# The pods set their own commands; this default shows what the image offers.
CMD ["pach-airflow", "worker", "--help"]
