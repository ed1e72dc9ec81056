"""The model config: which models are served, from where, which versions, under which labels.

TF Serving's ModelServerConfig, read from a text-format file (--model-config-file)
or received by HandleReloadConfigRequest, is checked here once and turned into
ModelEntry values, so that the registry never meets a config it cannot apply:
a mistake is refused whole, with a message naming the model and the field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from google.protobuf import text_format

from mlbridge.errors import MlbridgeError
from mlbridge.wire import model_server_config_pb2

from . import modelbase

ModelServerConfig = model_server_config_pb2.ModelServerConfig

PLATFORMS = ("", "tensorflow")


class ConfigError(MlbridgeError):
    """A model config the server refuses; the message says what to fix."""


@dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's ServableVersionPolicy: ``latest`` (the n newest versions
    on disk), ``all``, or ``specific`` (the listed versions)."""

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def select(self, on_disk: list[int]) -> set[int]:
        """The versions to serve among those on disk."""
        if self.kind == "all":
            return set(on_disk)
        if self.kind == "specific":
            return set(self.versions) & set(on_disk)
        return set(sorted(on_disk, reverse=True)[: self.num_versions])

    def describe(self) -> str:
        if self.kind == "all":
            return "all {}"
        if self.kind == "specific":
            return "specific {versions: [" + ", ".join(map(str, self.versions)) + "]}"
        return f"latest {{num_versions: {self.num_versions}}}"


@dataclass(frozen=True)
class ModelEntry:
    """One model of the config, checked: base_path is absolute."""

    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    labels: dict[str, int] = field(default_factory=dict)


def _policy(config, where: str) -> VersionPolicy:
    if not config.HasField("model_version_policy"):
        return VersionPolicy()
    policy = config.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return VersionPolicy("all")
    if choice == "specific":
        versions = tuple(sorted(set(policy.specific.versions)))
        if not versions:
            raise ConfigError(f"{where}: model_version_policy specific {{}} lists no versions")
        if versions[0] < 0:
            raise ConfigError(f"{where}: version numbers are >= 0, got {versions[0]}")
        return VersionPolicy("specific", versions=versions)
    if choice == "latest":
        return VersionPolicy("latest", num_versions=max(1, policy.latest.num_versions))
    return VersionPolicy()


def entries(config: ModelServerConfig, model_base: str) -> list[ModelEntry]:
    """The models of ``config``, checked; relative base paths are taken
    under ``model_base``. Raises ConfigError."""
    choice = config.WhichOneof("config")
    if choice == "custom_model_config":
        raise ConfigError(
            "custom_model_config is not supported: list the models in model_config_list"
        )
    out: list[ModelEntry] = []
    seen: set[str] = set()
    for index, model in enumerate(config.model_config_list.config):
        where = f'model_config_list.config[{index}] (name "{model.name}")'
        if not model.name:
            raise ConfigError(f"model_config_list.config[{index}]: name is required")
        if not modelbase.is_model_name(model.name):
            raise ConfigError(f"{where}: a model name is one plain path component")
        if model.name in seen:
            raise ConfigError(f'{where}: model "{model.name}" is configured twice')
        seen.add(model.name)
        if model.model_platform not in PLATFORMS:
            raise ConfigError(
                f'{where}: model_platform "{model.model_platform}" is not served: '
                'mlbridge serves "tensorflow" SavedModels'
            )
        base_path = os.path.join(model_base, model.base_path or model.name)
        policy = _policy(model, where)
        labels = dict(model.version_labels)
        for label, version in sorted(labels.items()):
            if not label:
                raise ConfigError(f"{where}: version_labels has an empty label")
            if policy.kind == "specific" and version not in policy.versions:
                raise ConfigError(
                    f'{where}: label "{label}" names version {version}, which its '
                    f"model_version_policy {policy.describe()} does not serve"
                )
        out.append(ModelEntry(model.name, os.path.abspath(base_path), policy, labels))
    return out


def parse_text(text: str, source: str = "model config") -> ModelServerConfig:
    """A ModelServerConfig from TF Serving's text format; ConfigError names
    ``source`` and the line and column of a syntax error."""
    config = ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise ConfigError(f"{source}: not a ModelServerConfig in text format: {e}") from None
    return config


def load_file(path: str, model_base: str) -> list[ModelEntry]:
    """The checked models of a --model-config-file. Raises ConfigError."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read the model config file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"the model config file {path} is not UTF-8 text") from None
    try:
        return entries(parse_text(text, path), model_base)
    except ConfigError as e:
        message = str(e)
        if not message.startswith(path):
            message = f"{path}: {message}"
        raise ConfigError(message) from None
