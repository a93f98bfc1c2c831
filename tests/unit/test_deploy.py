"""deploy/: what can be checked without a Docker engine or a cluster.

Every YAML parses; Kubernetes objects validate against the bundled schemas of
kubernetes-validate (strict: unknown fields fail); the compose file has the services and
wiring Argus needs; and every `argus ...` command line in the Dockerfile, compose file and
manifests parses with the real CLI, so renaming a flag breaks this test.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from argus.cli import main

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_VERSION = "1.30.0"


def _k8s_objects() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        out.extend((path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc is not None)
    return out


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return doc


def _parse_argus(args: Sequence[str]) -> None:
    """Parse `argus ARGS` down to the leaf command without running it (raises click errors)."""
    command: click.Command = main
    ctx = main.make_context("argus", list(args))
    rest = _unparsed(ctx)
    while isinstance(command, click.Group):
        assert rest, f"argus {shlex.join(args)}: no subcommand"
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None, f"argus {shlex.join(args)}: unknown command"
        ctx = sub.make_context(name, rest, parent=ctx)
        command = sub
        rest = _unparsed(ctx)
    assert not rest, f"argus {shlex.join(args)}: unexpected arguments {rest}"


def _unparsed(ctx: click.Context) -> list[str]:
    # Click 8.2 keeps a group's subcommand in `_protected_args` (the public name is deprecated).
    return [*getattr(ctx, "_protected_args", []), *ctx.args]


def _argus_command_lines() -> Iterator[tuple[str, list[str]]]:
    """Every argus command line: the Dockerfile's CMD, compose commands, k8s container args."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    entry = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", dockerfile, re.MULTILINE)
    cmd = re.search(r"^CMD\s+(\[.*\])\s*$", dockerfile, re.MULTILINE)
    assert entry and cmd, "the Dockerfile needs exec-form ENTRYPOINT and CMD"
    assert json.loads(entry.group(1)) == ["argus"]
    yield "Dockerfile CMD", json.loads(cmd.group(1))
    for name, service in _compose()["services"].items():
        if str(service.get("image", "")).startswith("argus"):
            yield f"compose {name}", service["command"]
    for file, obj in _k8s_objects():
        if obj["kind"] != "Deployment":
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            if container["image"].startswith("argus"):
                yield f"{file} {obj['metadata']['name']}", container["args"]


def test_every_kubernetes_object_validates_strictly() -> None:
    objects = _k8s_objects()
    kinds = {obj["kind"] for _, obj in objects}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap"} <= kinds
    for file, obj in objects:
        if obj["kind"] == "Kustomization":
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{file}: {obj['kind']} {obj['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_kubernetes_wiring() -> None:
    objects = {(obj["kind"], obj["metadata"]["name"]): obj for _, obj in _k8s_objects() if "metadata" in obj}
    config = objects[("ConfigMap", "argus-config")]["data"]["argus.toml"]
    assert "kafka://" in config and "dynamodb://" in config and "s3://" in config
    deployments = {name: obj for (kind, name), obj in objects.items() if kind == "Deployment"}
    for name, obj in deployments.items():
        labels = obj["spec"]["template"]["metadata"]["labels"]
        assert obj["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        assert objects[("HorizontalPodAutoscaler", name)]["spec"]["scaleTargetRef"]["name"] == name
        for container in obj["spec"]["template"]["spec"]["containers"]:
            assert container["resources"]["requests"]["cpu"], f"{name}: CPU HPA needs a CPU request"
    rollups_hpa = objects[("HorizontalPodAutoscaler", "argus-project-rollups")]["spec"]["metrics"]
    assert {m["type"] for m in rollups_hpa} == {"Resource", "External"}
    for service in ("argus-ingest", "argus-query"):
        selector = objects[("Service", service)]["spec"]["selector"]
        assert selector.items() <= deployments[service]["spec"]["template"]["metadata"]["labels"].items()


def test_compose_has_the_backends_and_every_service_wired() -> None:
    services = _compose()["services"]
    assert {"kafka", "dynamodb", "minio", "ingest", "query-server", "project-rollups"} <= services.keys()
    argus_services = {n: s for n, s in services.items() if str(s.get("image", "")).startswith("argus")}
    targets = {s["command"][0] for s in argus_services.values()}
    assert {"ingest", "project", "query-server"} <= targets
    for name, service in argus_services.items():
        env = service["environment"]
        assert env["ARGUS_EVENT_LOG_URL"].startswith("kafka://kafka:"), name
        assert env["ARGUS_HOT_STORE_URL"].startswith("dynamodb://"), name
        assert "endpoint=http://dynamodb:8000" in env["ARGUS_HOT_STORE_URL"], name
        assert "endpoint=http://minio:9000" in env["ARGUS_COLD_STORE_URL"], name
        assert set(service["depends_on"]) <= services.keys(), name
    assert services["project-rollups"]["deploy"]["replicas"] >= 2
    assert services["ingest"]["deploy"]["replicas"] >= 2


def test_every_argus_command_line_parses_with_the_real_cli() -> None:
    lines = list(_argus_command_lines())
    assert len(lines) >= 10
    for where, args in lines:
        try:
            _parse_argus(args)
        except click.ClickException as exc:
            pytest.fail(f"{where}: argus {shlex.join(args)}: {exc.format_message()}")


def test_a_renamed_flag_would_fail_the_parse() -> None:
    with pytest.raises(click.NoSuchOption):
        _parse_argus(["ingest", "--ingest-address", "0.0.0.0:1"])
    with pytest.raises(click.BadParameter):
        _parse_argus(["project", "--projector", "nope"])


def _listen_settings(args: Sequence[str], env: dict[str, str], config: dict[str, Any]) -> dict[str, object]:
    """The listen addresses and TLS settings of one command line: flags > env > config file."""
    flags = {"--ingest-addr": "ingest_addr", "--query-addr": "query_addr", "--http-addr": "http_addr"}
    flags |= {"--tls-cert": "tls_cert_file", "--tls-key": "tls_key_file"}
    values: dict[str, object] = {k: v for k, v in config.items() if k in flags.values() or k == "allow_insecure_bind"}
    for name in [*flags.values(), "allow_insecure_bind"]:
        if "ARGUS_" + name.upper() in env:
            values[name] = env["ARGUS_" + name.upper()]
    for flag, value in zip(args, [*args[1:], ""], strict=False):
        if flag in flags:
            values[flags[flag]] = value
        if flag == "--allow-insecure-bind":
            values["allow_insecure_bind"] = True
    return values


def test_no_example_listens_beyond_loopback_without_tls() -> None:
    from core.tls import is_loopback

    configs = {
        "argus.toml": tomllib.loads(
            next(o for _, o in _k8s_objects() if o["kind"] == "ConfigMap")["data"]["argus.toml"]
        ),
    }
    example = tomllib.loads((DEPLOY / "argus.example.toml").read_text())
    checked: list[tuple[str, dict[str, object]]] = [("argus.example.toml", _listen_settings([], {}, example))]
    services = _compose()["services"]
    for where, args in _argus_command_lines():
        env: dict[str, str] = {}
        if where.startswith("compose "):
            env = services[where.removeprefix("compose ")].get("environment", {})
        config = configs["argus.toml"] if "--config" in args else {}
        checked.append((where, _listen_settings(args, env, config)))
    exposed = 0
    for where, values in checked:
        addrs = [str(values[k]) for k in ("ingest_addr", "query_addr", "http_addr") if k in values]
        if all(is_loopback(a.rpartition(":")[0]) for a in addrs):
            continue
        exposed += 1
        assert values.get("allow_insecure_bind") is not True, f"{where}: binds {addrs} in plaintext"
        assert values.get("tls_cert_file") and values.get("tls_key_file"), f"{where}: binds {addrs} without TLS"
    assert exposed >= 4, "the Dockerfile, compose and k8s examples listen on 0.0.0.0"
