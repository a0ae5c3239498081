"""The homeserver's YAML configuration: one schema for defaults, validation and the sample file.

This package imports nothing else of the project, so every other package can depend on it.
"""

from config.errors import ConfigError
from config.homeserver_schema import HomeServerConfig
from config.parsing import parse_duration, parse_size
from config.sample import generate_config_yaml
from config.validation import load_config, load_config_dict

__all__ = [
    "ConfigError",
    "HomeServerConfig",
    "generate_config_yaml",
    "load_config",
    "load_config_dict",
    "parse_duration",
    "parse_size",
]
