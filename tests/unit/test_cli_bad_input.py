"""Bad input on the command line: a located message, exit code 2, never a traceback."""

from pathlib import Path

from tests.simfixture import cli

MODEL = str(Path(__file__).resolve().parents[2] / "models" / "library" / "amf" / "1.3" / "amf-upgrade.yaml")


def test_run_with_malformed_inventory(tmp_path):
    inv = tmp_path / "inv.yaml"
    inv.write_text("hosts:\n  amf-1: {hostname: 127.0.0.1, port: seventy}\n")
    result = cli("run", MODEL, "-i", str(inv), "-t", "all")
    assert result.returncode == 2
    assert f"{inv}:2:32: hosts.amf-1.port: must be a port number" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_run_with_bad_options(tmp_path):
    inv = tmp_path / "inv.yaml"
    inv.write_text("hosts:\n  amf-1: {hostname: 127.0.0.1}\n")
    missing = cli("run", str(tmp_path / "nope.yaml"), "-i", str(inv))
    assert missing.returncode == 2 and "nope.yaml: MODEL: file not found" in missing.stderr
    policy = cli("run", MODEL, "-i", str(inv), "--on-anomaly", "panic")
    assert policy.returncode == 2 and "--on-anomaly: 'panic' is not one of" in policy.stderr
    param = cli("run", MODEL, "-i", str(inv), "-p", "oops")
    assert param.returncode == 2 and "expected KEY=VALUE" in param.stderr
    for result in (missing, policy, param):
        assert "Traceback" not in result.stderr + result.stdout


def test_resume_unknown_campaign(tmp_path):
    result = cli("resume", "no-such-campaign", env={"CHANGELINE_HOME": str(tmp_path)})
    assert result.returncode == 2 and "no campaign 'no-such-campaign'" in result.stderr
    assert "Traceback" not in result.stderr
