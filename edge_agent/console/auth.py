"""Who may use the console: users, sessions, CSRF tokens, and a brake on password guessing.

* Passwords are checked against argon2 hashes (argon2-cffi) on the console's worker
  thread: a check costs tens of milliseconds of CPU on purpose, which the
  event loop (polling the plant) must not pay.
* A session is a random token in an HttpOnly, SameSite=Strict cookie (Secure under
  TLS). A logged-in session is held in memory only: a restart logs everyone out, and
  nothing about it is on disk. A visitor who has not logged in holds an anonymous
  token the server keeps nothing for (its CSRF token is an HMAC of it under a key made
  at start), so no number of visitors can push anyone's session out. Logging in issues
  a new token (a token seen by someone else before is worth nothing after it).
* Every state-changing request carries the session's CSRF token in a header; the
  cookie alone (sent by the browser to any page that posts here) is not enough.
* Failed logins are limited per client address, and per address and user name: after
  :data:`FREE_FAILURES` in :data:`FAILURE_WINDOW_S`, each further attempt waits twice
  as long (up to :data:`MAX_LOCK_S`), and the hash is not even checked meanwhile. A
  user name guessed at from many addresses is slowed for everyone, but only by up to
  :data:`MAX_USER_SLOWDOWN_S` (a long lock per name would let anyone lock a user out).
  An attempt counts as failed until its check says otherwise, so guesses sent all at
  once are braked like guesses sent one after the other.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
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
#: May send write commands (a user with ``writes: true``); never an anonymous visitor.
WRITE = "write"
#: Sessions held at once; the oldest anonymous ones go first when full.
MAX_SESSIONS = 1_000
#: Failed logins allowed per address (and per user name) in the window before a wait.
FREE_FAILURES = 5
FAILURE_WINDOW_S = 300.0
MAX_LOCK_S = 900.0
#: The most a user name's failures (from any address) slow a login to it.
MAX_USER_SLOWDOWN_S = 2.0
#: Anonymous tokens start with this; logged-in tokens never do.
ANONYMOUS = "a."
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

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_lock_s: float = MAX_LOCK_S
    ) -> None:
        self._clock = clock
        self.max_lock_s = max_lock_s
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
                failures.lock_s = min(self.max_lock_s, max(1.0, failures.lock_s * 2))
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
        worker: BlockingWorker | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.login_required = login_required
        self._clock = clock
        self._users = {user.name: user for user in config.users}
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        #: Per address, and per address and user name.
        self.brake = LoginBrake(clock)
        #: Per user name, from any address: a short slow-down, never a lock-out.
        self.user_brake = LoginBrake(clock, max_lock_s=MAX_USER_SLOWDOWN_S)
        #: Where passwords are checked (the console's worker thread).
        self._worker = worker or BlockingWorker("console")
        #: Signs anonymous tokens' CSRF tokens; made at start, never stored.
        self._key = secrets.token_bytes(32)
        self.failed_logins = 0

    async def close(self) -> None:
        await self._worker.close()

    # -- sessions

    def session(self, token: str | None, *, touch: bool = True) -> Session | None:
        """The live session of ``token``; None when unknown or expired.

        ``touch``: this request is the user's (a live stream's own checks are not, or
        an open page would keep a login alive forever).
        """
        if not token or len(token) > 100 or not token.isascii():
            return None
        if token.startswith(ANONYMOUS):
            return self._anonymous(token)
        found = self._sessions.get(token)
        if found is None:
            return None
        now = self._clock()
        if now - found.last_seen > self.config.session_timeout:
            del self._sessions[token]
            return None
        if touch:
            found.last_seen = now
            self._sessions.move_to_end(token)
        return found

    def new_session(self, user: ConsoleUser | None = None) -> Session:
        """A logged-in session for ``user``; an anonymous one (kept nowhere) for None."""
        if user is None:
            return self._anonymous(ANONYMOUS + secrets.token_urlsafe(24))
        permissions = frozenset(
            {VIEW}
            | ({COMMISSION} if user.commissioning else set())
            | ({WRITE} if user.writes else set())
        )
        session = Session(
            token=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            user=user.name,
            permissions=permissions,
            last_seen=self._clock(),
        )
        self._sessions[session.token] = session
        self._evict()
        return session

    def _anonymous(self, token: str) -> Session:
        """The session an anonymous token stands for: computed, not stored."""
        csrf = hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()
        # Without login (loopback, no users) a visitor may look, nothing more.
        permissions = frozenset() if self.login_required else frozenset({VIEW})
        return Session(token, csrf, None, permissions, self._clock())

    def end(self, session: Session) -> None:
        self._sessions.pop(session.token, None)

    def _evict(self) -> None:
        """Logged-in sessions beyond MAX_SESSIONS: the least recently used go (only a
        login makes one, and logins are braked)."""
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)

    @staticmethod
    def csrf_ok(session: Session, presented: str | None) -> bool:
        return (
            presented is not None
            and presented.isascii()
            and hmac.compare_digest(session.csrf, presented)
        )

    # -- login

    async def login(self, name: str, password: str, address: str) -> tuple[Session | None, float]:
        """A new session for a right password; else (None, seconds to wait before trying)."""
        client = _client(address)
        keys = (f"addr:{client}", f"pair:{client}|{name}")
        user_key = (f"user:{name}",)
        wait = max(self.brake.wait_s(keys), self.user_brake.wait_s(user_key))
        if wait > 0:
            return None, wait
        # Counted as failed before the check, so that concurrent guesses see each other.
        self.brake.failed(keys)
        self.user_brake.failed(user_key)
        user = self._users.get(name)
        encoded = user.password_hash if user is not None else DECOY_HASH
        ok = await self._worker.call(_verify, encoded, password)
        # A name that is no user is not logged: it may be a password typed in the
        # wrong field, and the log is shown on the console's config page.
        shown = name if user is not None else "(not a user)"
        if not ok or user is None:
            self.failed_logins += 1
            log.warning("console login failed", user=shown, address=address)
            return None, 0.0
        self.brake.succeeded(keys)
        self.user_brake.succeeded(user_key)
        log.info("console login", user=shown, address=address)
        return self.new_session(user), 0.0


def _client(address: str) -> str:
    """Who tries: the address, or for IPv6 its /64 (one host may use any address of its
    network, and would get a fresh brake with each)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _verify(encoded: str, password: str) -> bool:
    try:
        return _hasher.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError, UnicodeEncodeError):
        return False


def hash_password(password: str) -> str:
    """The argon2id hash to put in ``service.console.users[].password_hash``."""
    return _hasher.hash(password)
