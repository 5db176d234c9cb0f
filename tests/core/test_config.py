"""Settings come from KNM_* variables or a TOML file; every one is documented."""

from __future__ import annotations

from pathlib import Path

import msgspec

from knm.core.config import KnmConfig

README = Path(__file__).resolve().parents[2] / "README.md"


def test_environment_variables_override_the_toml_file_and_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "knm.toml"
    toml.write_text('port = 9000\nlog_level = "DEBUG"\nblocked_plugins = ["ansible"]\n')
    config = KnmConfig.from_env(
        {
            "KNM_CONFIG": str(toml),
            "KNM_PORT": "9100",
            "KNM_RUNNER": "false",
            "KNM_PLUGINS": "a.b:C,d",
        }
    )
    assert config.port == 9100
    assert config.log_level == "DEBUG"
    assert config.blocked_plugins == ["ansible"]
    assert config.runner is False
    assert config.plugins == ["a.b:C", "d"]
    assert config.api_prefix == "/api/v1"
    assert KnmConfig(path_prefix="/knm/").api_prefix == "/knm/api/v1"


def test_every_setting_is_in_the_readmes_configuration_table() -> None:
    readme = README.read_text()
    missing = [
        f.name for f in msgspec.structs.fields(KnmConfig) if f"KNM_{f.name.upper()}" not in readme
    ]
    assert not missing, f"document these in README.md: {missing}"
