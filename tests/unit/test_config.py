import re

import pytest
from pydantic import ValidationError

from modelreg.config import Settings


def test_defaults_and_file_with_env_override(tmp_path, monkeypatch):
    assert Settings().approvals.seal_key_file is None
    config = tmp_path / "modelreg.yaml"
    config.write_text("verification:\n  maxConcurrent: 8\napprovals:\n  sealKeyFile: /a\n  gitopsStages: [Staging]\n")
    monkeypatch.setenv("MODELREG_CONFIG", str(config))
    monkeypatch.setenv("MODELREG_APPROVALS__SEAL_KEY_FILE", "/b")
    settings = Settings()
    assert settings.verification.max_concurrent == 8 and settings.approvals.gitops_stages == ["Staging"]
    assert settings.approvals.seal_key_file == "/b"  # the environment wins over the file


def test_trusting_unsealed_approvals_is_no_longer_a_setting(tmp_path, monkeypatch):
    config = tmp_path / "modelreg.yaml"
    config.write_text("approvals:\n  trustUnsealed: true\n")
    monkeypatch.setenv("MODELREG_CONFIG", str(config))
    with pytest.raises(ValidationError, match=r"approvals\.trustUnsealed"):
        Settings()


def test_the_operator_will_not_start_without_a_seal_key(capsys, monkeypatch):
    from modelreg.main import main

    monkeypatch.delenv("MODELREG_APPROVALS__SEAL_KEY_FILE", raising=False)
    assert main(["run", "-n", "ml"]) == 2
    assert "approvals.sealKeyFile is required" in capsys.readouterr().err


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
