"""The fleet example (examples/fleet/, docs/fleet.md) against the code it runs: its command lines
parse with today's CLI, its settings are ones the server reads, and its ports and names agree
between the compose file, Envoy and the Kubernetes manifests. No image is built or run here."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from mlbridge.cli import build_parser
from mlbridge.serving_security import ENV_TOKEN
from mlbridge.serving_settings import ServerSettings
from mlbridge_server.serving.batching import BatchingSettings

FLEET = Path(__file__).resolve().parents[2] / "examples" / "fleet"
MANIFESTS = [FLEET / "docker-compose.yml", *sorted((FLEET / "k8s").glob("*.yaml"))]
SUBCOMMANDS = {"serve", "bridge", "trainer", "db"}


def command_lines() -> list[tuple[str, list[str]]]:
    """(where, argv after `mlbridge`) of every mlbridge command in the example."""
    found = []
    for path in MANIFESTS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = re.match(r"\s*(command|args): (\[.*\])\s*$", line)
            if not match:
                continue
            where = f"{path.relative_to(FLEET)}:{number}"
            argv = json.loads(match.group(2))
            if argv and argv[0] in SUBCOMMANDS:
                found.append((where, argv))
            elif len(argv) == 1 and "mlbridge " in argv[0]:  # a shell line: mlbridge ... && mlbridge ...
                for part in argv[0].split("&&"):
                    words = shlex.split(part)
                    assert words[0] == "mlbridge", f"{where}: {part!r}"
                    found.append((where, words[1:]))
    return found


def test_the_example_has_every_part():
    argv = command_lines()
    commands = sorted({a[0] for _, a in argv})
    assert commands == ["bridge", "db", "serve", "trainer"], commands
    assert sum(1 for where, a in argv if a[0] == "serve") == 2  # compose and Kubernetes


@pytest.mark.parametrize("where,argv", command_lines(), ids=lambda x: x if isinstance(x, str) else None)
def test_each_command_line_parses_with_the_cli(where, argv, capsys):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: `mlbridge {' '.join(argv)}` does not parse: {capsys.readouterr().err}")
    if argv[0] == "serve":
        assert args.host == "0.0.0.0" and args.port == 8500, f"{where}: servers must listen for Envoy on 8500"


def test_the_bridges_reach_the_servers_through_envoy_on_the_servers_port():
    envoy = (FLEET / "envoy.yaml").read_text()
    listener = re.search(r"name: grpc\s+address:\s+socket_address: \{ address: 0\.0\.0\.0, port_value: (\d+) \}", envoy)
    upstream = re.search(r"socket_address: \{ address: model-server, port_value: (\d+) \}", envoy)
    assert listener and upstream and upstream.group(1) == "8500"
    servers = {a[a.index("--server") + 1] for _, a in command_lines() if a[0] == "bridge"}
    assert servers == {f"envoy:{listener.group(1)}", f"model-server-lb:{listener.group(1)}"}
    # calls, not connections, are balanced: HTTP/2 upstream, health checked over gRPC
    assert "http2_protocol_options" in envoy and "grpc_health_check" in envoy and "STRICT_DNS" in envoy


def test_kubernetes_envoy_config_is_the_compose_one_with_the_headless_services_full_name():
    compose = (FLEET / "envoy.yaml").read_text()
    k8s = (FLEET / "k8s" / "envoy-config.yaml").read_text()
    namespace = re.search(r"^namespace: (\S+)$", (FLEET / "k8s" / "kustomization.yaml").read_text(), re.M).group(1)
    body = "\n".join(line for line in k8s.splitlines() if not line.startswith("#"))
    expected = "\n".join(line for line in compose.splitlines() if not line.startswith("#")).replace(
        "address: model-server,", f"address: model-server.{namespace}.svc.cluster.local,")
    assert body.strip() == expected.strip()
    service = (FLEET / "k8s" / "model-server.yaml").read_text().split("---")[1]
    assert re.search(r"^kind: Service$", service, re.M) and re.search(r"^  name: model-server$", service, re.M)
    assert re.search(r"^  clusterIP: None$", service, re.M), "Envoy's STRICT_DNS needs the headless Service"


def test_settings_in_the_example_are_ones_the_server_reads():
    known = {"MLBRIDGE_SERVING_" + name.upper() for name in BatchingSettings.__dataclass_fields__}
    for path in MANIFESTS:
        text = path.read_text()
        pairs = re.findall(r"(MLBRIDGE_SERVING_[A-Z_]+): \"(\w+)\"", text)
        pairs += re.findall(r"name: (MLBRIDGE_SERVING_[A-Z_]+), value: \"(\w+)\"", text)
        for name, _ in pairs:
            assert name in known, f"{path.name}: {name} is not a setting of the server"
        ServerSettings.resolve(environ=dict(pairs))  # raises on a value the server would refuse
    for path in (FLEET / "docker-compose.yml", FLEET / "k8s" / "model-server.yaml", FLEET / "k8s" / "bridge.yaml"):
        assert ENV_TOKEN in path.read_text(), f"{path.name} does not pass the server token"
