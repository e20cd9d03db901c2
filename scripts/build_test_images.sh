#!/usr/bin/env bash
# Builds the images `podman kube play` runs in the Kubernetes runner's tests and in bench/pods.py.
# No registry is reachable here, so images come from Debian packages (mmdebstrap) and PyPI wheels,
# the way ../shared/TESTING.md describes; users build the project's Dockerfile instead.
#
#   localhost/pach-airflow-worker-base:<deps hash>   Debian bookworm + python3 + busybox-static + a venv
#                                                   at /opt/pach-airflow with the worker's runtime deps
#   localhost/pach-airflow-worker:test-<src hash>    the base + our package (a wheel of the work tree)
#   localhost/pach-airflow-user:test-<tool hash>     a user image with NO shell and NO Python: one static
#                                                   C program (tests/kubernetes/ptool.c) at /ptool
#
# Bytecode is compiled at build time (pip's default): a container start must not recompile boto3.
# Each image is tagged by a hash of what goes into it and reused while that hash holds (podman's store
# keeps them between runs): the Debian base is built once (~30 s), the package layer whenever the
# source changes (~5 s), the user image whenever ptool.c changes (~1 s).
# Prints the three image names, one per line: base, worker, user.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PODMAN=(podman --runtime /usr/sbin/runc)
WORKER_DEPS=(boto3==1.43.117 botocore==1.43.117 s3transfer==0.19.3 jmespath==1.1.0
  python-dateutil==2.9.0.post0 six==1.17.0 urllib3==2.8.0 pydantic==2.14.4 pydantic-core==2.50.5
  annotated-types==0.8.0 typing-extensions==4.16.0 typing-inspection==0.4.5 pyyaml==6.0.4
  jsonpatch==1.48 jsonpointer==3.12)

if [ -z "${CONTAINERS_CONF:-}" ]; then
  # this sandbox has hybrid cgroups: crun and the default ulimits fail (TESTING.md)
  export CONTAINERS_CONF="${XDG_RUNTIME_DIR:-/tmp}/pach-airflow-containers.conf"
  printf '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\n' >"$CONTAINERS_CONF"
fi
for tool in podman mmdebstrap gcc; do
  command -v "$tool" >/dev/null || { echo "build_test_images.sh: $tool is missing (apt-get install -y podman runc mmdebstrap gcc libc6-dev)" >&2; exit 2; }
done
# pip on the host fetches wheels from PyPI and builds ours (the chroot cannot: no proxy CA in it)
PIP=(python3 -m pip)
"${PIP[@]}" --version >/dev/null 2>&1 || { echo "build_test_images.sh: python3 has no pip (apt-get install -y python3-pip)" >&2; exit 2; }
ARCH=$(uname -m)

hash_of() { sha256sum | cut -c1-12; }
have_image() { "${PODMAN[@]}" image exists "$1"; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
log() { echo "build_test_images.sh: $*" >&2; }

# 1. the Debian base with the worker's dependencies (rebuilt only when the pins change)
# (bump "layout" when the recipe below changes, so cached bases are rebuilt)
deps_hash=$(printf '%s\n' layout-2 bookworm python3 python3-venv busybox-static "${WORKER_DEPS[@]}" | hash_of)
BASE=localhost/pach-airflow-worker-base:$deps_hash
if ! have_image "$BASE"; then
  t0=$SECONDS
  mkdir -p "$TMP/wheels"
  # bookworm's python3 is 3.11: the wheels are for that, whatever runs this script
  "${PIP[@]}" download --quiet --only-binary=:all: --python-version 3.11 --platform "manylinux2014_$ARCH" \
    --platform "manylinux_2_17_$ARCH" --implementation cp -d "$TMP/wheels" "${WORKER_DEPS[@]}" >&2
  mmdebstrap --quiet --variant=apt --include=python3,python3-venv,busybox-static,ca-certificates \
    --customize-hook="mkdir -p \"\$1/tmp/wheels\" && cp $TMP/wheels/*.whl \"\$1/tmp/wheels/\"" \
    --customize-hook='chroot "$1" python3 -m venv /opt/pach-airflow' \
    --customize-hook='chroot "$1" sh -c "/opt/pach-airflow/bin/pip install --quiet --no-index /tmp/wheels/*.whl && rm -rf /tmp/wheels /var/cache/apt/archives/*.deb /var/lib/apt/lists/*"' \
    --format=tar bookworm "$TMP/rootfs.tar" >&2
  "${PODMAN[@]}" import --quiet \
    --change 'ENV PATH=/opt/pach-airflow/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$TMP/rootfs.tar" "$BASE" >/dev/null
  log "built $BASE in $((SECONDS - t0)) s"
fi

# 2. our package on top (rebuilt whenever the work tree's package changes)
src_hash=$( (cd "$ROOT" && find pach_airflow -name '*.py' -print0 | sort -z | xargs -0 cat; cat pyproject.toml; echo "$BASE") | hash_of)
WORKER=localhost/pach-airflow-worker:test-$src_hash
if ! have_image "$WORKER"; then
  t0=$SECONDS
  mkdir -p "$TMP/ctx" "$TMP/src"
  # build the wheel from a snapshot: other engineers edit the tree while we build
  (cd "$ROOT" && cp -r pach_airflow pyproject.toml README.md "$TMP/src/")
  find "$TMP/src" -name __pycache__ -prune -exec rm -rf {} +
  "${PIP[@]}" wheel --quiet --no-deps -w "$TMP/ctx" "$TMP/src" >&2
  wheel=$(cd "$TMP/ctx" && ls pach_airflow-*.whl)
  cat >"$TMP/ctx/Containerfile" <<EOF
FROM $BASE
COPY $wheel /tmp/
RUN /opt/pach-airflow/bin/pip install --quiet --no-index --no-deps /tmp/$wheel && rm /tmp/$wheel \
 && pach-airflow --help >/dev/null
EOF
  "${PODMAN[@]}" build --quiet --cgroup-manager cgroupfs --network none -t "$WORKER" "$TMP/ctx" >/dev/null
  log "built $WORKER in $((SECONDS - t0)) s"
fi

# 3. the user's image: one static binary, no shell, no Python, no libc to share
tool_hash=$(cat "$ROOT/tests/kubernetes/ptool.c" | hash_of)
USER_IMAGE=localhost/pach-airflow-user:test-$tool_hash
if ! have_image "$USER_IMAGE"; then
  mkdir -p "$TMP/user"
  gcc -static -O2 -s -o "$TMP/user/ptool" "$ROOT/tests/kubernetes/ptool.c"
  tar -C "$TMP/user" -cf "$TMP/user.tar" ptool
  "${PODMAN[@]}" import --quiet --change 'ENV PATH=/' "$TMP/user.tar" "$USER_IMAGE" >/dev/null
  log "built $USER_IMAGE"
fi

# Old package layers pile up as the source changes: drop them (one still in use is simply kept).
for old in $("${PODMAN[@]}" images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/pach-airflow-worker:test-' || true); do
  [ "$old" = "$WORKER" ] || "${PODMAN[@]}" rmi "$old" >/dev/null 2>&1 || true
done

echo "$BASE"
echo "$WORKER"
echo "$USER_IMAGE"
