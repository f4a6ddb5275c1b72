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


def test_a_misspelled_section_in_the_environment_is_an_error_naming_it(monkeypatch):
    from modelreg.config import UnknownSectionError

    monkeypatch.setenv("MODELREG_VERIFICATON__MAX_CONCURRENT", "3")
    with pytest.raises(UnknownSectionError, match="MODELREG_VERIFICATON__MAX_CONCURRENT"):
        Settings()


def test_with_no_cluster_the_operator_says_what_it_tried_and_exits_2(tmp_path, capsys, monkeypatch):
    import subprocess
    import sys

    (tmp_path / "seal.key").write_bytes(b"k" * 32)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: lab, context: {cluster: c, user: u}}]\n"
        "current-context: lab\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "KUBECONFIG": str(kubeconfig),
        "MODELREG_APPROVALS__SEAL_KEY_FILE": str(tmp_path / "seal.key"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "modelreg.main", "run", "-A"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Kubernetes API answers kubeconfig" in lines[0] and "'lab'" in lines[0], done.stderr
    env["KUBECONFIG"] = str(tmp_path / "missing")
    done = subprocess.run(
        [sys.executable, "-m", "modelreg.main", "run", "-A"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "not in a pod" in done.stderr and str(tmp_path / "missing") in done.stderr


def test_the_sandbox_without_its_extra_says_how_to_install_it(capsys, monkeypatch):
    import builtins

    from modelreg.sandbox_cli import cli

    real_import = builtins.__import__

    def without_celpy(name, *args, **kwargs):
        if name.startswith("modelreg.sandbox"):
            raise ModuleNotFoundError("No module named 'celpy'", name="celpy")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_celpy)
    assert cli(["sandbox"]) == 2
    assert "pip install 'modelreg[sandbox]'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            "verification:\n  maxConcurrent: 0\n",
            "verification.maxConcurrent: Input should be greater than or equal to 1",
        ),
        ("webhook:\n  clientCAFile: 3\n", "webhook.clientCAFile: Input should be a valid string"),
        ("[unclosed\n", "is not valid YAML (line 2)"),
        ("- a\n- b\n", "must be a YAML mapping of sections, not list"),
    ],
)
@pytest.mark.parametrize("program", ["modelreg-operator run -A", "modelreg sandbox"])
def test_a_bad_config_file_is_one_line_naming_keys_as_written(tmp_path, capsys, monkeypatch, text, says, program):
    from modelreg.main import main
    from modelreg.sandbox.main import cli as sandbox

    config = tmp_path / "modelreg.yaml"
    config.write_text(text)
    monkeypatch.setenv("MODELREG_CONFIG", str(config))
    # the sandbox checks it before it starts anything (nothing is written to --dir either)
    run = {"modelreg-operator run -A": lambda: main(["run", "-A"])}.get(
        program, lambda: sandbox(["sandbox", "--dir", str(tmp_path / "sandbox")])
    )
    assert run() == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "sandbox").exists()


def test_the_seal_key_is_checked_before_any_connection(tmp_path, capsys, monkeypatch):
    from modelreg.main import main

    key = tmp_path / "seal.key"
    key.write_bytes(b"short")
    monkeypatch.setenv("MODELREG_APPROVALS__SEAL_KEY_FILE", str(key))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))  # no cluster either: the key first
    assert main(["run", "-A"]) == 2
    err = capsys.readouterr().err
    assert "approvals.sealKeyFile" in err and "at least 16 bytes" in err and "kubeconfig" not in err


@pytest.mark.parametrize("value", ["null", "None", ""])
def test_managed_null_from_the_environment_means_not_managed(monkeypatch, value):
    monkeypatch.setenv("MODELREG_WEBHOOK__MANAGED", value)
    assert Settings().webhook.managed is None


def test_the_operator_without_its_extra_says_how_to_install_it(capsys, monkeypatch):
    import builtins
    import sys

    from modelreg.operator_cli import main

    real_import = builtins.__import__

    def without_kopf(name, *args, **kwargs):
        if name == "modelreg.main":
            raise ModuleNotFoundError("No module named 'kopf'", name="kopf")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "modelreg.main", raising=False)
    monkeypatch.setattr(builtins, "__import__", without_kopf)
    assert main(["run", "-A"]) == 2
    assert "pip install 'modelreg[operator]'" in capsys.readouterr().err


def test_serving_targets_default_to_deployments_and_are_enabled_by_file_or_environment(tmp_path, monkeypatch):
    assert Settings().serving.targets.enabled() == {"deployments"}
    config = tmp_path / "modelreg.yaml"
    config.write_text("serving:\n  targets:\n    inferenceServices: true\n")
    monkeypatch.setenv("MODELREG_CONFIG", str(config))
    assert Settings().serving.targets.enabled() == {"deployments", "inferenceServices"}
    monkeypatch.setenv("MODELREG_SERVING__TARGETS", '{"rollouts": true, "deployments": false}')
    assert Settings().serving.targets.enabled() == {"inferenceServices", "rollouts"}  # merged key by key
    config.write_text("serving:\n  targets:\n    knativeServices: true\n")
    monkeypatch.delenv("MODELREG_SERVING__TARGETS")
    with pytest.raises(ValidationError, match=r"serving\.targets\.knativeServices"):
        Settings()
