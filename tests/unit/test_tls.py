"""core/tls.py: which addresses need TLS, and how half-given TLS settings are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from agent.config import load_config
from core.errors import InvalidArgument
from core.settings import settings_from_env
from core.tls import ClientTls, ServerTls, check_bind, is_loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.0.1", "localhost", "[::1]", "::1", "LOCALHOST"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "", "10.0.0.5", "argus.example.com", "127.0.0.1.nip.io"])
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_a_non_loopback_bind_needs_tls_or_the_explicit_opt_out() -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_bind("0.0.0.0:8080", tls=None, allow_insecure_bind=False, setting="http_addr")
    assert refused.value.parameter == "http_addr"
    assert "allow_insecure_bind" in str(refused.value) and "tls_cert_file" in str(refused.value)
    check_bind("0.0.0.0:8080", tls=None, allow_insecure_bind=True, setting="http_addr")
    check_bind("0.0.0.0:8080", tls=ServerTls(cert_file="c", key_file="k"), allow_insecure_bind=False, setting="x")
    check_bind("127.0.0.1:0", tls=None, allow_insecure_bind=False, setting="x")


def test_half_configured_server_tls_is_refused() -> None:
    assert ServerTls.from_files(cert_file="", key_file="") is None
    with pytest.raises(InvalidArgument, match="tls_key_file"):
        ServerTls.from_files(cert_file="c.pem", key_file="")
    with pytest.raises(InvalidArgument, match="tls_client_ca_file"):
        ServerTls.from_files(cert_file="", key_file="", client_ca_file="ca.pem")
    with pytest.raises(InvalidArgument, match="tls_key_file"):
        settings_from_env(tls_cert_file="c.pem")


def test_tls_settings_come_from_file_env_and_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "argus.toml"
    config.write_text('tls_cert_file = "file.pem"\ntls_key_file = "file.key"\nallow_insecure_bind = true\n')
    monkeypatch.setenv("ARGUS_TLS_KEY_FILE", "env.key")
    settings = settings_from_env(config_file=config, tls_cert_file="flag.pem")
    assert (settings.tls_cert_file, settings.tls_key_file, settings.allow_insecure_bind) == (
        "flag.pem",
        "env.key",
        True,
    )


def test_unreadable_certificate_is_named_at_start(tmp_path: Path) -> None:
    tls = ServerTls(cert_file=str(tmp_path / "missing.pem"), key_file=str(tmp_path / "missing.key"))
    with pytest.raises(InvalidArgument, match=r"missing\.pem"):
        tls.grpc_credentials()
    with pytest.raises(InvalidArgument, match=r"missing\.pem"):
        tls.ssl_context()


def test_client_tls_is_on_when_asked_or_when_a_file_is_given(tmp_path: Path) -> None:
    assert ClientTls.from_files() is None
    assert ClientTls.from_files(enabled=True) == ClientTls()
    assert ClientTls.from_files(ca_file="ca.pem") == ClientTls(ca_file="ca.pem")
    with pytest.raises(InvalidArgument):
        ClientTls.from_files(cert_file="client.pem")
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ClientTls(ca_file=str(ca_file)).ssl_context()
    assert context.get_ca_certs()[0]["subject"], "the CA is loaded"


def test_agent_tls_keys(tmp_path: Path) -> None:
    base = {"ingest": "ingest:50051", "api_key": "k" * 24}
    assert load_config(env={}, flags=base).client_tls is None
    config = load_config(env={"ARGUS_AGENT_TLS_CA_FILE": "/ca.pem"}, flags=base)
    assert config.client_tls == ClientTls(ca_file="/ca.pem")
    assert load_config(env={"ARGUS_AGENT_TLS": "on"}, flags=base).client_tls == ClientTls()
    flagged = load_config(env={}, flags={**base, "tls_ca_file": "/f.pem", "tls_cert_file": "/c", "tls_key_file": "/k"})
    assert flagged.client_tls == ClientTls(ca_file="/f.pem", cert_file="/c", key_file="/k")
    with pytest.raises(InvalidArgument):
        load_config(env={"ARGUS_AGENT_TLS_CERT_FILE": "/c.pem"}, flags=base)


def test_up_refuses_unreadable_tls_files_before_starting(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from argus.cli import main

    args = ["ingest", "--data-dir", str(tmp_path / "d"), "--ingest-addr", "0.0.0.0:0"]
    args += ["--tls-cert", str(tmp_path / "no.pem"), "--tls-key", str(tmp_path / "no.key")]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 2, done.output
    assert "no.pem" in done.output
    assert not (tmp_path / "d").exists()
