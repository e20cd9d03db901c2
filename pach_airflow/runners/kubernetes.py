"""The Kubernetes runner: a pipeline spec and a datum set become the arguments of a plain
``KubernetesPodOperator``.

Owns: the pod that runs one datum set (its init container, the user's container, the upload sidecar,
volumes, resources, scheduling, secrets, ``pod_spec``/``pod_patch``), the names and labels it carries,
and :class:`KubernetesConfig`, the ``[pach_airflow]`` settings it reads. Nothing here talks to a
cluster: every function is pure (spec in, kwargs out), so the DAG compiler can call them at parse time.

The pod is the one Pachyderm builds for its workers (``worker_rc.go``), with our worker in place of
``pachd``::

    initContainers[0] "stage"   worker image: pach-airflow worker stage ...  (inputs, env files,
                                 static busybox and shim.sh into the /pach emptyDir)
    containers[0]     "base"    the spec's transform.image, unchanged:
                                 /pach/bin/busybox sh /pach/shim.sh  (cmd/stdin per datum, /pfs empty)
    containers[1]     "upload"  worker image: waits for /pach/done (or for the shim to be gone),
                                 then pach-airflow worker upload ...

Container order and names follow Pachyderm (user container first, sidecar second; KPO calls the user
container ``base``), so a ``pod_patch`` written for Pachyderm (``/containers/0/...``) patches the same
container here. As in Pachyderm, ``pod_spec`` (a JSON merge patch) and then ``pod_patch`` (an RFC 6902
JSON Patch) apply last, to the PodSpec.

How the per-set part travels: a mapped task gets its job id and set id through XCom, and XCom can carry
only plain JSON. So everything common to a pipeline is one ``V1Pod`` given to the operator as
``full_pod_spec`` in ``partial()`` (:func:`kpo_partial_kwargs`), and the per-set part is the pod's name,
labels and annotations (:func:`kpo_expand_kwargs`). The worker containers read the job and set from the
pod's own annotations through the downward API (``fieldRef``), so no container argument differs from
one set to the next; ``sh -c`` expands them (kubelet's ``$(VAR)`` expansion would work on a cluster,
but ``podman kube play``, which runs these pods in our tests, does not do it).

Credentials: the worker containers get S3 credentials from a Kubernetes Secret
(:attr:`KubernetesConfig.s3_secret`) through ``secretKeyRef``; no credential value is ever part of the
kwargs, so none reaches the DAG file, the serialized DAG, XCom or the task log. The user's container
gets no S3 credentials at all (Pachyderm gives them only for ``s3`` inputs, which we refuse elsewhere).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

from pach_airflow.errors import RunnerError, SpecError

if TYPE_CHECKING:
    from kubernetes.client import models as k8s

__all__ = [
    "PFS_DIR",
    "WORK_DIR",
    "KubernetesConfig",
    "build_pod",
    "config_from_airflow",
    "dns_label",
    "kpo_expand_kwargs",
    "kpo_kwargs",
    "kpo_partial_kwargs",
    "label_value",
    "pod_annotations",
    "pod_labels",
    "pod_manifest",
    "pod_name",
    "pod_request",
    "resource_list",
]

WORK_DIR = "/pach"
PFS_DIR = "/pfs"
USER_CONTAINER = "base"  # KPO's base_container_name: it follows this container's logs and exit
STAGE_CONTAINER = "stage"
UPLOAD_CONTAINER = "upload"

LABEL_PREFIX = "pach-airflow.io/"
ANN_PIPELINE = LABEL_PREFIX + "pipeline"
ANN_JOB = LABEL_PREFIX + "job"
ANN_SET = LABEL_PREFIX + "set"

# KPO appends "-" + 8 random characters to the name (random_name_suffix), and a pod name is at most
# 63 characters: our part keeps 9 free so the whole name stays valid and our hash suffix survives.
POD_NAME_MAX = 63 - 9

# Pachyderm's defaults when a spec gives neither resource_requests nor resource_limits
# (PipelineDefaultCPURequest / MemoryRequest / StorageRequest in pachd's config).
DEFAULT_REQUESTS = (("cpu", "1"), ("memory", "256Mi"), ("ephemeral-storage", "1Gi"))

DEFAULT_SECRET_KEYS = (
    # (environment variable in the worker containers, key in the Secret, optional)
    ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID", False),
    ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", False),
    ("AWS_SESSION_TOKEN", "AWS_SESSION_TOKEN", True),
    ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL", True),
    ("AWS_DEFAULT_REGION", "AWS_DEFAULT_REGION", True),
)


@dataclass(frozen=True)
class KubernetesConfig:
    """Where and how pods run; read from Airflow's ``[pach_airflow]`` section by :meth:`from_airflow`.

    ``s3_secret_keys`` maps environment variables of the worker containers to keys of the Secret
    ``s3_secret`` (the third item says whether the key may be missing). ``s3_endpoint_url`` is not a
    secret and may be given here instead of in the Secret.
    """

    store: str = ""
    namespace: str = "default"
    worker_image: str = "pach-airflow-worker:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    s3_secret: str = "pach-airflow-s3"
    s3_secret_keys: tuple[tuple[str, str, bool], ...] = DEFAULT_SECRET_KEYS
    s3_endpoint_url: str | None = None
    service_account: str | None = None
    worker_pull_secrets: tuple[str, ...] = ()
    kubernetes_conn_id: str | None = "kubernetes_default"
    host_network: bool = False  # only for test beds whose S3 server listens on the node's 127.0.0.1
    startup_timeout_seconds: int = 600
    shim_start_timeout: int = 300
    default_requests: tuple[tuple[str, str], ...] = DEFAULT_REQUESTS
    extra_labels: tuple[tuple[str, str], ...] = field(default=())

    # `[pach_airflow]` keys, as written in airflow.cfg (or AIRFLOW__PACH_AIRFLOW__<KEY>).
    _KEYS: ClassVar[dict[str, str]] = {
        "store": "store",
        "namespace": "k8s_namespace",
        "worker_image": "worker_image",
        "image_pull_policy": "image_pull_policy",
        "s3_secret": "s3_secret",
        "s3_endpoint_url": "s3_endpoint_url",
        "service_account": "k8s_service_account",
        "worker_pull_secrets": "worker_pull_secrets",
        "kubernetes_conn_id": "kubernetes_conn_id",
        "host_network": "k8s_host_network",
        "startup_timeout_seconds": "k8s_startup_timeout",
        "shim_start_timeout": "shim_start_timeout",
    }

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> KubernetesConfig:
        """A config from ``[pach_airflow]``-style keys (see ``_KEYS``); unknown keys are ignored."""
        kwargs: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for attr, key in cls._KEYS.items():
            raw = values.get(key)
            if raw is None or str(raw).strip() == "":
                continue
            raw = str(raw).strip()
            kind = str(types[attr])
            if kind.startswith("tuple"):
                kwargs[attr] = tuple(s.strip() for s in raw.split(",") if s.strip())
            elif kind == "bool":
                kwargs[attr] = raw.lower() in ("1", "true", "yes", "on")
            elif kind == "int":
                try:
                    kwargs[attr] = int(raw)
                except ValueError:
                    raise RunnerError(f"[pach_airflow] {key}: {raw!r} is not a whole number of seconds") from None
            else:
                kwargs[attr] = raw
        policy = kwargs.get("image_pull_policy")
        if policy is not None and policy not in ("Always", "IfNotPresent", "Never"):
            raise RunnerError(f"[pach_airflow] image_pull_policy: {policy!r}: use Always, IfNotPresent or Never")
        return cls(**kwargs)

    @classmethod
    def from_airflow(cls) -> KubernetesConfig:
        """The config of this Airflow deployment (``[pach_airflow]``). It reads Airflow's configuration
        only (no network, no store), so the DAG compiler may call it while parsing."""
        from pach_airflow import airflow_config

        values = airflow_config.section()
        for key in cls._KEYS.values():
            # a section absent from airflow.cfg may still have env overrides: ask key by key
            if not values.get(key):
                values[key] = airflow_config.get(key) or ""
        if not values.get("store"):
            values["store"] = airflow_config.store_url() or ""
        return cls.from_mapping(values)


def config_from_airflow() -> KubernetesConfig:
    """The deployment's :class:`KubernetesConfig` from ``[pach_airflow]`` (what the DAG compiler calls)."""
    return KubernetesConfig.from_airflow()


def _config(config: KubernetesConfig | None) -> KubernetesConfig:
    return config if config is not None else config_from_airflow()


# --------------------------------------------------------------------------------------------------
# names


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def dns_label(text: str, max_len: int = 63) -> str:
    """``text`` as an RFC 1123 label (lowercase alphanumerics and ``-``, alphanumeric at both ends).

    A name that had to be cut keeps a hash of the whole text at its end, so two long names that share
    a prefix stay apart.
    """
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower())
    name = re.sub(r"-{2,}", "-", name).strip("-") or "x"
    if len(name) > max_len:
        name = name[: max_len - 9].rstrip("-") + "-" + _short_hash(text)
    return name


def label_value(text: str) -> str:
    """``text`` as a Kubernetes label value: ≤ 63 of ``[A-Za-z0-9._-]``, alphanumeric at both ends.

    Values that had to change carry a hash of the original, so distinct names stay distinct labels.
    """
    if re.fullmatch(r"([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?", text):
        return text
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)
    value = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)
    value = value[:54]
    value = re.sub(r"[^A-Za-z0-9]+$", "", value)
    return f"{value}-{_short_hash(text)}" if value else _short_hash(text)


def pod_name(pipeline: str, job_id: str, set_id: str, *, max_len: int = POD_NAME_MAX) -> str:
    """``<pipeline>-<job[:8]>-<set>`` as an RFC 1123 pod name (KPO adds its random suffix to it)."""
    return dns_label(f"{pipeline}-{job_id[:8]}-{set_id}", max_len)


def pod_labels(pipeline: str, job_id: str | None = None, set_id: str | None = None) -> dict[str, str]:
    """Labels that select a pipeline's pods, one job's pods, or one datum set's pod."""
    labels = {
        "app.kubernetes.io/name": "pach-airflow-worker",
        "app.kubernetes.io/managed-by": "pach-airflow",
        ANN_PIPELINE: label_value(pipeline),
    }
    if job_id is not None:
        labels[ANN_JOB] = label_value(job_id)
    if set_id is not None:
        labels[ANN_SET] = label_value(set_id)
    return labels


def pod_annotations(pipeline: str, job_id: str, set_id: str) -> dict[str, str]:
    """The exact pipeline, job and set (labels may be shortened): the worker containers read these."""
    return {ANN_PIPELINE: pipeline, ANN_JOB: job_id, ANN_SET: set_id}


# --------------------------------------------------------------------------------------------------
# spec access


def _spec_dict(spec: Any) -> dict[str, Any]:
    """The normalised spec as a snake_case dict, whatever form it comes in (model or dict)."""
    if isinstance(spec, Mapping):
        return dict(spec)
    try:
        from pach_airflow.spec import dump_spec

        return dump_spec(spec)
    except ImportError:  # pragma: no cover - the spec module not there yet
        return spec.model_dump(mode="json", exclude_none=True)


def _pipeline_name(spec: Mapping[str, Any]) -> str:
    name = (spec.get("pipeline") or {}).get("name")
    if not name:
        raise SpecError("pipeline.name: required")
    return str(name)


def _problem(spec: Mapping[str, Any], path: str, message: str) -> SpecError:
    name = (spec.get("pipeline") or {}).get("name", "?")
    return SpecError(f"pipeline {name}: {path}: {message}")


# --------------------------------------------------------------------------------------------------
# resources

_QUANTITY = re.compile(r"^([+]?(\d+(\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")


def _cpu_quantity(value: Any) -> str:
    """Pachyderm's float cpu (``0.5``) as a Kubernetes quantity (``500m``)."""
    if isinstance(value, str) and _QUANTITY.match(value.strip()):
        value = value.strip()
        if not re.search(r"[A-Za-z]", value):
            value = float(value)
        else:
            return value
    milli = round(float(value) * 1000)
    if milli < 0:
        raise ValueError(value)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def resource_list(spec: Mapping[str, Any], key: str) -> dict[str, str] | None:
    """A spec's ``ResourceSpec`` (``cpu`` float, ``memory``, ``disk``, ``gpu {type, number}``) as a
    Kubernetes resource list, as ``ppsutil.GetLimitsResourceList`` does. ``None`` when absent."""
    res = spec.get(key)
    if res is None:
        return None
    if not isinstance(res, Mapping):
        raise _problem(spec, key, "must be an object with cpu, memory, disk, gpu")
    out: dict[str, str] = {}
    if res.get("cpu") not in (None, 0, 0.0, ""):
        try:
            out["cpu"] = _cpu_quantity(res["cpu"])
        except (TypeError, ValueError):
            raise _problem(spec, f"{key}.cpu", f"{res['cpu']!r} is not a number of cores (e.g. 0.5)") from None
    for field_name, resource in (("memory", "memory"), ("disk", "ephemeral-storage")):
        value = res.get(field_name)
        if value in (None, ""):
            continue
        value = str(value).strip()
        if not _QUANTITY.match(value):
            raise _problem(spec, f"{key}.{field_name}", f"{value!r} is not a Kubernetes quantity (e.g. 512Mi, 2G)")
        out[resource] = value
    gpu = res.get("gpu")
    if gpu:
        number = gpu.get("number", 0) if isinstance(gpu, Mapping) else None
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise _problem(spec, f"{key}.gpu.number", f"{number!r} is not a whole number") from None
        if number > 0:
            out[str(gpu.get("type") or "nvidia.com/gpu")] = str(number)
    return out


def _sidecar_requests(requests: dict[str, str] | None, limits: dict[str, str] | None) -> dict[str, str]:
    """Pachyderm's sidecar asks for no cpu and 64M of memory unless told otherwise; a default never
    exceeds a limit the spec sets (Kubernetes then takes the limit as the request)."""
    if requests is not None:
        return requests
    return {k: v for k, v in (("cpu", "0"), ("memory", "64M")) if k not in (limits or {})}


def _is_extended(resource: str) -> bool:
    return "/" in resource  # nvidia.com/gpu, amd.com/gpu ...: never overcommitted, limits = requests


def _resources(spec: Mapping[str, Any], config: KubernetesConfig) -> tuple[dict, dict, dict, dict]:
    """(user requests, user limits, stage requests, stage limits), following worker_rc.go."""
    requests = resource_list(spec, "resource_requests")
    limits = resource_list(spec, "resource_limits")
    if requests is None and limits is None:
        requests = dict(config.default_requests)
    requests = dict(requests or {})
    limits = dict(limits or {})
    # Kubernetes takes an extended resource (a GPU) only as a limit (requests may repeat it).
    for res, qty in list(requests.items()):
        if _is_extended(res):
            limits.setdefault(res, qty)
    # The init container never runs beside the user container, so it may use the same cpu, memory and
    # disk (Pachyderm copies them); GPUs it does not get.
    stage_req = {k: v for k, v in requests.items() if k in ("cpu", "memory", "ephemeral-storage")}
    stage_lim = {k: v for k, v in limits.items() if not _is_extended(k)}
    return requests, limits, stage_req, stage_lim


# --------------------------------------------------------------------------------------------------
# the pod


def _k8s():
    from kubernetes.client import models as k8s

    return k8s


_TOLERATION_OPS = {"EXISTS": "Exists", "EQUAL": "Equal", "EMPTY": None, "": None, "Exists": "Exists",
                   "Equal": "Equal"}
_TOLERATION_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "PREFER_NO_SCHEDULE": "PreferNoSchedule",
                       "NO_EXECUTE": "NoExecute", "ALL_EFFECTS": None, "": None, "NoSchedule": "NoSchedule",
                       "PreferNoSchedule": "PreferNoSchedule", "NoExecute": "NoExecute"}


def _tolerations(spec: Mapping[str, Any]) -> list[k8s.V1Toleration] | None:
    k8s = _k8s()
    items = spec.get("tolerations") or []
    out = []
    for i, t in enumerate(items):
        op = t.get("operator", "")
        effect = t.get("effect", "")
        if op not in _TOLERATION_OPS:
            raise _problem(spec, f"tolerations[{i}].operator", f"{op!r}: use EXISTS, EQUAL or EMPTY")
        if effect not in _TOLERATION_EFFECTS:
            raise _problem(spec, f"tolerations[{i}].effect",
                           f"{effect!r}: use NO_SCHEDULE, PREFER_NO_SCHEDULE, NO_EXECUTE or ALL_EFFECTS")
        seconds = t.get("toleration_seconds")
        if isinstance(seconds, Mapping):  # protobuf Int64Value in its object form
            seconds = seconds.get("value")
        out.append(k8s.V1Toleration(
            key=t.get("key") or None, operator=_TOLERATION_OPS[op], value=t.get("value") or None,
            effect=_TOLERATION_EFFECTS[effect], toleration_seconds=int(seconds) if seconds is not None else None,
        ))
    return out or None


def _user_secrets(spec: Mapping[str, Any]) -> tuple[list, list, list]:
    """(env vars, volumes, volume mounts) for ``transform.secrets`` (Kubernetes Secrets, by reference)."""
    k8s = _k8s()
    env, volumes, mounts = [], [], []
    seen_volumes: dict[str, str] = {}
    for i, s in enumerate((spec.get("transform") or {}).get("secrets") or []):
        name = s.get("name")
        if not name:
            raise _problem(spec, f"transform.secrets[{i}].name", "required (the Kubernetes Secret's name)")
        if s.get("env_var"):
            if not s.get("key"):
                raise _problem(spec, f"transform.secrets[{i}].key", "required with env_var (api_server.go)")
            env.append(k8s.V1EnvVar(name=s["env_var"], value_from=k8s.V1EnvVarSource(
                secret_key_ref=k8s.V1SecretKeySelector(name=name, key=s["key"]))))
        if s.get("mount_path"):
            vol = seen_volumes.get(name)
            if vol is None:
                vol = dns_label(f"secret-{name}")
                seen_volumes[name] = vol
                volumes.append(k8s.V1Volume(name=vol, secret=k8s.V1SecretVolumeSource(secret_name=name)))
            mounts.append(k8s.V1VolumeMount(name=vol, mount_path=s["mount_path"], read_only=True))
    return env, volumes, mounts


def _security_context(spec: Mapping[str, Any]) -> k8s.V1PodSecurityContext | None:
    """``transform.user`` as the pod's uid/gid, for every container (as Pachyderm does).

    The worker containers run as the same user so that the user's code may move files the init
    container staged; Kubernetes knows only numbers, so ``"1000"`` or ``"1000:1000"``.
    """
    user = str((spec.get("transform") or {}).get("user") or "").strip()
    if not user:
        return None
    m = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    if not m:
        raise _problem(spec, "transform.user", f"{user!r}: Kubernetes runs containers as a numeric uid; "
                       "write it as \"1000\" or \"1000:1000\"")
    uid = int(m.group(1))
    gid = int(m.group(2) or m.group(1))
    return _k8s().V1PodSecurityContext(run_as_user=uid, run_as_group=gid, fs_group=gid)


def _duration_seconds(spec: Mapping[str, Any], key: str) -> int | None:
    value = spec.get(key)
    if value in (None, "", 0):
        return None
    if isinstance(value, (int, float)):
        secs = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)s\s*", str(value))
        if not m:
            raise _problem(spec, key, f"{value!r} is not a duration; write seconds like \"3600s\"")
        secs = float(m.group(1))
    return max(1, int(secs + 0.999)) if secs > 0 else None


# The sidecar's wait: /pach/done, or the shim gone from the shared process namespace (the user
# container crashed, was OOM-killed, or never started the shim). No `$$` and no `$(NAME)` of a
# defined variable: kubelet would expand those in a container's arguments.
_UPLOAD_SCRIPT = r"""set -u
shim_running() {
  for f in /proc/[0-9]*/cmdline; do
    [ "$(tr '\000' ' ' < "$f" 2>/dev/null)" = "WORK/bin/busybox sh WORK/shim.sh " ] && return 0
  done
  return 1
}
seen=0
ticks=0
while [ ! -e WORK/done ]; do
  if shim_running; then
    seen=1
  elif [ "$seen" = 1 ]; then
    sleep 1
    [ -e WORK/done ] || echo "pach-airflow: the user container stopped before writing WORK/done; uploading what it left" >&2
    break
  elif [ "$ticks" -ge "$((PACH_SHIM_START_TIMEOUT * 2))" ]; then
    echo "pach-airflow: no shim ran in the user container within ${PACH_SHIM_START_TIMEOUT}s; uploading what there is" >&2
    break
  fi
  ticks=$((ticks + 1))
  sleep 0.5
done
# the work folder knows its pipeline, job and set (stage wrote them there)
exec pach-airflow worker upload --work WORK
""".replace("WORK", WORK_DIR)

_STAGE_SCRIPT = (
    'exec pach-airflow worker stage --pipeline "$PACH_PIPELINE_NAME" --job "$PACH_JOB_ID" '
    f'--set "$PACH_SET_ID" --work {WORK_DIR}'
)


def _worker_env(pipeline: str, config: KubernetesConfig) -> list[k8s.V1EnvVar]:
    """Env of the worker containers: job and set from the pod's annotations, store, S3 by Secret."""
    k8s = _k8s()

    def from_annotation(key: str) -> k8s.V1EnvVarSource:
        return k8s.V1EnvVarSource(field_ref=k8s.V1ObjectFieldSelector(
            field_path=f"metadata.annotations['{key}']"))

    env = [
        k8s.V1EnvVar(name="PACH_PIPELINE_NAME", value=pipeline),
        k8s.V1EnvVar(name="PACH_JOB_ID", value_from=from_annotation(ANN_JOB)),
        k8s.V1EnvVar(name="PACH_SET_ID", value_from=from_annotation(ANN_SET)),
        k8s.V1EnvVar(name="PACH_AIRFLOW_STORE", value=config.store),
        # the worker image may run as any uid (transform.user): give Python a writable home
        k8s.V1EnvVar(name="HOME", value="/tmp"),
    ]
    if config.s3_endpoint_url:
        env.append(k8s.V1EnvVar(name="AWS_ENDPOINT_URL", value=config.s3_endpoint_url))
    for var, key, optional in config.s3_secret_keys:
        if var == "AWS_ENDPOINT_URL" and config.s3_endpoint_url:
            continue
        env.append(k8s.V1EnvVar(name=var, value_from=k8s.V1EnvVarSource(
            secret_key_ref=k8s.V1SecretKeySelector(name=config.s3_secret, key=key, optional=optional or None))))
    return env


def _check_config(config: KubernetesConfig) -> None:
    if not config.store.startswith("s3://"):
        raise RunnerError(
            f"[pach_airflow] store: {config.store or '(unset)'!r}: pods reach the store over S3, so the "
            "kubernetes runner needs an s3://bucket/prefix store (set AIRFLOW__PACH_AIRFLOW__STORE)")
    if not config.worker_image:
        raise RunnerError("[pach_airflow] worker_image: required by the kubernetes runner (see docs/deploy.md)")


def _json_patch_doc(spec: Mapping[str, Any], key: str, kind: type) -> Any:
    raw = spec.get(key)
    if raw in (None, "", [], {}):
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise _problem(spec, key, f"not valid JSON ({e.msg} at {e.pos})") from None
    if not isinstance(raw, kind):
        want = "a JSON Patch (a list of operations)" if kind is list else "a JSON object merged into the PodSpec"
        raise _problem(spec, key, f"must be {want}")
    return raw


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (Pachyderm's ``pod_spec``): objects merge, null deletes, rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _apply_pod_spec_and_patch(spec: Mapping[str, Any], pod_spec: k8s.V1PodSpec) -> k8s.V1PodSpec:
    """``pod_spec`` then ``pod_patch`` onto the PodSpec, as ``worker_rc.go`` does: applied last."""
    merge = _json_patch_doc(spec, "pod_spec", dict)
    patch = _json_patch_doc(spec, "pod_patch", list)
    if merge is None and patch is None:
        return pod_spec
    import jsonpatch
    from kubernetes.client import ApiClient

    api = ApiClient()
    doc = api.sanitize_for_serialization(pod_spec)
    if merge is not None:
        doc = _merge_patch(doc, merge)
    if patch is not None:
        try:
            doc = jsonpatch.JsonPatch(patch).apply(doc)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as e:
            raise _problem(spec, "pod_patch", f"does not apply to the worker's PodSpec: {e}") from None
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    pod = PodGenerator.deserialize_model_dict({"apiVersion": "v1", "kind": "Pod", "spec": doc})
    return pod.spec


def build_pod(spec: Any, config: KubernetesConfig | None) -> k8s.V1Pod:
    """The pod every datum set of this pipeline runs in, without the per-set name and annotations.

    ``pod_spec`` and ``pod_patch`` are applied to its PodSpec last. This is what
    :func:`kpo_partial_kwargs` gives KPO as ``full_pod_spec``.
    """
    k8s = _k8s()
    spec = _spec_dict(spec)
    pipeline = _pipeline_name(spec)
    config = _config(config)
    _check_config(config)
    transform = spec.get("transform") or {}
    image = transform.get("image") or "ubuntu:20.04"  # Pachyderm's default image (api_server.go)

    requests, limits, stage_req, stage_lim = _resources(spec, config)
    side_req = resource_list(spec, "sidecar_resource_requests")
    side_lim = resource_list(spec, "sidecar_resource_limits")
    secret_env, secret_volumes, secret_mounts = _user_secrets(spec)
    worker_env = _worker_env(pipeline, config)

    work_volume = k8s.V1Volume(
        name="pach",
        # transform.memory_volume: Pachyderm backs the worker's scratch space with memory
        empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory" if transform.get("memory_volume") else None),
    )
    pfs_volume = k8s.V1Volume(name="pfs", empty_dir=k8s.V1EmptyDirVolumeSource())
    work_mount = k8s.V1VolumeMount(name="pach", mount_path=WORK_DIR)
    pfs_mount = k8s.V1VolumeMount(name="pfs", mount_path=PFS_DIR)

    def requirements(req: Mapping[str, str] | None, lim: Mapping[str, str] | None):
        if not req and not lim:
            return None
        return k8s.V1ResourceRequirements(requests=dict(req) if req else None, limits=dict(lim) if lim else None)

    stage = k8s.V1Container(
        name=STAGE_CONTAINER, image=config.worker_image, image_pull_policy=config.image_pull_policy,
        command=["sh", "-c", _STAGE_SCRIPT], env=worker_env, volume_mounts=[work_mount],
        resources=requirements(stage_req, stage_lim),
    )
    user_env = [k8s.V1EnvVar(name=str(k), value=str(v)) for k, v in (transform.get("env") or {}).items()]
    user = k8s.V1Container(
        name=USER_CONTAINER, image=image, image_pull_policy=config.image_pull_policy,
        # The user's image is used unchanged: its entrypoint is replaced by the shim, which runs
        # transform.cmd per datum with the image's PATH (the shim needs nothing from the image).
        command=[f"{WORK_DIR}/bin/busybox", "sh", f"{WORK_DIR}/shim.sh"],
        env=[*user_env, *secret_env] or None,
        volume_mounts=[pfs_mount, work_mount, *secret_mounts],
        resources=requirements(requests, limits),
    )
    upload = k8s.V1Container(
        name=UPLOAD_CONTAINER, image=config.worker_image, image_pull_policy=config.image_pull_policy,
        command=["sh", "-c", _UPLOAD_SCRIPT],
        env=[*worker_env, k8s.V1EnvVar(name="PACH_SHIM_START_TIMEOUT", value=str(config.shim_start_timeout))],
        volume_mounts=[work_mount],
        resources=requirements(_sidecar_requests(side_req, side_lim), side_lim),
    )

    scheduling = spec.get("scheduling_spec") or {}
    pull_secrets = [*(transform.get("image_pull_secrets") or []), *config.worker_pull_secrets]
    pod_spec = k8s.V1PodSpec(
        init_containers=[stage],
        containers=[user, upload],
        volumes=[work_volume, pfs_volume, *secret_volumes],
        restart_policy="Never",
        # the uploader must see whether the shim still runs (a crashed user container never says done)
        share_process_namespace=True,
        # the pod needs no Kubernetes API: S3 credentials come from the Secret
        automount_service_account_token=False,
        service_account_name=config.service_account or None,
        image_pull_secrets=[k8s.V1LocalObjectReference(name=s) for s in dict.fromkeys(pull_secrets)] or None,
        node_selector=dict(scheduling.get("node_selector") or {}) or None,
        priority_class_name=scheduling.get("priority_class_name") or None,
        tolerations=_tolerations(spec),
        security_context=_security_context(spec),
        # a set can never run longer than its job may
        active_deadline_seconds=_duration_seconds(spec, "job_timeout"),
        host_network=True if config.host_network else None,
    )
    pod_spec = _apply_pod_spec_and_patch(spec, pod_spec)

    metadata = spec.get("metadata") or {}
    labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
    labels.update(pod_labels(pipeline))
    labels.update(dict(config.extra_labels))
    annotations = {str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()}
    annotations[ANN_PIPELINE] = pipeline
    return k8s.V1Pod(
        api_version="v1", kind="Pod",
        metadata=k8s.V1ObjectMeta(labels=labels, annotations=annotations),
        spec=pod_spec,
    )


# --------------------------------------------------------------------------------------------------
# KubernetesPodOperator kwargs


def kpo_partial_kwargs(spec: Any, config: KubernetesConfig | None) -> dict[str, Any]:
    """Everything common to a pipeline's datum-set pods: ``KubernetesPodOperator.partial(**these)``.

    The pod (with ``pod_spec``/``pod_patch`` applied) is ``full_pod_spec``, a ``V1Pod``: model objects
    survive DAG serialisation, and none of it is templated by Airflow, so user strings such as
    ``{{`` in an env value stay as written. Add ``task_id`` (and retries, pools...) yourself.
    """
    config = _config(config)
    pod = build_pod(spec, config)
    return {
        "namespace": config.namespace,
        "full_pod_spec": pod,
        # the image of "base" comes from full_pod_spec; KPO's own container only adds its name
        "image": pod.spec.containers[0].image,
        "kubernetes_conn_id": config.kubernetes_conn_id,
        "random_name_suffix": True,  # a retried set must not collide with its predecessor still terminating
        "get_logs": True,
        "container_logs": [USER_CONTAINER, UPLOAD_CONTAINER],
        "log_events_on_startup": True,
        "do_xcom_push": False,
        "on_finish_action": "delete_pod",
        "startup_timeout_seconds": config.startup_timeout_seconds,
    }


def kpo_expand_kwargs(pipeline: str, job_id: str, set_id: str, config: KubernetesConfig | None = None
                      ) -> dict[str, Any]:
    """The per-set part, plain JSON (it travels through XCom): one item of ``expand_kwargs``."""
    del config  # same signature for every runner-facing function; nothing per set depends on it yet
    return {
        "name": pod_name(pipeline, job_id, set_id),
        "labels": pod_labels(pipeline, job_id, set_id),
        "annotations": pod_annotations(pipeline, job_id, set_id),
    }


def kpo_kwargs(spec: Any, *, pipeline: str, job_id: str, set_id: str, config: KubernetesConfig | None,
               task_id: str = "process") -> dict[str, Any]:
    """The complete kwargs of one ``KubernetesPodOperator`` running datum set ``set_id`` of a job."""
    name = _pipeline_name(_spec_dict(spec))
    if name != pipeline:
        raise SpecError(f"pipeline {pipeline}: the spec given is pipeline {name}'s")
    return {"task_id": task_id, **kpo_partial_kwargs(spec, config),
            **kpo_expand_kwargs(pipeline, job_id, set_id, config)}


def pod_request(spec: Any, *, pipeline: str, job_id: str, set_id: str, config: KubernetesConfig) -> k8s.V1Pod:
    """The ``V1Pod`` KPO would submit for this set (``build_pod_request_obj(dry_run=True)``): a plain
    KubernetesPodOperator built from :func:`kpo_kwargs`, asked for its pod without a cluster."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    op = KubernetesPodOperator(**kpo_kwargs(spec, pipeline=pipeline, job_id=job_id, set_id=set_id,
                                            config=config))
    return op.build_pod_request_obj(context=None, dry_run=True)


def pod_manifest(pod: k8s.V1Pod) -> dict[str, Any]:
    """A ``V1Pod`` as the camelCase manifest the API server (or ``podman kube play``) reads."""
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(pod)

