"""Who may use the console: users, sessions, CSRF tokens, and a brake on password guessing.

* Passwords are checked against argon2 hashes (argon2-cffi) on a worker thread of
  the console's own: a check costs tens of milliseconds of CPU on purpose, which the
  event loop (polling the plant) must not pay.
* A session is a random token in an HttpOnly, SameSite=Strict cookie (Secure under
  TLS), held in memory only: a restart logs everyone out, and nothing about it is on
  disk. Every visitor gets one, anonymous until a login; logging in issues a new
  token (an anonymous token seen by someone else is worth nothing after it).
* Every state-changing request carries the session's CSRF token in a header; the
  cookie alone (sent by the browser to any page that posts here) is not enough.
* Failed logins are limited per client address and per user name: after
  :data:`FREE_FAILURES` in :data:`FAILURE_WINDOW_S`, each further attempt waits twice
  as long (up to :data:`MAX_LOCK_S`), and the hash is not even checked meanwhile.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from edge_agent.config.console import ConsoleConfig, ConsoleUser
from edge_agent.worker import BlockingWorker

log = structlog.get_logger("edge_agent.console")

VIEW = "view"
COMMISSION = "commission"
#: Sessions held at once; the oldest anonymous ones go first when full.
MAX_SESSIONS = 1_000
#: Failed logins allowed per address (and per user name) in the window before a wait.
FREE_FAILURES = 5
FAILURE_WINDOW_S = 300.0
MAX_LOCK_S = 900.0
#: Addresses and user names whose failures are remembered at once.
MAX_TRACKED = 10_000

_hasher = PasswordHasher()
#: What an unknown user name is checked against, so that a wrong name costs as long as
#: a wrong password (no telling which names exist). The hash of 32 random bytes nobody
#: kept, made with the same parameters: written here rather than made at start, because
#: making one takes argon2's 64 MiB (the peak RSS of an agent whose console nobody uses).
DECOY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$klThc3ayaTBF75Ph6Yp3Eg$"
    "p0D/35MmLHDHGVVZy9kE6cfy5or8dEKFHKEY55Iiw+Y"
)


@dataclass(slots=True)
class Session:
    token: str
    csrf: str
    user: str | None
    permissions: frozenset[str]
    last_seen: float

    @property
    def authenticated(self) -> bool:
        return self.user is not None


@dataclass(slots=True)
class _Failures:
    times: list[float] = field(default_factory=list)
    locked_until: float = 0.0
    lock_s: float = 0.0


class LoginBrake:
    """Counts failed logins per key (an address, a user name) and says how long to wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def wait_s(self, keys: Sequence[str]) -> float:
        """Seconds before another attempt by ``keys`` is even checked (0: go ahead)."""
        now = self._clock()
        waits = [f.locked_until - now for k in keys if (f := self._keys.get(k)) is not None]
        return max([0.0, *waits])

    def failed(self, keys: Sequence[str]) -> None:
        now = self._clock()
        for key in keys:
            failures = self._keys.pop(key, None) or _Failures()
            self._keys[key] = failures  # most recent last
            failures.times = [t for t in failures.times if now - t < FAILURE_WINDOW_S] + [now]
            if len(failures.times) > FREE_FAILURES:
                failures.lock_s = min(MAX_LOCK_S, max(1.0, failures.lock_s * 2))
                failures.locked_until = now + failures.lock_s
            else:
                failures.lock_s = 0.0  # the earlier failures aged out: start again
        while len(self._keys) > MAX_TRACKED:
            self._keys.popitem(last=False)

    def succeeded(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._keys.pop(key, None)


class Auth:
    """The console's users and sessions for one config."""

    def __init__(
        self,
        config: ConsoleConfig,
        *,
        login_required: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.login_required = login_required
        self._clock = clock
        self._users = {user.name: user for user in config.users}
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self.brake = LoginBrake(clock)
        self._worker = BlockingWorker("console-login")
        self.failed_logins = 0

    async def close(self) -> None:
        await self._worker.close()

    # -- sessions

    def session(self, token: str | None) -> Session | None:
        """The live session of ``token``; None when unknown or expired."""
        if not token:
            return None
        found = self._sessions.get(token)
        if found is None:
            return None
        now = self._clock()
        if now - found.last_seen > self.config.session_timeout:
            del self._sessions[token]
            return None
        found.last_seen = now
        self._sessions.move_to_end(token)
        return found

    def new_session(self, user: ConsoleUser | None = None) -> Session:
        if user is not None:
            permissions = frozenset({VIEW, COMMISSION} if user.commissioning else {VIEW})
        else:
            # Without login (loopback, no users) a visitor may look, nothing more.
            permissions = frozenset() if self.login_required else frozenset({VIEW})
        session = Session(
            token=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            user=None if user is None else user.name,
            permissions=permissions,
            last_seen=self._clock(),
        )
        self._sessions[session.token] = session
        self._evict()
        return session

    def end(self, session: Session) -> None:
        self._sessions.pop(session.token, None)

    def end_all_of(self, names: set[str]) -> None:
        """Log out users removed or changed by a reload."""
        for token in [t for t, s in self._sessions.items() if s.user in names]:
            del self._sessions[token]

    def _evict(self) -> None:
        if len(self._sessions) <= MAX_SESSIONS:
            return
        anonymous = [t for t, s in self._sessions.items() if s.user is None]
        for token in anonymous[: len(self._sessions) - MAX_SESSIONS]:
            del self._sessions[token]
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)

    @staticmethod
    def csrf_ok(session: Session, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(session.csrf, presented)

    # -- login

    async def login(self, name: str, password: str, address: str) -> tuple[Session | None, float]:
        """A new session for a right password; else (None, seconds to wait before trying)."""
        keys = (f"addr:{address}", f"user:{name}")
        wait = self.brake.wait_s(keys)
        if wait > 0:
            return None, wait
        user = self._users.get(name)
        encoded = user.password_hash if user is not None else DECOY_HASH
        ok = await self._worker.call(_verify, encoded, password)
        if not ok or user is None:
            self.failed_logins += 1
            self.brake.failed(keys)
            log.warning("console login failed", user=name, address=address)
            return None, 0.0
        self.brake.succeeded(keys)
        log.info("console login", user=name, address=address)
        return self.new_session(user), 0.0


def _verify(encoded: str, password: str) -> bool:
    try:
        return _hasher.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def hash_password(password: str) -> str:
    """The argon2id hash to put in ``service.console.users[].password_hash``."""
    return _hasher.hash(password)
