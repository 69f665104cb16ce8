"""Who may touch an NE right now: Prefect global concurrency limits, held under leases.

Every NE, and every traffic pool, has a global concurrency limit of 1 on the Prefect server
(created once, kept; visible and editable in the UI). A run takes an NE's limits - the NE and
its pool - in one request, under a lease that one keeper thread renews while the NE's work
runs (each lease once it is a third of its duration old, so an NE whose work ends sooner is
never renewed). If the engine dies, the lease runs out and a resumed run can take the NE again.

Why not Prefect's `concurrency()` helper, which does the same: it starts a service thread per
distinct set of limit names that lives as long as the process (one per NE: a 200-NE campaign
ended with 200 such threads), a renewal thread per lease, and in strict mode it cancels the
work inside when a single renewal fails. An NE half-way through an activation must not be
abandoned because one renewal request failed: here a failed renewal is logged and retried.

A lease this process may hold without knowing it: a grant request that timed out or failed
(the server may have granted it; Prefect's client would send it again and be refused by that
very grant), or a release that failed. Either lease runs out by itself, so a run that meets such
a limit taken waits until it has, rather than report "another run holds" it (under an
overloaded server a 1,000-NE campaign skipped an NE that way with no other run about).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator
from uuid import UUID

from changeline.errors import ChangelineError

log = logging.getLogger("changeline.locks")

# The server answers a held limit with 423 and a Retry-After of up to 30 s; a waiter asks again
# sooner than that (each try is one cheap request) so it takes over soon after the holder leaves.
POLL_MAX_S = 2.0
CREATING_AT_ONCE = 8
# A lease the server counts until it runs out and its repossessor pass (every 15 s by default)
# gives the slot back.
REPOSSESS_S = 20.0
# Requests in a row that got no answer before taking a limit fails (Prefect's client: 5 retries).
UNANSWERED_MAX = 6
# Answers after which the request may or may not have been carried out.
UNCERTAIN_STATUS = {408, 429, 500, 502, 503, 504}


class NeLocks:
    """`with NeLocks(lease_s=60) as locks: ... with locks.hold(names, wait_s=30): work()`.

    Thread-safe: one instance serves every worker thread of a campaign.
    """

    def __init__(self, *, lease_s: float) -> None:
        self.lease_s = lease_s
        self._client = None
        self._held: dict[UUID, tuple[list[str], float]] = {}  # lease -> names, when granted or last renewed
        self._maybe_held: dict[str, float] = {}  # name -> until when a lease of ours we lost track of may hold it
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None

    def __enter__(self) -> "NeLocks":
        from prefect.client.orchestration import get_client

        from prefect.context import get_settings_context
        from prefect.settings import PREFECT_CLIENT_MAX_RETRIES

        self._client = get_client(sync_client=True)
        self._client.__enter__()
        # Grant requests are sent once: this class decides what an unanswered one means.
        current = get_settings_context()
        self._send_once = (current.profile, current.settings.copy_with_update(updates={PREFECT_CLIENT_MAX_RETRIES: 0}))
        self._keeper = threading.Thread(target=self._renew_loop, name="changeline-lease-keeper", daemon=True)
        self._keeper.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._keeper is not None:
            self._keeper.join(5)
        for lease_id, (names, since) in list(self._held.items()):  # a worker that never released (it should not happen)
            self._release(lease_id, names, since)
        self._client.__exit__(None, None, None)

    # --- limits ---------------------------------------------------------------------------

    def ensure(self, names: list[str]) -> None:
        """One global concurrency limit of 1 per name (created if missing, kept afterwards)."""
        from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
        from prefect.exceptions import ObjectAlreadyExists

        existing: set[str] = set()
        while True:  # the API pages at 200
            page = self._client.read_global_concurrency_limits(limit=200, offset=len(existing))
            existing |= {lim.name for lim in page}
            if len(page) < 200:
                break
        def create(name: str) -> None:
            try:
                self._client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:
                pass

        # A first campaign over new NEs creates hundreds: a few at a time, or they alone take
        # seconds before the first NE may start (300 one after another: ~2.5 s here).
        missing = [name for name in names if name not in existing]
        with ThreadPoolExecutor(max_workers=CREATING_AT_ONCE, thread_name_prefix="limits") as pool:
            list(pool.map(create, missing))

    # --- holding ----------------------------------------------------------------------------

    @contextmanager
    def hold(self, names: list[str], *, wait_s: float | None) -> Iterator[None]:
        """Hold every named limit (all or none) while the block runs. Waits up to `wait_s`
        (None: as long as it takes) while another run holds any of them, then TimeoutError."""
        lease_id = self._acquire(names, wait_s)
        with self._lock:
            self._held[lease_id] = (names, time.monotonic())
        try:
            yield
        finally:
            with self._lock:
                since = self._held.pop(lease_id, (names, time.monotonic()))[1]
            self._release(lease_id, names, since)

    def _acquire(self, names: list[str], wait_s: float | None) -> UUID:
        import httpx
        from prefect.context import SettingsContext

        deadline = None if wait_s is None else time.monotonic() + wait_s
        unanswered = 0
        while True:
            sent = time.monotonic()
            try:
                with SettingsContext(profile=self._send_once[0], settings=self._send_once[1]):
                    response = self._client.increment_concurrency_slots_with_lease(
                        names=names, slots=1, mode="concurrency", lease_duration=self.lease_s)
            except (httpx.HTTPStatusError, httpx.TransportError) as err:
                status = err.response.status_code if isinstance(err, httpx.HTTPStatusError) else None
                if status == 423:
                    unanswered = 0
                    pause = min(float(err.response.headers.get("Retry-After", 1.0)), POLL_MAX_S)
                elif status is None or status in UNCERTAIN_STATUS:
                    unanswered += 1
                    self._lost_track(names, sent + self.lease_s)
                    what = f"{status} {err.response.text[:200]}" if status else type(err).__name__
                    if unanswered >= UNANSWERED_MAX:
                        raise ChangelineError(f"cannot take {', '.join(names)}: the Prefect server did not answer "
                                              f"{unanswered} requests in a row (last: {what})") from err
                    log.warning("asking for %s got no answer (%s); the server may have granted it, asking again",
                                ", ".join(names), what)
                    pause = min(2.0 ** unanswered, 10.0)
                else:
                    raise ChangelineError(f"cannot take {', '.join(names)}: the Prefect server answered "
                                          f"{status} {err.response.text[:200]}") from err
                ends = self._wait_ends(names, deadline)
                if ends is not None:
                    left = ends - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"{', '.join(names)} held by another run") from None
                    pause = min(pause, left)
                time.sleep(pause)
                continue
            granted = response.json()
            lease_id = UUID(granted["lease_id"])
            have = {limit["name"] for limit in granted.get("limits", [])}
            if have != set(names):
                # Strict: a missing limit would silently lock nothing.
                self._release(lease_id, names, sent)
                missing = ", ".join(sorted(set(names) - have))
                raise ChangelineError(f"no Prefect global concurrency limit named {missing}; nothing was locked")
            return lease_id

    def _lost_track(self, names: list[str], runs_out: float) -> None:
        with self._lock:
            for name in names:
                self._maybe_held[name] = max(self._maybe_held.get(name, 0.0), runs_out + REPOSSESS_S)

    def _wait_ends(self, names: list[str], deadline: float | None) -> float | None:
        """The wait's end: its deadline, or later while a lease of ours we lost track of may be
        what holds one of `names` (then it is no other run's)."""
        if deadline is None:
            return None
        now = time.monotonic()
        with self._lock:
            for name, until in list(self._maybe_held.items()):
                if until <= now:
                    del self._maybe_held[name]
            lost = [self._maybe_held[name] for name in names if name in self._maybe_held]
        return max([deadline, *lost])

    def _release(self, lease_id: UUID, names: list[str], since: float) -> None:
        try:
            self._client.release_concurrency_slots_with_lease(lease_id)
        except Exception as err:  # the lease runs out by itself; say so rather than fail the NE
            self._lost_track(names, since + self.lease_s)
            log.warning("could not release lease %s (%s); it expires within %.0f s", lease_id, err, self.lease_s)

    def _renew_loop(self) -> None:
        # Each lease once it is a third of its duration old, looked at every sixth: renewed
        # 20-30 s into a 60 s lease, and a failed renewal is tried again 10 s later, so two
        # may fail in a row before a lease runs out. Renewing every held lease on one beat
        # renewed leases granted a moment before (1.5 renewals per NE whose work took ~30 s).
        renew_after = self.lease_s / 3
        while not self._stop.wait(self.lease_s / 6):
            now = time.monotonic()
            with self._lock:
                due = [(lease_id, names) for lease_id, (names, since) in self._held.items()
                       if now - since >= renew_after]
            for lease_id, names in due:
                try:
                    self._client.renew_concurrency_lease(lease_id, lease_duration=self.lease_s)
                except Exception as err:
                    with self._lock:
                        still_held = lease_id in self._held
                    if still_held:  # not just released by its worker in the meantime
                        log.warning("renewing the lease on %s failed (%s); retrying in %.0f s",
                                    ", ".join(names), err, self.lease_s / 6)
                    continue
                with self._lock:
                    if lease_id in self._held:
                        self._held[lease_id] = (names, now)
