"""Configs: declarative schemas (``schema``), loading and validation (``loading``) and the generated
key reference (``docs``). The section schemas come from the registered components themselves."""

from minigpt4.errors import ConfigError

from .loading import (
    CUSTOM_IMPORTS,
    OPTIONS,
    PACKAGE_DIR,
    load_config,
    load_model_config,
    parse_options,
    read_yaml,
    resolve_path,
    validate_section,
)

__all__ = [
    "CUSTOM_IMPORTS",
    "OPTIONS",
    "PACKAGE_DIR",
    "ConfigError",
    "load_config",
    "load_model_config",
    "parse_options",
    "read_yaml",
    "resolve_path",
    "validate_section",
]
