import re

import pytest
from pydantic import ValidationError

from modelreg.config import Settings


def test_defaults_and_file_with_env_override(tmp_path, monkeypatch):
    assert Settings().approvals.trust_unsealed is False
    config = tmp_path / "modelreg.yaml"
    config.write_text("verification:\n  maxConcurrent: 8\napprovals:\n  trustUnsealed: false\n")
    monkeypatch.setenv("MODELREG_CONFIG", str(config))
    monkeypatch.setenv("MODELREG_APPROVALS__TRUST_UNSEALED", "true")
    settings = Settings()
    assert settings.verification.max_concurrent == 8
    assert settings.approvals.trust_unsealed is True  # the environment wins over the file


def test_a_typo_in_the_file_is_an_error_naming_the_key(tmp_path, monkeypatch):
    config = tmp_path / "modelreg.yaml"
    config.write_text("verification:\n  maxConcurent: 8\n")
    monkeypatch.setenv("MODELREG_CONFIG", str(config))
    with pytest.raises(ValidationError, match=r"verification\.maxConcurent"):
        Settings()


def test_a_typo_in_the_environment_is_an_error_naming_the_key(monkeypatch):
    monkeypatch.setenv("MODELREG_VERIFICATION__MAX_CONCURENT", "3")
    with pytest.raises(ValidationError, match="max_concurent"):
        Settings()


def test_missing_config_file_is_reported(monkeypatch):
    monkeypatch.setenv("MODELREG_CONFIG", "/nonexistent/modelreg.yaml")
    with pytest.raises(FileNotFoundError, match=re.escape("/nonexistent/modelreg.yaml")):
        Settings()
