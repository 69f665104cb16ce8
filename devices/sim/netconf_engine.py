"""The NETCONF protocol engine of one simulated NE (RFC 6241), without any socket I/O.

The transport (netconf_server.py) turns bytes into calls: `new_session`, `hello`,
`accept_hello`, `handle` per message, `end_session` when the connection goes. The engine
holds the datastores (running, candidate, startup), locks and the pending confirmed
commit, and dispatches RPCs: the standard operations plus those the NE behaviour
registers with `register_rpc`.

Session ending has two directions. When an RPC ends its own session (close-session, an
injected drop) `handle` returns and the session is gone from `sessions`: the transport
sends the reply, if any, then closes. When the engine ends another session (kill-session,
`drop_all_sessions`) it calls that session's `close` callback.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from lxml import etree

from changeline.catalogue import NE_NAMESPACE
from changeline.devices.datastore import (
    DEFAULT_OPERATIONS,
    NC_NS,
    DataError,
    apply_edit,
    check_structure,
    config_root,
    elements,
    subtree_filter,
)
from changeline.devices.sim.yang_library import (
    MONITORING_NS,
    ModuleSet,
    SchemaLookupError,
    modules_state_element,
    ne_module_set,
    netconf_state_element,
    select_schema,
    yang_library_element,
)
from changeline.errors import ChangelineError

logger = logging.getLogger(__name__)

BASE_1_0 = "urn:ietf:params:netconf:base:1.0"
BASE_1_1 = "urn:ietf:params:netconf:base:1.1"
_CAP = "urn:ietf:params:netconf:capability:"
BASE_CAPABILITIES = (
    BASE_1_0,
    BASE_1_1,
    _CAP + "writable-running:1.0",
    _CAP + "candidate:1.0",
    _CAP + "confirmed-commit:1.0",
    _CAP + "confirmed-commit:1.1",
    _CAP + "rollback-on-error:1.0",
    _CAP + "validate:1.0",
    _CAP + "validate:1.1",
    _CAP + "startup:1.0",
)
NE_MODULE_CAPABILITY = f"{NE_NAMESPACE}?module=changeline-ne&revision=2026-11-25"

DATASTORES = ("running", "candidate", "startup")
DEFAULT_CONFIRM_TIMEOUT = 600.0
TEST_OPTIONS = ("test-then-set", "set", "test-only")
ERROR_OPTIONS = ("stop-on-error", "continue-on-error", "rollback-on-error")
DROP_BEFORE = "drop-before"
DROP_AFTER = "drop-after"

_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# XML whitespace. Clients send a newline after the previous `]]>]]>` or before `<?xml`
# (scrapli's hello does); an XML declaration must start its document, so it is skipped.
_XML_SPACE = b" \t\r\n"
# No DTDs, no entity expansion, no network: a client message is untrusted input.
_PARSER = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True,
                          load_dtd=False)


def _nc(name: str) -> str:
    return f"{{{NC_NS}}}{name}"


class RpcFault(ChangelineError):
    """Raised by an RPC handler to answer with an `<rpc-error>` (RFC 6241 section 4.3)."""

    def __init__(self, tag: str, message: str, *, app_tag: str | None = None,
                 error_type: str = "application", severity: str = "error",
                 path: str | None = None, path_namespaces: dict[str, str] | None = None,
                 info: dict | None = None) -> None:
        super().__init__(message)
        self.tag = tag
        self.message = message
        self.app_tag = app_tag
        self.error_type = error_type
        self.severity = severity
        self.path = path
        self.path_namespaces = path_namespaces or {}
        self.info = info or {}

    @classmethod
    def from_data_error(cls, error: DataError) -> RpcFault:
        return cls(error.tag, error.reason, app_tag=error.app_tag, error_type=error.error_type,
                   path=error.path, path_namespaces=error.path_namespaces, info=error.info)

    def to_element(self, *, base_1_1: bool) -> etree._Element:
        """The `<rpc-error>` as a peer speaking base:1.1 (or only 1.0) may receive it."""
        error = etree.Element(_nc("rpc-error"), nsmap={None: NC_NS})
        etree.SubElement(error, _nc("error-type")).text = self.error_type
        etree.SubElement(error, _nc("error-tag")).text = error_tag_for(self.tag, base_1_1=base_1_1)
        etree.SubElement(error, _nc("error-severity")).text = self.severity
        if self.app_tag:
            etree.SubElement(error, _nc("error-app-tag")).text = self.app_tag
        if self.path:
            etree.SubElement(error, _nc("error-path"), nsmap=self.path_namespaces).text = self.path
        message = etree.SubElement(error, _nc("error-message"))
        message.set(_XML_LANG, "en")
        message.text = self.message
        if self.info:
            info = etree.SubElement(error, _nc("error-info"))
            for name, value in self.info.items():
                etree.SubElement(info, _nc(name)).text = str(value)
        return error


def error_tag_for(tag: str, *, base_1_1: bool) -> str:
    """RFC 6241 appendix A: malformed-message is new in base:1.1 and MUST NOT be sent to a
    1.0 peer; for it the same failure is operation-failed, 1.0's catch-all."""
    if tag == "malformed-message" and not base_1_1:
        return "operation-failed"
    return tag


class HelloError(ChangelineError):
    """The client's hello is unusable; RFC 6241 section 8.1 says drop the session."""


@dataclass
class RpcContext:
    """What a handler knows about the request besides the operation element."""

    session_id: int
    engine: NetconfEngine
    message_id: str | None


RpcHandler = Callable[[RpcContext, etree._Element], Awaitable[etree._Element | None]]


@dataclass
class _ConfirmedCommit:
    owner: int
    persist: str | None
    rollback: etree._Element
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class NetconfEngine:
    """One NE's NETCONF server state and operations."""

    def __init__(self, *, config: etree._Element,
                 capabilities: Iterable[str] = (NE_MODULE_CAPABILITY,),
                 state_provider: Callable[[], list[etree._Element]] | None = None,
                 validator: Callable[[etree._Element], None] | None = None,
                 modules: ModuleSet | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        """`config` is a `<config>`-style root holding the NE's top containers; it becomes
        running (and candidate). `validator`, if given, is called with a copy of a
        datastore root before it is committed or validated and raises `RpcFault` to refuse
        it (the NE's own data rules; structure is always checked). `modules` are the YANG
        modules the YANG library lists and `<get-schema>` serves (default: the simulator's
        yang/ folder); `now` stamps lock times in the monitoring state."""
        self.modules = modules or ne_module_set(BASE_CAPABILITIES)
        self.capabilities: list[str] = [*BASE_CAPABILITIES, *capabilities,
                                        *self.modules.capabilities()]
        self._now = now
        self.state_provider = state_provider
        self.validator = validator
        self.before_rpc: Callable[[int, str], Awaitable[str | None]] | None = None
        self.accepting = True  # False while the NE is down: no new session may start
        running = config_root(elements(config))
        self._datastores: dict[str, etree._Element] = {
            "running": running, "candidate": copy.deepcopy(running)}
        self._candidate_dirty = False
        self._sessions: dict[int, Callable[[], None]] = {}  # id -> close callback
        self._session_ids = itertools.count(1)
        self._locks: dict[str, int] = {}
        self._locked_at: dict[str, str] = {}  # datastore -> when its current lock was taken
        self._base_1_1: set[int] = set()  # sessions whose hello offered base:1.1
        self._confirmed: _ConfirmedCommit | None = None
        self._handlers: dict[tuple[str, str], RpcHandler] = {
            (NC_NS, name): getattr(self, "_op_" + name.replace("-", "_"))
            for name in ("get", "get-config", "edit-config", "copy-config", "delete-config",
                         "lock", "unlock", "validate", "commit", "cancel-commit",
                         "discard-changes", "close-session", "kill-session")}
        self._handlers[(MONITORING_NS, "get-schema")] = self._op_get_schema
        # The library does not change while the NE runs: built once, copied per <get>.
        self._library_state = {
            "yang-library": yang_library_element(self.modules, DATASTORES),
            "modules-state": modules_state_element(self.modules),
        }

    # --- public API for the transport and the NE behaviour ---------------------------

    def register_rpc(self, namespace: str, name: str, handler: RpcHandler) -> None:
        """Serve `<name xmlns=namespace>`; replaces any earlier handler of that name."""
        self._handlers[(namespace, name)] = handler

    @property
    def sessions(self) -> list[int]:
        return sorted(self._sessions)

    def has_session(self, session_id: int) -> bool:
        return session_id in self._sessions

    @property
    def confirmed_commit_pending(self) -> bool:
        return self._confirmed is not None

    def locked_by(self, datastore: str) -> int | None:
        return self._locks.get(datastore)

    def has_datastore(self, name: str) -> bool:
        return name in self._datastores

    def get_datastore(self, name: str) -> etree._Element:
        """A deep copy of a datastore root; KeyError if it does not exist (startup before
        the first copy-config to it)."""
        return copy.deepcopy(self._datastores[name])

    def set_datastore(self, name: str, tree: etree._Element) -> None:
        if name not in DATASTORES:
            raise KeyError(name)
        self._store(name, config_root(elements(tree)))

    def new_session(self, close: Callable[[], None]) -> int:
        session_id = next(self._session_ids)
        self._sessions[session_id] = close
        return session_id

    def end_session(self, session_id: int) -> None:
        """Forget a session: a non-persisted confirmed commit it made is reverted (RFC 6241
        section 8.4.1), its locks released, and the candidate changes discarded if it held
        the candidate lock. Idempotent."""
        if self._sessions.pop(session_id, None) is None:
            return
        self._base_1_1.discard(session_id)
        pending = self._confirmed
        if pending and pending.owner == session_id and pending.persist is None:
            self._revert_confirmed_commit(pending)
        for datastore, holder in list(self._locks.items()):
            if holder == session_id:
                del self._locks[datastore]
                if datastore == "candidate":
                    self._discard_candidate()

    def drop_all_sessions(self) -> None:
        """An NE restart: every session's transport is closed and the session ended. A
        pending confirmed commit, persisted or not, is reverted, as a reboot must."""
        for session_id, close in list(self._sessions.items()):
            close()
            self.end_session(session_id)
        if self._confirmed:
            self._revert_confirmed_commit(self._confirmed)

    def hello(self, session_id: int) -> bytes:
        hello = etree.Element(_nc("hello"), nsmap={None: NC_NS})
        capabilities = etree.SubElement(hello, _nc("capabilities"))
        for uri in self.capabilities:
            etree.SubElement(capabilities, _nc("capability")).text = uri
        etree.SubElement(hello, _nc("session-id")).text = str(session_id)
        return _to_bytes(hello)

    def accept_hello(self, session_id: int, message: bytes) -> bool:
        """Read the client's hello; True when both sides speak base:1.1 (chunked framing
        from now on). Raises HelloError when the session must not continue."""
        try:
            hello = etree.fromstring(message.lstrip(_XML_SPACE), _PARSER)
        except etree.XMLSyntaxError as err:
            raise HelloError(f"malformed hello: {err}") from err
        if hello.tag != _nc("hello"):
            raise HelloError(f"expected <hello>, got <{etree.QName(hello).localname}>")
        if hello.find(_nc("session-id")) is not None:
            raise HelloError("a client hello must not carry a session-id")
        offered = frozenset((c.text or "").strip()
                            for c in hello.iterfind(f"{_nc('capabilities')}/{_nc('capability')}"))
        if not offered & {BASE_1_0, BASE_1_1}:
            raise HelloError("client offers no NETCONF base capability")
        base_1_1 = BASE_1_1 in offered and BASE_1_1 in self.capabilities
        if base_1_1:
            self._base_1_1.add(session_id)
        return base_1_1

    async def handle(self, session_id: int, message: bytes) -> bytes | None:
        """Process one `<rpc>` message; returns the `<rpc-reply>`, or None when there is
        nothing to send (the session is gone)."""
        if session_id not in self._sessions:
            return None
        base_1_1 = session_id in self._base_1_1
        try:
            rpc = _parse_rpc(message)
        except RpcFault as fault:
            return _to_bytes(_reply(None, [fault.to_element(base_1_1=base_1_1)]))
        operations = list(elements(rpc))
        if len(operations) != 1:
            fault = RpcFault("malformed-message", "an <rpc> holds exactly one operation",
                             error_type="rpc", info={"bad-element": "rpc"})
            return _to_bytes(_reply(rpc, [fault.to_element(base_1_1=base_1_1)]))
        operation = operations[0]
        action = None
        if self.before_rpc is not None:
            action = await self.before_rpc(session_id, etree.QName(operation).localname)
            if action not in (None, DROP_BEFORE, DROP_AFTER):
                raise ValueError(f"before_rpc returned unknown action {action!r}")
        if session_id not in self._sessions:  # killed or dropped while the hook waited
            return None
        if action == DROP_BEFORE:
            self.end_session(session_id)
            return None
        reply = await self._dispatch(session_id, rpc, operation)
        if action == DROP_AFTER:
            self.end_session(session_id)
            return None
        return _to_bytes(reply)

    # --- dispatch --------------------------------------------------------------------

    async def _dispatch(self, session_id: int, rpc: etree._Element,
                        operation: etree._Element) -> etree._Element:
        qname = etree.QName(operation)
        handler = self._handlers.get((qname.namespace or "", qname.localname))
        context = RpcContext(session_id=session_id, engine=self, message_id=rpc.get("message-id"))
        try:
            if handler is None:
                raise RpcFault("operation-not-supported", f"unknown operation <{qname.localname}>",
                               error_type="protocol")
            result = await handler(context, operation)
        except Exception as error:  # every failure must reach the client as an rpc-error
            base_1_1 = session_id in self._base_1_1
            return _reply(rpc, [fault.to_element(base_1_1=base_1_1) for fault in _as_faults(error)])
        return _reply(rpc, [result if result is not None else etree.Element(_nc("ok"))])

    # --- standard operations ---------------------------------------------------------

    async def _op_get(self, ctx: RpcContext, op: etree._Element) -> etree._Element:
        _only_params(op, "filter")
        selector = _filter(op)
        data = subtree_filter(self._datastores["running"], selector)
        data.tag = _nc("data")
        state = etree.Element(_nc("data"))
        if self.state_provider is not None:
            state.extend(copy.deepcopy(node) for node in self.state_provider())
        state.extend(self._server_state(_top_names(selector)))
        data.extend(list(elements(subtree_filter(state, selector))))
        return data

    def _server_state(self, wanted: frozenset[str] | None) -> list[etree._Element]:
        """The YANG library and monitoring trees a `<get>` may select (`wanted`: the local
        names its filter asks for at the top, None for all). A thousand NEs answer
        filtered `<get>`s all day: what no filter names is not even built."""
        nodes = [copy.deepcopy(node) for name, node in self._library_state.items()
                 if wanted is None or name in wanted]
        if wanted is None or "netconf-state" in wanted:
            locks = {name: (holder, self._locked_at[name]) for name, holder in self._locks.items()}
            nodes.append(netconf_state_element(self.modules, self.capabilities, DATASTORES, locks))
        return nodes

    async def _op_get_schema(self, ctx: RpcContext, op: etree._Element) -> etree._Element:
        """RFC 6022 section 3.1: the text of a module the library lists."""
        args: dict[str, etree._Element] = {}
        for child in elements(op):
            name = etree.QName(child)
            if name.namespace not in (MONITORING_NS, None) or name.localname not in (
                    "identifier", "version", "format"):
                raise RpcFault("unknown-element", f"unexpected <{name.localname}> in <get-schema>",
                               error_type="protocol", info={"bad-element": name.localname})
            args[name.localname] = child
        if "identifier" not in args:
            raise RpcFault("missing-element", "<get-schema> needs <identifier>",
                           error_type="protocol", info={"bad-element": "identifier"})
        if "format" in args and not _is_yang_format(args["format"]):
            raise RpcFault("invalid-value", "only the yang format is served",
                           info={"bad-element": "format"})
        version = args.get("version")
        try:
            module = select_schema(self.modules, (args["identifier"].text or "").strip(),
                                   None if version is None else (version.text or "").strip())
        except SchemaLookupError as err:
            raise RpcFault(err.tag, str(err), app_tag=err.app_tag) from err
        data = etree.Element(f"{{{MONITORING_NS}}}data", nsmap={None: MONITORING_NS})
        data.text = module.text
        return data

    async def _op_get_config(self, ctx: RpcContext, op: etree._Element) -> etree._Element:
        _only_params(op, "source", "filter")
        source = self._existing(self._datastore_param(op, "source", DATASTORES))
        data = subtree_filter(source, _filter(op))
        data.tag = _nc("data")
        return data

    async def _op_edit_config(self, ctx: RpcContext, op: etree._Element) -> None:
        _only_params(op, "target", "default-operation", "test-option", "error-option",
                     "config", "url")
        target = self._datastore_param(op, "target", ("running", "candidate"))
        self._check_writable(ctx.session_id, target)
        if _param(op, "url") is not None:
            raise RpcFault("operation-not-supported", "the :url capability is not supported")
        config = _required(op, "config")
        default_operation = _choice(op, "default-operation", DEFAULT_OPERATIONS)
        test_option = _choice(op, "test-option", TEST_OPTIONS)
        error_option = _choice(op, "error-option", ERROR_OPTIONS)
        edited = copy.deepcopy(self._datastores[target])
        errors = apply_edit(edited, config, default_operation=default_operation,
                            stop_on_error=error_option != "continue-on-error")
        faults = [RpcFault.from_data_error(e) for e in errors]
        if faults and error_option == "rollback-on-error":
            _raise_all(faults)
        if test_option != "set":
            invalid = self._validation_faults(edited)
            if invalid:
                _raise_all(faults + invalid)
        if test_option != "test-only":
            # stop-on-error and continue-on-error keep what was applied before or
            # besides the errors, which are still reported.
            self._store(target, config_root(elements(edited)))
        _raise_all(faults)
        return None

    async def _op_copy_config(self, ctx: RpcContext, op: etree._Element) -> None:
        _only_params(op, "target", "source")
        target = self._datastore_param(op, "target", DATASTORES)
        source = self._datastore_param(op, "source", DATASTORES, inline=True)
        if source == target:
            raise RpcFault("invalid-value", "source and target are the same datastore")
        self._check_writable(ctx.session_id, target)
        tree = self._existing(source) if isinstance(source, str) else source
        faults = [RpcFault.from_data_error(e) for e in check_structure(tree)]
        if target == "running":
            faults += self._validation_faults(tree)
        _raise_all(faults)
        self._store(target, config_root(elements(tree)))
        return None

    async def _op_delete_config(self, ctx: RpcContext, op: etree._Element) -> None:
        _only_params(op, "target")
        target = self._datastore_param(op, "target", ("startup",))
        self._check_writable(ctx.session_id, target)
        self._datastores.pop(target, None)
        return None

    async def _op_lock(self, ctx: RpcContext, op: etree._Element) -> None:
        _only_params(op, "target")
        target = self._datastore_param(op, "target", DATASTORES)
        holder = self._locks.get(target)
        if holder is not None:
            raise RpcFault("lock-denied", f"{target} is already locked by session {holder}",
                           error_type="protocol", info={"session-id": holder})
        if target == "candidate" and self._candidate_dirty:
            # RFC 6241 section 8.3.5.1; session-id 0: the changes belong to no lock holder.
            raise RpcFault("lock-denied", "candidate has uncommitted changes",
                           error_type="protocol", info={"session-id": 0})
        self._locks[target] = ctx.session_id
        self._locked_at[target] = _date_and_time(self._now())
        return None

    async def _op_unlock(self, ctx: RpcContext, op: etree._Element) -> None:
        _only_params(op, "target")
        target = self._datastore_param(op, "target", DATASTORES)
        holder = self._locks.get(target)
        if holder != ctx.session_id:
            info = {"session-id": holder} if holder is not None else None
            raise RpcFault("operation-failed", f"{target} is not locked by this session",
                           error_type="protocol", info=info)
        # The candidate keeps uncommitted changes over an unlock (only a session ending
        # while holding the lock discards them): the client may still commit.
        del self._locks[target]
        return None

    async def _op_validate(self, ctx: RpcContext, op: etree._Element) -> None:
        _only_params(op, "source")
        source = self._datastore_param(op, "source", DATASTORES, inline=True)
        tree = self._existing(source) if isinstance(source, str) else source
        _raise_all([RpcFault.from_data_error(e) for e in check_structure(tree)]
                   + self._validation_faults(tree))
        return None

    async def _op_commit(self, ctx: RpcContext, op: etree._Element) -> None:
        _only_params(op, "confirmed", "confirm-timeout", "persist", "persist-id")
        # Commit writes running and publishes the candidate: a lock on either by someone
        # else protects work in progress.
        self._check_writable(ctx.session_id, "running")
        self._check_writable(ctx.session_id, "candidate")
        confirmed = _param(op, "confirmed") is not None
        timeout = _confirm_timeout(op)
        persist = _text(op, "persist")
        pending = self._confirmed
        self._check_confirmed_commit_access(ctx.session_id, _text(op, "persist-id"))
        _raise_all(self._validation_faults(self._datastores["candidate"]))
        if pending is not None and pending.timer is not None:
            pending.timer.cancel()
        self._confirmed = None
        if confirmed:
            # A follow-up confirmed commit extends the first: the revert point stays.
            rollback = pending.rollback if pending else copy.deepcopy(self._datastores["running"])
            commit = _ConfirmedCommit(owner=ctx.session_id, persist=persist, rollback=rollback)
            commit.timer = asyncio.get_running_loop().call_later(
                timeout, self._revert_confirmed_commit, commit)
            self._confirmed = commit
        self._candidate_dirty = False
        self._store("running", copy.deepcopy(self._datastores["candidate"]))
        return None

    async def _op_cancel_commit(self, ctx: RpcContext, op: etree._Element) -> None:
        _only_params(op, "persist-id")
        if self._confirmed is None:
            raise RpcFault("operation-failed", "no confirmed commit is pending")
        self._check_confirmed_commit_access(ctx.session_id, _text(op, "persist-id"))
        self._revert_confirmed_commit(self._confirmed)
        return None

    async def _op_discard_changes(self, ctx: RpcContext, op: etree._Element) -> None:
        _only_params(op)
        self._check_writable(ctx.session_id, "candidate")
        self._discard_candidate()
        return None

    async def _op_close_session(self, ctx: RpcContext, op: etree._Element) -> None:
        _only_params(op)
        self.end_session(ctx.session_id)
        return None

    async def _op_kill_session(self, ctx: RpcContext, op: etree._Element) -> None:
        _only_params(op, "session-id")
        text = (_required(op, "session-id").text or "").strip()
        if not text.isdigit():
            raise RpcFault("invalid-value", f"session-id must be a number, got '{text}'",
                           error_type="protocol")
        victim = int(text)
        if victim == ctx.session_id:
            raise RpcFault("invalid-value", "use close-session to end the own session",
                           error_type="protocol")
        close = self._sessions.get(victim)
        if close is None:
            raise RpcFault("invalid-value", f"no session {victim}", error_type="protocol")
        self.end_session(victim)
        close()
        return None

    # --- datastore state -------------------------------------------------------------

    def _store(self, name: str, root: etree._Element) -> None:
        self._datastores[name] = root
        if name == "candidate":
            self._candidate_dirty = True
        elif name == "running" and not self._candidate_dirty:
            # An untouched candidate tracks running, so a later commit cannot undo a
            # change made directly on running.
            self._datastores["candidate"] = copy.deepcopy(root)

    def _discard_candidate(self) -> None:
        self._datastores["candidate"] = copy.deepcopy(self._datastores["running"])
        self._candidate_dirty = False

    def _revert_confirmed_commit(self, commit: _ConfirmedCommit) -> None:
        if self._confirmed is not commit:  # already confirmed or cancelled
            return
        if commit.timer is not None:
            commit.timer.cancel()
        self._confirmed = None
        self._store("running", commit.rollback)
        logger.info("confirmed commit of session %s reverted", commit.owner)

    def _existing(self, name: str) -> etree._Element:
        if name not in self._datastores:
            raise RpcFault("invalid-value", f"the {name} datastore does not exist")
        return self._datastores[name]

    def _check_writable(self, session_id: int, datastore: str) -> None:
        holder = self._locks.get(datastore)
        if holder is not None and holder != session_id:
            raise RpcFault("in-use", f"{datastore} is locked by session {holder}",
                           info={"session-id": holder})

    def _check_confirmed_commit_access(self, session_id: int, persist_id: str | None) -> None:
        """RFC 6241 section 8.4.5.1: a persisted confirmed commit is confirmed or cancelled
        with its persist-id from any session, otherwise only from the session that made it."""
        pending = self._confirmed
        if pending is None:
            if persist_id is not None:
                raise RpcFault("invalid-value", "no confirmed commit with that persist-id",
                               error_type="protocol")
            return
        if pending.persist is not None:
            if persist_id != pending.persist:
                raise RpcFault("invalid-value", "persist-id does not match the pending "
                               "confirmed commit", error_type="protocol")
        elif persist_id is not None:
            raise RpcFault("invalid-value", "the pending confirmed commit has no persist-id",
                           error_type="protocol")
        elif session_id != pending.owner:
            raise RpcFault("in-use", f"a confirmed commit of session {pending.owner} is pending",
                           info={"session-id": pending.owner})

    def _validation_faults(self, tree: etree._Element) -> list[RpcFault]:
        faults = [RpcFault.from_data_error(e) for e in check_structure(tree)]
        if self.validator is not None and not faults:
            try:
                self.validator(copy.deepcopy(tree))
            except RpcFault as fault:
                faults.append(fault)
        return faults

    def _datastore_param(self, op: etree._Element, param: str, allowed: Iterable[str],
                         inline: bool = False) -> str | etree._Element:
        """The datastore name in `<param><running/></param>`, or with `inline` the
        `<config>` element given instead."""
        choice = next(elements(_required(op, param)), None)
        if choice is None:
            raise RpcFault("missing-element", f"<{param}> names no datastore",
                           error_type="protocol", info={"bad-element": param})
        name = etree.QName(choice)
        if name.namespace not in (NC_NS, None):
            raise RpcFault("bad-element", f"unknown {param} <{name.localname}>",
                           error_type="protocol", info={"bad-element": name.localname})
        choice.tag = _nc(name.localname)  # unqualified is accepted, as for parameters
        if name.localname == "url":
            raise RpcFault("operation-not-supported", "the :url capability is not supported",
                           error_type="protocol")
        if inline and name.localname == "config":
            return choice
        if name.localname not in allowed:
            raise RpcFault("invalid-value", f"{name.localname} is not a valid {param} here",
                           error_type="protocol", info={"bad-element": name.localname})
        return name.localname


# --- message helpers -------------------------------------------------------------------

def _parse_rpc(message: bytes) -> etree._Element:
    """The `<rpc>` element of a message; RpcFault (answered without message-id) otherwise."""
    try:
        rpc = etree.fromstring(message.lstrip(_XML_SPACE), _PARSER)
    except etree.XMLSyntaxError as err:
        raise RpcFault("malformed-message", f"not well-formed XML: {err}",
                       error_type="rpc") from err
    if rpc.getroottree().docinfo.doctype:
        raise RpcFault("malformed-message", "DTDs are not allowed", error_type="rpc")
    if rpc.tag != _nc("rpc"):
        raise RpcFault("malformed-message", f"expected <rpc>, got <{etree.QName(rpc).localname}>",
                       error_type="rpc")
    if rpc.get("message-id") is None:
        raise RpcFault("missing-attribute", "<rpc> without message-id", error_type="rpc",
                       info={"bad-attribute": "message-id", "bad-element": "rpc"})
    return rpc


def _reply(rpc: etree._Element | None, body: list[etree._Element]) -> etree._Element:
    reply = etree.Element(_nc("rpc-reply"), nsmap={None: NC_NS})
    if rpc is not None:
        for name, value in rpc.attrib.items():  # RFC 6241 4.2: every attribute, unmodified
            reply.set(name, value)
    reply.extend(body)
    return reply


def _to_bytes(element: etree._Element) -> bytes:
    return etree.tostring(element, encoding="UTF-8", xml_declaration=True)


def _as_faults(error: Exception) -> list[RpcFault]:
    if isinstance(error, RpcFault):
        return [error]
    if isinstance(error, ExceptionGroup) and all(isinstance(e, RpcFault) for e in error.exceptions):
        return list(error.exceptions)
    logger.exception("RPC handler failed", exc_info=error)
    return [RpcFault("operation-failed", f"internal error: {error}")]


def _raise_all(faults: list[RpcFault]) -> None:
    if len(faults) == 1:
        raise faults[0]
    if faults:
        raise ExceptionGroup("rpc errors", faults)


def _param(op: etree._Element, name: str) -> etree._Element | None:
    """The parameter `name` of an operation. ncclient sends a caller's unqualified
    `<config>` as is, and servers accept it, so an unqualified parameter counts; it is
    re-tagged into the NETCONF namespace so the data below it reads as top-level."""
    found = op.find(_nc(name))
    if found is None:
        found = op.find(name)
        if found is not None:
            found.tag = _nc(name)
    return found


def _only_params(op: etree._Element, *allowed: str) -> None:
    for child in elements(op):
        name = etree.QName(child)
        if name.namespace not in (NC_NS, None) or name.localname not in allowed:
            raise RpcFault("unknown-element", f"unexpected <{name.localname}> in "
                           f"<{etree.QName(op).localname}>", error_type="protocol",
                           info={"bad-element": name.localname})


def _required(op: etree._Element, param: str) -> etree._Element:
    found = _param(op, param)
    if found is None:
        raise RpcFault("missing-element", f"<{etree.QName(op).localname}> needs <{param}>",
                       error_type="protocol", info={"bad-element": param})
    return found


def _text(op: etree._Element, param: str) -> str | None:
    """Stripped text of `op`'s child `param`, None if there is no such child."""
    node = _param(op, param)
    return None if node is None else (node.text or "").strip()


def _choice(op: etree._Element, param: str, allowed: tuple[str, ...]) -> str:
    value = _text(op, param)
    if value is None:
        return allowed[0]
    if value not in allowed:
        raise RpcFault("invalid-value", f"<{param}> must be one of {', '.join(allowed)}",
                       error_type="protocol", info={"bad-element": param})
    return value


def _confirm_timeout(op: etree._Element) -> float:
    value = _text(op, "confirm-timeout")
    if value is None:
        return DEFAULT_CONFIRM_TIMEOUT
    if not value.isdigit() or int(value) < 1:
        raise RpcFault("invalid-value", "confirm-timeout must be a positive number of seconds",
                       error_type="protocol", info={"bad-element": "confirm-timeout"})
    return float(value)


def _filter(op: etree._Element) -> etree._Element | None:
    selector = _param(op, "filter")
    if selector is not None and selector.get("type", "subtree") != "subtree":
        raise RpcFault("bad-attribute", "only subtree filters are supported (no :xpath)",
                       error_type="protocol",
                       info={"bad-attribute": "type", "bad-element": "filter"})
    return selector


def _top_names(selector: etree._Element | None) -> frozenset[str] | None:
    """Local names of a subtree filter's top-level nodes; None without a filter."""
    if selector is None:
        return None
    return frozenset(etree.QName(node).localname for node in elements(selector))


def _is_yang_format(node: etree._Element) -> bool:
    """`<format>` names the identity ncm:yang: `yang` or `PREFIX:yang` with PREFIX bound
    to the monitoring namespace (an identityref, RFC 7950 section 9.10.3)."""
    prefix, _, name = (node.text or "").strip().rpartition(":")
    # Unprefixed is taken as ncm:yang whatever the default namespace: clients differ.
    return name == "yang" and (not prefix or node.nsmap.get(prefix) == MONITORING_NS)


def _date_and_time(moment: datetime) -> str:
    """yang:date-and-time in UTC, e.g. 2026-12-01T22:10:05Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
