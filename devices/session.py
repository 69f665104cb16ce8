"""One device-session interface over NETCONF (ncclient), CLI (netmiko) and files (paramiko SFTP).

This module is the only place that imports ncclient, netmiko or paramiko. Everything
above it speaks `DeviceSession` and sees only changeline errors: transient ones
(`ConnectError`, `DeviceTimeout`, `SessionDropped`) that callers may retry, and the
rest (`AuthenticationError`, `HostKeyError`, `RpcError`, ...) that they must not.

SSH host keys are always verified against the inventory's known_hosts file; an
unknown or changed key refuses the connection before any credential is sent.
"""

from __future__ import annotations

import functools
import logging
import os
import selectors
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import paramiko
from lxml import etree
from ncclient.manager import Manager, make_device_handler
from ncclient.operations import RPCError as NcRPCError
from ncclient.operations.errors import TimeoutExpiredError
from ncclient.transport import SSHSession
from ncclient.transport import errors as nc_errors
from ncclient.transport.parser import DefaultXMLParser, SAXFilterXMLNotFoundError
from ncclient.transport.session import NetconfBase
from ncclient.xml_ import to_ele

from changeline.devices.configxml import NC_NS
from changeline.errors import (
    AuthenticationError,
    CommandError,
    ConnectError,
    DeviceError,
    DeviceTimeout,
    HostKeyError,
    RpcError,
    SessionDropped,
    StepTimeout,
)

log = logging.getLogger("changeline.session")
# paramiko's transport thread logs every failed handshake (a refused host key, a dropped
# login) at ERROR with its traceback, line by line, before the same error reaches us: we map
# it and report its reason once (a DeviceError), so its own copy would only bury that reason.
for _channel in ("paramiko.transport", "ncclient.transport.ssh"):
    logging.getLogger(_channel).setLevel(logging.CRITICAL)

# ncclient queues each outgoing message for its session thread, which looks at the queue
# once per TICK (0.1 s): every RPC on an idle session waited ~90 ms (../shared/MACHINE.md),
# and a short TICK instead costs CPU in proportion to the sessions open at once (at 0.01 s,
# 100 wake-ups a second per session were ~40% of the session layer's CPU while NEs waited
# on their devices: bench/sim_scale.py --device-sessions). _NetconfSession writes from the
# caller's thread, and its thread only reads: it sleeps until data or the close arrives.
READ_WAKE_S = 5.0  # a bound only: the channel wakes the reader on data and on close


# paramiko's transport thread wakes every _active_check_timeout (0.1 s) to look for a close
# it has not been told about; with two transports per NE that was 20 wake-ups a second per NE,
# each taking the GIL from the threads doing work (bench/sim_scale.py --device-sessions:
# 40% of the client's CPU while 200 NEs each sent one <get> a second). `_Transport.close`
# wakes the thread itself (shutdown), so a longer wait delays nothing we wait for: a close,
# an EOF and every packet wake it at once; a handshake that overruns its timeout ends at most
# this much later.
TRANSPORT_WAKE_S = 1.0
# AES-GCM first: one AEAD pass per packet instead of AES-CTR plus an HMAC computed and
# compared in Python (paramiko's default prefers ctr). The rest of paramiko's list follows for
# NEs without GCM. Key exchange stays paramiko's (mlkem768x25519, then curve25519).
_GCM = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
# What known_hosts calls an RSA key, and the signature algorithms that verify it (paramiko 4
# dropped ssh-rsa's SHA-1 signatures).
_KEY_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256")}


class _Transport(paramiko.Transport):
    """paramiko's client transport with the wake-up and cipher preferences above."""

    _active_check_timeout = TRANSPORT_WAKE_S
    _preferred_ciphers = _GCM + tuple(c for c in paramiko.Transport._preferred_ciphers if c not in _GCM)

    def close(self) -> None:
        if self.active:
            try:  # wakes our thread out of its read now, not at its next TRANSPORT_WAKE_S
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        super().close()


def _client_transport(sock: socket.socket, known: dict[str, paramiko.PKey], *, timeout: float,
                      only_known_types: bool, what: str, endpoint: "Endpoint") -> _Transport:
    """An SSH transport whose key exchange is done and whose host key matched `known` (the
    NE's known_hosts keys by type). `only_known_types` offers only those types (NETCONF, as
    ncclient did: another type fails the negotiation); otherwise they come first (SFTP, as
    paramiko's SSHClient). Channel opens on it are bounded by `timeout`: paramiko's
    channel_timeout is an hour by default."""
    transport = _Transport(sock)
    try:
        ours = [name for kind in known for name in _KEY_ALGORITHMS.get(kind, (kind,)) if name in transport._key_info]
        options = transport.get_security_options()
        options.key_types = ours if only_known_types else ours + [k for k in options.key_types if k not in ours]
        transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = timeout
        transport.channel_timeout = timeout
        transport.start_client(timeout=timeout)
        offered = transport.get_remote_server_key()
        expected = known.get(offered.get_name())
        if expected is None or expected.asbytes() != offered.asbytes():
            raise HostKeyError(f"{what}: host key not trusted (the NE's {offered.get_name()} key "
                               f"{offered.fingerprint} is not the one known_hosts holds for it)", host=endpoint.name)
    except BaseException:
        transport.close()
        raise
    return transport


@contextmanager
def _answered_within(timeout: float, channel: paramiko.Channel, what: str) -> Iterator[None]:
    """The block's requests on an open channel (a subsystem, a pty, a shell) answered within
    `timeout`, else the channel closed and TimeoutError. paramiko waits for such an answer
    without end: an NE that opened the channel and then went down for a restart held the caller
    until the TCP connection died. Closing the channel wakes paramiko's wait from here, whether
    or not the transport's reader still runs."""
    gave_up = threading.Event()

    def give_up() -> None:
        gave_up.set()
        channel.close()

    timer = threading.Timer(timeout, give_up)
    timer.daemon = True
    timer.start()
    try:
        yield
    except Exception as err:
        if gave_up.is_set():
            raise TimeoutError(f"the NE never answered the {what} within {timeout:g} s") from err
        raise
    finally:
        timer.cancel()
    if gave_up.is_set():  # answered just as the time ran out: the channel is closed all the same
        raise TimeoutError(f"the NE never answered the {what} within {timeout:g} s")


def _root_of(raw: str) -> tuple[str, dict[str, str]]:
    """A message's root tag and attributes from its first bytes. ncclient's parse_root runs
    lxml's iterparse over the whole message for this (a quarter of a millisecond for an 8 KiB
    reply here, more than parsing it fully, and the reply is parsed in full twice more)."""
    parser = etree.XMLPullParser(events=("start",), resolve_entities=False, no_network=True)
    for at in range(0, len(raw), 512):
        parser.feed(raw[at:at + 512].encode())
        for _, element in parser.read_events():
            return element.tag, dict(element.attrib)
    raise ValueError("no root element in the message")


class _NetconfSession(SSHSession):
    """ncclient's SSH session, but on a `_Transport` it sets up itself (`open`), and `send`
    frames and writes the message itself (RFC 6242: end-of-message framing for the hello and
    base:1.0, chunked framing once both sides said base:1.1), within `send_timeout_s`. A write
    cut short leaves the framing broken, so the session is closed and the caller sees it
    dropped."""

    send_timeout_s: float = 30.0

    def __init__(self, device_handler) -> None:
        super().__init__(device_handler)
        self._write_lock = threading.Lock()

    def open(self, sock: socket.socket, known: dict[str, paramiko.PKey], *, endpoint: "Endpoint",
             username: str, password: str | None, key_filename: str | None, timeout: float) -> None:
        """What ncclient's SSHSession.connect does for a socket and host keys we hand it."""
        self._host = endpoint.hostname
        self._transport = _client_transport(sock, known, timeout=timeout, only_known_types=True,
                                            what="NETCONF", endpoint=endpoint)
        self._auth(username, password, [key_filename] if key_filename else [], False, False)
        self._connected = True
        self._closing.clear()
        for name in self._device_handler.get_ssh_subsystem_names():
            # Bounded by the transport's channel_timeout: an NE on its way down for a restart
            # can log us in and never answer the open.
            self._channel = self._transport.open_session()
            self._channel_id = self._channel.get_id()
            self._channel.set_name(f"{name}-subsystem-{self._channel_id}")
            try:
                with _answered_within(timeout, self._channel, f"NETCONF {name} subsystem request"):
                    self._channel.invoke_subsystem(name)
            except paramiko.SSHException:
                self._channel.close()
                continue
            self._channel_name = self._channel.get_name()
            self._post_connect(timeout)
            self.parser = self._device_handler.get_xml_parser(self)
            return
        raise nc_errors.SSHError("the NE refused the NETCONF subsystem")

    def _dispatch_message(self, raw: str) -> None:
        """Session._dispatch_message with `_root_of` for the root (and none of SSHSession's
        per-message log lines); a message it cannot read goes through ncclient's own path."""
        try:
            root = _root_of(raw)
        except (etree.XMLSyntaxError, ValueError):
            super()._dispatch_message(raw)
            return
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener.callback(root, raw)

    def run(self) -> None:
        """ncclient's session loop without the send queue (Session.run, ncclient 0.7)."""
        try:
            selector = selectors.DefaultSelector()
            self._transport_register(selector, selectors.EVENT_READ)
            while True:
                if selector.select(timeout=READ_WAKE_S):
                    data = self._transport_read()
                elif self._channel is not None and not self._channel.closed:
                    continue  # an idle session
                else:
                    data = b""  # closed without waking us (closing the channel closes its pipe)
                if data:
                    try:
                        self.parser.parse(data)
                    except SAXFilterXMLNotFoundError:  # as ncclient: a reply its SAX filter cannot take
                        self.parser = DefaultXMLParser(self)
                        self.parser.parse(data)
                elif self._closing.is_set():
                    break  # the end of a session we closed
                else:
                    raise nc_errors.SessionCloseError(self._buffer.getvalue())
        except Exception as err:
            self._dispatch_error(err)
            self.close()

    def send(self, message: str) -> None:
        if not self.connected:
            raise nc_errors.TransportError("Not connected to NETCONF server")
        data = message.encode()
        if self._base == NetconfBase.BASE_11:
            data = b"\n#%d\n%s\n##\n" % (len(data), data)
        else:
            data += b"]]>]]>"
        with self._write_lock:
            try:
                self._channel.settimeout(self.send_timeout_s)
                while data:  # not sendall: it spins forever once the channel has sent its EOF
                    sent = self._channel.send(data)
                    if sent <= 0:
                        raise nc_errors.SessionCloseError(self._buffer.getvalue(), data)
                    data = data[sent:]
            except Exception as err:
                self.close()
                raise nc_errors.TransportError(f"NETCONF write failed: {type(err).__name__} {err}".strip()) from err


def _connect_netconf(sock: socket.socket, known: dict[str, paramiko.PKey], *, endpoint: "Endpoint",
                     device_params: dict, rpc_timeout: float, connect_timeout: float) -> Manager:
    """ncclient.manager.connect_ssh on our socket, host keys and `_NetconfSession`. The device
    handler's extra connect parameters are not taken: some vendors' accept unknown host keys."""
    handler = make_device_handler(device_params)
    session = _NetconfSession(handler)
    session.send_timeout_s = rpc_timeout
    try:
        session.open(sock, known, endpoint=endpoint, username=endpoint.username, password=endpoint.password,
                     key_filename=endpoint.key_file, timeout=connect_timeout)
    except BaseException:
        if session.transport:
            session.close()
        raise
    return Manager(session, handler, timeout=rpc_timeout)


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach one NE. The password is resolved by the caller and never logged."""

    name: str
    hostname: str
    netconf_port: int = 830
    ssh_port: int = 22
    username: str = "admin"
    password: str | None = None
    key_file: str | None = None
    known_hosts: str | None = None
    timeout: float = 30.0
    platform: str = "changeline-ne"  # a row of devices/platforms.py: device_params, device_type

    def __repr__(self) -> str:  # keep the password out of logs and tracebacks
        return f"Endpoint({self.name} {self.hostname}:{self.netconf_port}/{self.ssh_port})"

    @classmethod
    def from_host(cls, host) -> "Endpoint":
        """Build from an inventory `Host` (devices.inventory)."""
        return cls(
            name=host.name, hostname=host.hostname, netconf_port=host.port, ssh_port=host.ssh_port,
            username=host.username, password=host.password(), key_file=host.key_file,
            known_hosts=host.known_hosts, timeout=host.timeout, platform=host.platform,
        )


def _open_socket(endpoint: Endpoint, port: int) -> socket.socket:
    """TCP connect with TCP_NODELAY: paramiko never sets it, costing ~2 x 40 ms of delayed ACK per handshake."""
    try:
        sock = socket.create_connection((endpoint.hostname, port), timeout=min(endpoint.timeout, 10.0))
    except socket.timeout as err:
        raise ConnectError(f"connect to {endpoint.hostname}:{port} timed out", host=endpoint.name) from err
    except OSError as err:
        raise ConnectError(f"connect to {endpoint.hostname}:{port} failed: {err.strerror or err}", host=endpoint.name) from err
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _listening(endpoint: Endpoint, port: int) -> bool:
    try:
        socket.create_connection((endpoint.hostname, port), timeout=min(endpoint.timeout, 2.0)).close()
    except OSError:
        return False
    return True


def known_host_keys(endpoint: Endpoint, port: int) -> dict[str, paramiko.PKey]:
    """The NE's host keys (by key type) from known_hosts, or HostKeyError: we never trust on first use silently."""
    if not endpoint.known_hosts:
        raise HostKeyError("no known_hosts file configured; refusing to connect without host key verification",
                           host=endpoint.name)
    path = Path(endpoint.known_hosts)
    if not path.is_file():
        raise HostKeyError(f"known_hosts file {path} not found", host=endpoint.name)
    lookup = known_hosts_name(endpoint.hostname, port)
    entry = _KnownHosts.of(path).lookup(lookup) or (_KnownHosts.of(path).lookup(endpoint.hostname) if port != 22 else None)
    if not entry:
        raise HostKeyError(f"no host key for {lookup} in {path}; add it after checking its fingerprint",
                           host=endpoint.name)
    return entry


def known_hosts_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


class _KnownHosts:
    """A known_hosts file parsed once per version (size, mtime) and indexed by plain host name.

    paramiko re-reads the file and scans every line on each lookup; with one NE per line
    pair, every connection cost time in proportion to the network's size. Hashed or
    wildcard entries still go through paramiko's own matching.
    """

    _cache: dict[str, tuple[tuple[int, int], "_KnownHosts"]] = {}
    _lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.plain: dict[str, dict[str, paramiko.PKey]] = {}
        self.patterns = paramiko.HostKeys()  # hashed or wildcard names: paramiko matches those
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                entry = paramiko.hostkeys.HostKeyEntry.from_line(line, number)
            except paramiko.SSHException:  # paramiko's own loader skips such lines too
                continue
            if entry is None or entry.key is None:
                continue
            for name in entry.hostnames:
                if name.startswith("|") or any(c in name for c in "*?!"):
                    self.patterns.add(name, entry.key.get_name(), entry.key)
                else:  # the first key of a type wins, as in paramiko's lookup
                    self.plain.setdefault(name, {}).setdefault(entry.key.get_name(), entry.key)

    @classmethod
    def of(cls, path: Path) -> "_KnownHosts":
        stat = path.stat()
        version = (stat.st_size, stat.st_mtime_ns)
        with cls._lock:
            cached = cls._cache.get(str(path))
            if cached is None or cached[0] != version:
                cached = cls._cache[str(path)] = (version, cls(path))
            return cached[1]

    def lookup(self, name: str) -> dict[str, paramiko.PKey] | None:
        found = dict(self.plain.get(name, {}))
        if len(self.patterns):
            for kind, key in (self.patterns.lookup(name) or {}).items():
                found.setdefault(kind, key)
        return found or None


_LOGIN_REFUSED = ("AuthenticationException(", "BadAuthenticationType(", "PartialAuthentication(")
# paramiko's words when the NE offers no host key of a type known_hosts holds for it: its key
# changed type (or it is another machine). Not a dropped session: retrying cannot help.
_KEY_TYPE_MISMATCH = ("no acceptable host key", "can't match requested host key type")


def _key_type_mismatch(err: Exception, endpoint: Endpoint, port: int) -> HostKeyError | None:
    if not any(words in str(err) for words in _KEY_TYPE_MISMATCH):
        return None
    try:
        known = ", ".join(sorted(known_host_keys(endpoint, port)))
    except HostKeyError:
        known = "none"
    return HostKeyError(f"the NE offers no host key of the type known_hosts holds for it ({known}): its host "
                        "key changed type, or this is another machine; check its fingerprint before updating "
                        "known_hosts", host=endpoint.name)


def _map_nc_error(err: Exception, endpoint: Endpoint) -> DeviceError:
    if isinstance(err, DeviceError):
        return err
    if isinstance(err, nc_errors.AuthenticationError):
        # ncclient wraps whatever ended the login, as the repr of paramiko's exception. Only a
        # refusal is an authentication failure; a connection dropped mid-login (an NE going
        # down for its restart) is transient, and retrying it is safe.
        cause = str(err)
        cut_off = "transport shut down or saw EOF" in cause  # how paramiko >= 3.5 words a dropped login
        if not cut_off and (cause.startswith(_LOGIN_REFUSED) or cause == "No authentication methods available"):
            return AuthenticationError("NETCONF authentication failed", host=endpoint.name)
        return SessionDropped(f"NETCONF connection dropped during login: {cause}", host=endpoint.name)
    mismatch = _key_type_mismatch(err, endpoint, endpoint.netconf_port)
    if mismatch is not None:
        return mismatch
    if isinstance(err, TimeoutExpiredError):
        return DeviceTimeout(f"NETCONF reply timed out: {err}", host=endpoint.name)
    if isinstance(err, paramiko.SSHException) and "Timeout opening channel" in str(err):
        # Logged in, but the NE never answered the channel open (one on its way down for a
        # restart): transient, so an NE's restart probes try again instead of giving up.
        return DeviceTimeout(f"NETCONF channel open timed out: {err}", host=endpoint.name)
    if isinstance(err, (nc_errors.SessionCloseError, nc_errors.TransportError, EOFError, ConnectionError)):
        return SessionDropped(f"NETCONF session dropped: {type(err).__name__} {err}".strip(), host=endpoint.name)
    if isinstance(err, paramiko.SSHException):
        # Our own transport's key exchange (_client_transport) raises paramiko's errors as they
        # are; ncclient wrapped them in its TransportError. An NE that resets the connection
        # before its banner ("Error reading SSH protocol banner") is one going down for its
        # restart: an activation's probe met it at N=1,000. A host-key refusal never gets here
        # (HostKeyError above), so whatever paramiko says of the handshake is worth a retry.
        return SessionDropped(f"NETCONF connection lost: SSHException {err}".strip(), host=endpoint.name)
    if isinstance(err, (socket.timeout, TimeoutError)):
        return DeviceTimeout(str(err) or "timed out", host=endpoint.name)
    if isinstance(err, OSError):
        return ConnectError(str(err), host=endpoint.name)
    return DeviceError(f"{type(err).__name__}: {err}", host=endpoint.name)


def _rpc_error(err: NcRPCError, endpoint: Endpoint) -> RpcError:
    info = {"tag": err.tag, "type": err.type, "severity": err.severity, "path": err.path,
            "message": err.message, "info": err.info}
    text = (err.message or "").strip() or err.tag or "rpc-error"
    app_tag = None
    if err.xml is not None:
        found = err.xml.find(f"{{{NC_NS}}}error-app-tag")
        app_tag = found.text if found is not None else None
        info["app_tag"] = app_tag
    return RpcError(f"rpc-error {err.tag}{f' ({app_tag})' if app_tag else ''}: {text}",
                    host=endpoint.name, tag=app_tag or err.tag or "", evidence=info)


CLOSE_TIMEOUT_S = 5.0  # a polite <close-session>; the NE may already be gone


class DeviceSession:
    """NETCONF, CLI and file transfer to one NE, each opened lazily on first use.

    Not thread-safe: one session per worker. `close()` (or the context manager)
    releases everything; `reconnect()` drops all channels so the next call opens
    fresh ones, as needed after an NE restart.
    """

    def __init__(self, endpoint: Endpoint, *, rpc_timeout: float | None = None) -> None:
        from changeline.devices.platforms import PLATFORMS, PlatformError

        if endpoint.platform not in PLATFORMS:
            raise PlatformError(f"{endpoint.name}: unknown platform {endpoint.platform!r} (known: {', '.join(PLATFORMS)})")
        self._platform = PLATFORMS[endpoint.platform]
        self.endpoint = endpoint
        self.rpc_timeout = rpc_timeout or endpoint.timeout
        self._nc = None
        self._cli = None
        self._ssh: _Transport | None = None  # the SFTP client's
        self._sftp: paramiko.SFTPClient | None = None
        # What we learned about the NE that cannot change while it runs (e.g. which contract it speaks).
        self.facts: dict[str, object] = {}
        # A step's time budget (monotonic deadline, and what to say when it is spent): every
        # call checks it and no RPC or CLI read waits past it.
        self._deadline: tuple[float, str] | None = None

    # --- step deadline -----------------------------------------------------------------

    @contextmanager
    def deadline(self, seconds: float | None, what: str) -> Iterator[None]:
        """`with session.deadline(30, "step activate (timeout 900 s)")`: calls inside raise
        StepTimeout once the time is spent, and no single call waits beyond it."""
        if seconds is None:
            yield
            return
        outer, self._deadline = self._deadline, (time.monotonic() + seconds, what)
        try:
            yield
        finally:
            self._deadline = outer

    def time_left(self) -> float | None:
        """Seconds left of the current step's budget (None: no budget); StepTimeout when spent."""
        if self._deadline is None:
            return None
        left = self._deadline[0] - time.monotonic()
        if left <= 0:
            raise StepTimeout(f"{self._deadline[1]} ran out of time", host=self.endpoint.name)
        return left

    def _bounded(self, seconds: float | None) -> float | None:
        left = self.time_left()
        if left is None:
            return seconds
        return left if seconds is None else min(seconds, left)

    # --- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> "DeviceSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self, *, polite: bool = True) -> None:
        """`polite=False` skips <close-session>: for a session the NE has dropped or is about to."""
        nc, self._nc = self._nc, None
        if nc is not None:
            try:
                if polite and nc.connected:
                    nc.timeout = min(self.rpc_timeout, CLOSE_TIMEOUT_S)  # see _call: it may be a dead transport
                    nc.close_session()
            except Exception:  # the NE may already be gone; closing must never raise
                pass
            try:
                nc._session.close()
            except Exception:
                pass
        self._close_cli()
        self._close_ssh()

    def reconnect(self, *, polite: bool = True) -> None:
        self.close(polite=polite)

    def _close_cli(self) -> None:
        cli, self._cli = self._cli, None
        if cli is not None:
            try:
                cli.disconnect()
            except Exception:
                pass

    def _close_ssh(self) -> None:
        sftp, self._sftp = self._sftp, None
        ssh, self._ssh = self._ssh, None
        for thing in (sftp, ssh):
            if thing is not None:
                try:
                    thing.close()
                except Exception:
                    pass

    # --- NETCONF ---------------------------------------------------------------------

    @property
    def netconf(self):
        if self._nc is not None and self._nc.connected:
            return self._nc
        self._nc = None
        ep = self.endpoint
        connect_s = self._bounded(ep.timeout)
        known = known_host_keys(ep, ep.netconf_port)
        sock = _open_socket(ep, ep.netconf_port)
        try:
            self._nc = _connect_netconf(sock, known, endpoint=ep, rpc_timeout=self.rpc_timeout,
                                        connect_timeout=connect_s,
                                        device_params={"name": self._platform.netconf_device or "default"})
        except Exception as err:
            sock.close()
            mapped = _map_nc_error(err, ep)
            if isinstance(mapped, AuthenticationError) and not _listening(ep, ep.netconf_port):
                # Older paramiko reports a connection that died mid-login as a plain
                # "Authentication failed."; an NE that has meanwhile stopped listening went down
                # (say, for its restart) rather than refused us, and trying again later is right.
                mapped = SessionDropped("NETCONF connection dropped during login; the NE stopped listening",
                                        host=ep.name)
            raise mapped from err
        return self._nc

    @property
    def server_capabilities(self) -> set[str]:
        return {str(c) for c in self.netconf.server_capabilities}

    def has_capability(self, short: str) -> bool:
        """`has_capability(':candidate')`: matches on the capability name, any version."""
        name = short.lstrip(":")
        return any(c.split("?")[0].rsplit(":", 2)[-2] == name for c in self.server_capabilities
                   if c.startswith("urn:ietf:params:netconf:capability:"))

    def _call(self, what: str, fn, *args, _timeout: float | None = None, **kwargs):
        # `_timeout` bounds this one RPC instead of rpc_timeout; so does the step's deadline.
        # Probes that must notice a restart fast need it: ncclient has a window where an RPC
        # sent just as the peer drops the session is queued on a transport whose reader already
        # gave up, and nobody answers it for the whole RPC timeout (seen: 30 s after an activation).
        limit = self._bounded(_timeout)
        nc = self._nc
        if limit is not None and nc is not None:
            nc.timeout = nc._session.send_timeout_s = max(0.5, limit)
        try:
            return fn(*args, **kwargs)
        except NcRPCError as err:
            raise _rpc_error(err, self.endpoint) from err
        except Exception as err:
            mapped = _map_nc_error(err, self.endpoint)
            if isinstance(mapped, (SessionDropped, DeviceTimeout)):
                self._nc = None
                if self._deadline is not None:
                    self.time_left()  # a timeout because the step's time ran out says so
            raise mapped from err
        finally:
            if limit is not None and nc is not None:
                nc.timeout = nc._session.send_timeout_s = self.rpc_timeout

    def get(self, filter_xml: str | None = None, *, timeout: float | None = None) -> etree._Element:
        """`timeout` bounds this one RPC (e.g. probes while an NE restarts) instead of rpc_timeout."""
        nc = self.netconf
        reply = self._call("get", nc.get, filter=("subtree", filter_xml) if filter_xml else None, _timeout=timeout)
        return _data(reply)

    def get_config(self, source: str = "running", filter_xml: str | None = None) -> etree._Element:
        nc = self.netconf
        reply = self._call("get-config", nc.get_config, source=source,
                           filter=("subtree", filter_xml) if filter_xml else None)
        return _data(reply)

    def edit_config(self, config: str | etree._Element, *, target: str = "candidate",
                    default_operation: str | None = None, test_option: str | None = None,
                    error_option: str | None = "rollback-on-error") -> None:
        nc = self.netconf
        if isinstance(config, etree._Element):
            config = etree.tostring(config, encoding="unicode")
        if error_option == "rollback-on-error" and not self.has_capability(":rollback-on-error"):
            error_option = None
        self._call("edit-config", nc.edit_config, config=config, target=target,
                   default_operation=default_operation, test_option=test_option, error_option=error_option)

    def copy_config(self, source: str | etree._Element, target: str) -> None:
        nc = self.netconf
        if isinstance(source, etree._Element):
            source = etree.tostring(source, encoding="unicode")
        self._call("copy-config", nc.copy_config, source=source, target=target)

    def validate(self, source: str | etree._Element = "candidate") -> None:
        """Validate a datastore, or an inline `<config>` element."""
        self._call("validate", self.netconf.validate, source=source)

    def discard_changes(self) -> None:
        self._call("discard-changes", self.netconf.discard_changes)

    def commit(self, *, confirmed: bool = False, timeout: int | None = None,
               persist: str | None = None, persist_id: str | None = None) -> None:
        kwargs: dict = {"confirmed": confirmed}
        if timeout is not None:
            kwargs["timeout"] = str(int(timeout))
        if persist is not None:
            kwargs["persist"] = persist
        if persist_id is not None:
            kwargs["persist_id"] = persist_id
        self._call("commit", self.netconf.commit, **kwargs)

    def cancel_commit(self, persist_id: str | None = None) -> None:
        self._call("cancel-commit", self.netconf.cancel_commit, persist_id=persist_id)

    def lock(self, target: str = "candidate") -> None:
        self._call("lock", self.netconf.lock, target)

    def unlock(self, target: str = "candidate") -> None:
        self._call("unlock", self.netconf.unlock, target)

    @contextmanager
    def locked(self, target: str = "candidate") -> Iterator[None]:
        self.lock(target)
        try:
            yield
        finally:
            try:
                if self._nc is not None and self._nc.connected:
                    self.unlock(target)
            except DeviceError as err:  # the session may have dropped: the NE released the lock then
                log.debug("unlock %s on %s: %s", target, self.endpoint.name, err.reason)

    def rpc(self, request: str | etree._Element) -> etree._Element:
        """Send any RPC body (e.g. a vendor lifecycle RPC); returns the <rpc-reply> element."""
        if isinstance(request, str):
            request = to_ele(request)
        reply = self._call("rpc", self.netconf.dispatch, request)
        return _reply_root(reply)

    # --- CLI ---------------------------------------------------------------------------

    def cli(self, command: str, *, read_timeout: float | None = None) -> str:
        self.time_left()
        conn = self._cli_connection()
        try:
            output = conn.send_command(command, read_timeout=self._bounded(read_timeout or self.endpoint.timeout))
        except Exception as err:
            self._close_cli()
            raise _map_ssh_error(err, self.endpoint, "CLI") from err
        if output.lstrip().startswith("% "):
            raise CommandError(f"'{command}' rejected: {output.strip()}", host=self.endpoint.name)
        return output

    def _cli_connection(self):
        if self._cli is not None and self._cli.is_alive():
            return self._cli
        ep = self.endpoint
        known_host_keys(ep, ep.ssh_port)  # fail early with a clear reason
        sock = _open_socket(ep, ep.ssh_port)
        try:
            device_type = self._platform.cli_device or "generic"
            self._cli = _cli_driver(device_type)(
                device_type=device_type, host=ep.hostname, port=ep.ssh_port, username=ep.username,
                password=ep.password or "", key_file=ep.key_file, use_keys=bool(ep.key_file),
                allow_agent=False, ssh_strict=True, system_host_keys=False, alt_host_keys=True,
                alt_key_file=ep.known_hosts, sock=sock, conn_timeout=ep.timeout, fast_cli=True,
            )
            if not self._cli.base_prompt:  # drivers without session preparation (`generic`) learn it here
                self._cli.set_base_prompt()
            if self._platform.cli_enable:
                self._cli.enable()
            for command in self._platform.cli_on_open:
                self._cli.send_command(command)
        except Exception as err:
            sock.close()
            mapped = _map_ssh_error(err, ep, "CLI")
            if isinstance(mapped, AuthenticationError) and not _listening(ep, ep.ssh_port):
                # As for NETCONF above: an NE that stopped listening mid-login is restarting.
                mapped = SessionDropped("CLI connection dropped during login; the NE stopped listening", host=ep.name)
            raise mapped from err
        return self._cli

    # --- files -------------------------------------------------------------------------

    @property
    def sftp(self) -> paramiko.SFTPClient:
        self.time_left()
        if self._sftp is not None and self._ssh is not None and self._ssh.is_active():
            return self._sftp
        self._close_ssh()
        ep = self.endpoint
        known = known_host_keys(ep, ep.ssh_port)
        sock = _open_socket(ep, ep.ssh_port)
        try:
            self._ssh = _client_transport(sock, known, timeout=ep.timeout, only_known_types=False, what="SFTP",
                                          endpoint=ep)
            _login(self._ssh, ep)
            self._sftp = paramiko.SFTPClient.from_transport(self._ssh)  # the open bounded by channel_timeout
            self._sftp.get_channel().settimeout(ep.timeout)
        except Exception as err:
            self._close_ssh()
            sock.close()
            raise _map_ssh_error(err, ep, "SFTP") from err
        return self._sftp

    def put_file(self, local: str | Path, remote: str) -> int:
        size = os.path.getsize(local)
        try:
            self.sftp.put(str(local), remote, confirm=True)
        except Exception as err:
            self._close_ssh()
            raise _map_ssh_error(err, self.endpoint, "SFTP put") from err
        return size

    def read_file(self, remote: str) -> bytes:
        try:
            with self.sftp.open(remote, "rb") as fh:
                return fh.read()
        except Exception as err:
            raise _map_ssh_error(err, self.endpoint, "SFTP read") from err

    def list_dir(self, remote: str) -> list[str]:
        try:
            return sorted(self.sftp.listdir(remote))
        except Exception as err:
            raise _map_ssh_error(err, self.endpoint, "SFTP list") from err


class _BoundedSSHClient(paramiko.SSHClient):
    """netmiko's SSH client, with its shell channel's open bounded by `channel_timeout`:
    netmiko passes none, and paramiko then waits an hour for an NE that logged us in and
    never answers the open (one on its way down for a restart); so are the pty and shell
    requests on it, which paramiko waits for without end. A failure closes the transport,
    which netmiko would otherwise leave running."""

    def __init__(self, channel_timeout: float) -> None:
        super().__init__()
        self.channel_timeout = channel_timeout

    def connect(self, *args, **kwargs) -> None:
        super().connect(*args, channel_timeout=self.channel_timeout, **kwargs)

    def invoke_shell(self, term: str = "vt100", width: int = 80, height: int = 24, width_pixels: int = 0,
                     height_pixels: int = 0, environment: dict | None = None) -> paramiko.Channel:
        # paramiko's SSHClient.invoke_shell (which ignores `environment` too), its requests bounded.
        try:
            channel = self._transport.open_session()  # bounded by channel_timeout
            with _answered_within(self.channel_timeout, channel, "CLI pty and shell requests"):
                channel.get_pty(term, width, height, width_pixels, height_pixels)
                channel.invoke_shell()
            return channel
        except BaseException:
            self.close()
            raise


@functools.cache
def _cli_driver(device_type: str) -> type:
    """netmiko's driver class for `device_type` on a `_BoundedSSHClient` (bound: its conn_timeout)."""
    from netmiko.ssh_dispatcher import CLASS_MAPPER

    if device_type not in CLASS_MAPPER:
        raise DeviceError(f"netmiko has no driver {device_type!r}")
    base = CLASS_MAPPER[device_type]
    return type(f"Bounded{base.__name__}", (base,),
                {"_get_ssh_client_instance": lambda self: _BoundedSSHClient(self.conn_timeout)})


def _login(transport: paramiko.Transport, endpoint: Endpoint) -> None:
    """The key file if there is one, else (or if it is refused) the password, as SSHClient tries them."""
    refused: Exception | None = None
    if endpoint.key_file:
        try:
            transport.auth_publickey(endpoint.username, paramiko.PKey.from_path(
                endpoint.key_file, endpoint.password.encode() if endpoint.password else None))
            return
        except paramiko.AuthenticationException as err:
            refused = err
    if endpoint.password is not None:
        transport.auth_password(endpoint.username, endpoint.password)
        return
    raise refused or paramiko.AuthenticationException("no key file and no password")


def _map_ssh_error(err: Exception, endpoint: Endpoint, what: str) -> DeviceError:
    if isinstance(err, DeviceError):
        return err
    mismatch = _key_type_mismatch(err, endpoint, endpoint.ssh_port)
    if mismatch is not None:
        return mismatch
    name = type(err).__name__
    if isinstance(err, paramiko.AuthenticationException) or "Authentication" in name:
        return AuthenticationError(f"{what} authentication failed", host=endpoint.name)
    if isinstance(err, paramiko.BadHostKeyException) or (isinstance(err, paramiko.SSHException)
                                                         and "not found in known_hosts" in str(err)):
        return HostKeyError(f"{what}: host key not trusted ({err})", host=endpoint.name)
    if isinstance(err, FileNotFoundError) or (isinstance(err, IOError) and getattr(err, "errno", None) == 2):
        return DeviceError(f"{what}: no such file: {err}", host=endpoint.name)
    if isinstance(err, PermissionError):
        return DeviceError(f"{what}: permission denied: {err}", host=endpoint.name)
    if isinstance(err, paramiko.SSHException) and "Timeout opening channel" in str(err):
        # As for NETCONF: logged in, the open never answered; transient, so probes try again.
        return DeviceTimeout(f"{what} channel open timed out: {err}", host=endpoint.name)
    if "Timeout" in name or isinstance(err, (socket.timeout, TimeoutError)):
        return DeviceTimeout(f"{what} timed out: {err}", host=endpoint.name)
    if isinstance(err, (EOFError, ConnectionError, paramiko.SSHException, OSError)):
        return SessionDropped(f"{what} connection lost: {name} {err}".strip(), host=endpoint.name)
    return DeviceError(f"{what}: {name}: {err}", host=endpoint.name)


def _data(reply) -> etree._Element:
    """The <data> element of a get/get-config reply (an empty one if the NE sent nothing)."""
    root = _reply_root(reply)
    data = root.find(f"{{{NC_NS}}}data")
    return data if data is not None else etree.Element(f"{{{NC_NS}}}data")


def _reply_root(reply) -> etree._Element:
    return etree.fromstring(reply.xml.encode() if isinstance(reply.xml, str) else reply.xml,
                            parser=etree.XMLParser(remove_blank_text=True, resolve_entities=False))

