"""How device-library errors map onto changeline's hierarchy (no devices): what is retried."""

from __future__ import annotations

import paramiko
from ncclient.transport import errors as nc_errors

from changeline.devices.session import Endpoint, _map_nc_error
from changeline.errors import AuthenticationError, SessionDropped, TransientError

ENDPOINT = Endpoint(name="amf-1", hostname="127.0.0.1")


def test_a_refused_login_is_an_authentication_error_not_retried():
    for cause in (paramiko.AuthenticationException("Authentication failed."),
                  paramiko.BadAuthenticationType("Bad authentication type", ["publickey"])):
        mapped = _map_nc_error(nc_errors.AuthenticationError(repr(cause)), ENDPOINT)
        assert isinstance(mapped, AuthenticationError) and not isinstance(mapped, TransientError), cause


def test_a_connection_dropped_during_login_is_transient():
    # ncclient reports any exception during login as AuthenticationError(repr(exc)); an NE that
    # goes down for its restart while we log in ends the login with one of these.
    for cause in (paramiko.SSHException("No existing session"), EOFError(),
                  paramiko.AuthenticationException("Authentication failed: transport shut down or saw EOF")):
        mapped = _map_nc_error(nc_errors.AuthenticationError(repr(cause)), ENDPOINT)
        assert isinstance(mapped, SessionDropped) and isinstance(mapped, TransientError), cause
        assert "dropped during login" in mapped.reason
