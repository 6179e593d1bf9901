"""Take one config document: verify it, validate it like ``check``, apply it like a
reload, write it as the plant file, report, and undo it if devices do not come back.

The order (docs/REMOTE_CONFIG.md), all under ``agent.reconfiguring``, the lock a SIGHUP
reload also takes from reading the plant file to applying it (so neither puts a file
back under the other):

1. :func:`~edge_agent.remote_config.verify.verify`: parse, plant, key (listed and not
   revoked), signature, hash, age (on arrival: :meth:`RemoteConfig.screen`), version
   (newer than the last applied, :mod:`.store`);
2. no secret in clear (:mod:`.lockout`, :mod:`.secrets`: the document passes through
   the broker), before validation, whose messages could quote one;
3. the file is written beside the plant file (:mod:`.files`) and loaded from there by
   the loader ``edge-agent check`` and a reload use, off the event loop; its problems
   name it ``config/set v12:40: ...``;
4. lock-out: the file must keep ``remote_config:`` (with at least one key, which
   ``check`` requires) and the plant's name;
5. the version is recorded BEFORE anything changes: a store that cannot be written
   refuses the document, and a crash from here on burns the version at worst, never
   lets an older one in;
6. applied by the supervisor as a SIGHUP reload: only what changed restarts, nothing
   buffered is lost; a reload that cannot be built refuses the document;
7. the plant file copied to ``.last-good``, the new file renamed over it (atomic,
   fsynced); if that fails, the previous config is applied again and the document
   refused (``not_written`` if even that fails: the state never says ``applied`` for a
   file that is not on disk); only now are the keys it drops revoked
   (:mod:`.revocation`);
8. reported on ``config/state`` (:mod:`.state`); with ``rollback_after``, the devices
   that were online (and the sink carrying remote configuration, if it was connected)
   are waited for (:mod:`.rollback`) and, if one is not back, the last known good is
   reloaded and written back (``rolled_back``).

Crash windows: docs/REMOTE_CONFIG.md ("If the gateway crashes"); none lets an older
version in.

Documents are taken one at a time, in order of arrival; one that arrives during a
rollback watch waits for it. A replay of a document refused for what its file says, or
of the one being applied, is dropped silently (:mod:`.recent`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from edge_agent.config import PlantConfig
from edge_agent.errors import ConfigError
from edge_agent.remote_config import files, lockout, state
from edge_agent.remote_config.audit import ConfigAudit, Report, audited
from edge_agent.remote_config.carry import Stores
from edge_agent.remote_config.document import ConfigDocument, DocumentError, parse_document
from edge_agent.remote_config.keys import keys_by_id
from edge_agent.remote_config.recent import Recent
from edge_agent.remote_config.revocation import committed, rolled_back
from edge_agent.remote_config.rollback import devices_not_back, online
from edge_agent.remote_config.store import Applied, StoreError, Versions, VersionStore
from edge_agent.remote_config.verify import Refusal, verify_document
from edge_agent.runtime.source_runner import DeviceState
from edge_agent.service.reload import ReloadResult, load_for_reload

log = structlog.get_logger("edge_agent.remote_config")

#: Apply a loaded config as a reload does; called with the lock held.
ApplyConfig = Callable[[PlantConfig], Awaitable[ReloadResult]]

#: Refusals for what the file says: a replay would be refused again (:mod:`.recent`).
_FOR_GOOD = frozenset({"validation", "lockout", "secrets"})


class _Ignored(Exception):
    """A copy of a document already dealt with: nothing to report."""


@dataclass(frozen=True, slots=True)
class _Watch:
    """What the rollback watch after an applied document waits for."""

    document: ConfigDocument
    devices: set[str]
    sink_was_connected: bool
    within: float
    #: The state directories the store is written to (the running one, the file's).
    dirs: tuple[Path, ...]


class RemoteConfig:
    """The agent's side of remote configuration, for one plant file."""

    def __init__(
        self,
        plant_file: Path,
        state_dir: Path,
        *,
        config: Callable[[], PlantConfig],
        device_states: Callable[[], Mapping[str, DeviceState]],
        apply: ApplyConfig,
        report: Report,
        lock: asyncio.Lock | None = None,
        sink_connected: Callable[[], bool] = lambda: True,
        audit: ConfigAudit | None = None,
    ) -> None:
        self.plant_file = plant_file
        self._stores = Stores(state_dir, lambda: config().state_dir)
        self._config = config
        self._states = device_states
        self._apply = apply
        #: ``report(payload, retain)``: every report goes to the audit log first.
        self._report = audited(report, audit)
        self._audit = audit
        #: Held from reading to writing the plant file (the agent's ``reconfiguring``).
        self._lock = asyncio.Lock() if lock is None else lock
        self._sink_connected = sink_connected
        #: Documents refused for what their file says (a replay is dropped silently).
        self._refused_for_good = Recent()
        #: Documents that were fresh when they arrived: not refused as stale after
        #: their wait in the queue (and a rollback watch before them).
        self._fresh = Recent()
        #: The document being applied: a replay of it is dropped silently.
        self._taking: str | None = None
        #: Copies of documents already dealt with, ignored (not reported).
        self.ignored = 0

    @property
    def store(self) -> VersionStore:
        """The store of the running ``state_dir``, carried over when it moved (:mod:`.carry`)."""
        return self._stores.current

    # ------------------------------------------------------------------ one message

    def screen(self, payload: bytes, retained: bool) -> int | None:
        """The document's version if it may wait for its turn (for the queue's order);
        None if not. Only a document that passes every cheap check (a signature check,
        no file written) takes one of the few places; one that does not is refused and
        reported now (a copy of a document already dealt with is ignored), so junk
        cannot push out a real document. Its age is checked here, on arrival only."""
        plant = self._config().plant.name
        try:
            versions = self.store.load()
            if retained:
                self._retained(payload, plant, versions)
            document = self._verify(payload, plant, versions, arrived=True)
        except _Ignored:
            return None
        except Refusal as refusal:
            self._refused(plant, refusal, payload)
            return None
        except StoreError:
            try:  # refused and reported in its turn
                return parse_document(payload).version
            except DocumentError as exc:
                self._refused(plant, Refusal("parse", str(exc)), payload)
                return None
        self._fresh.add(document.digest)
        return document.version

    async def handle(self, payload: bytes, retained: bool) -> None:
        """One message from ``config/set``: applied, or refused with its reason."""
        watch: _Watch | None = None
        async with self._lock:
            plant = self._config().plant.name
            try:
                versions = self.store.load()
                if retained:
                    self._retained(payload, plant, versions)
                document = self._verify(payload, plant, versions, arrived=False)
                try:
                    watch = await self._take(document, versions)
                finally:
                    self._taking = None
            except _Ignored:
                return
            except Refusal as refusal:
                if refusal.document is not None and refusal.check in _FOR_GOOD:
                    max_age = self._max_age()
                    self._refused_for_good.add(refusal.document, 2 * max_age)
                self._refused(plant, refusal, payload)
            except StoreError as exc:
                self._refused(plant, Refusal("store", str(exc)), payload)
        if watch is not None:
            await self._watch(watch)

    def _retained(self, payload: bytes, plant: str, versions: Versions) -> None:
        """A retained message is never applied (it would come back at every connection).
        A copy of a document already applied, or older, comes back after every
        connection (MQTT 3.1.1 clears the retain flag for a live subscription, so such
        a document may have been applied when it came): ignored, not reported, so the
        report of what runs stays. Anything else retained is refused."""
        try:
            document = parse_document(payload)
        except DocumentError:
            document = None
        if (
            document is not None
            and document.plant == plant
            and (document.version <= versions.highest)
        ):
            self.ignored += 1
            log.info(
                "remote config: a retained copy of an old document ignored",
                version=document.version,
                highest=versions.highest,
            )
            raise _Ignored
        raise Refusal(
            "parse",
            "a config document must not be a retained message (it would come back at every "
            "connection): publish it with retain false",
        )

    def _max_age(self) -> float:
        settings = self._config().remote_config
        return settings.max_age if settings is not None else 0.0

    def _verify(
        self, payload: bytes, plant: str, versions: Versions, *, arrived: bool
    ) -> ConfigDocument:
        try:
            document = parse_document(payload)
        except DocumentError as exc:
            raise Refusal("parse", str(exc)) from None
        if document.digest == self._taking or document.digest in self._refused_for_good:
            self.ignored += 1
            log.info("remote config: a copy of a document already taken ignored")
            raise _Ignored
        settings = self._config().remote_config
        keys = keys_by_id(list(settings.public_keys)) if settings is not None else {}
        # The age was checked on arrival (screen): the wait in the queue does not count.
        fresh = not arrived and document.digest in self._fresh
        if not arrived:
            self._fresh.discard(document.digest)
        return verify_document(
            document,
            plant=plant,
            keys=keys,
            last_version=versions.highest,
            max_age=None if fresh else self._max_age(),
            revoked=versions.revoked,
        )

    # ------------------------------------------------------------------ apply

    async def _take(self, document: ConfigDocument, versions: Versions) -> _Watch | None:
        written = ""

        def refuse(check: str, reason: str, problems: list[str] | None = None) -> Refusal:
            named = [p.replace(written, document.name) if written else p for p in problems or []]
            return lockout.refusal(document, check, reason, lockout.unquoted(named))

        secrets = lockout.secrets_problems(document)
        if secrets is not None:
            raise secrets
        target = files.target_of(self.plant_file)
        try:
            pushed = files.write_temp(target, f"v{document.version}", document.file)
        except OSError as exc:
            raise refuse("apply", f"cannot write beside the plant file: {exc}") from None
        written = str(pushed)
        temp: Path | None = pushed
        try:
            try:
                new = await load_for_reload(pushed)
            except ConfigError as exc:
                raise refuse(
                    "validation",
                    f"{document.name} fails the checks of edge-agent check "
                    f"({len(exc.problems)} problems)",
                    list(exc.problems),
                ) from None
            old = self._config()
            locked_out = lockout.lock_out(new, old.plant.name, document)
            if locked_out is not None:
                raise locked_out
            dirs = (old.state_dir, new.state_dir)
            if self._audit is not None:
                try:
                    self._audit.accepted(document)
                except OSError as exc:
                    raise refuse(
                        "audit", f"the audit log cannot be written, so it is not applied: {exc}"
                    ) from None
            # The version only: the keys it drops are revoked once it is written.
            recorded = replace(versions, highest=document.version)
            try:
                self._stores.save(recorded, dirs)
            except StoreError as exc:
                raise refuse(
                    "store", f"the version cannot be recorded, so it is not applied: {exc}"
                ) from None
            self._taking = document.digest
            before = online(self._states())
            sink_was_connected = self._sink_connected()
            previous = self._running_of_file(versions)
            result = await self._apply(new)
            if not result.applied:
                raise refuse(
                    "apply",
                    f"the reload could not be applied (version {document.version} is used "
                    "up: sign the fixed file with a higher one)",
                    list(result.problems),
                )
            try:
                files.install(pushed, target)
                temp = None
            except OSError as exc:
                await self._unwritten(document, old, exc, refuse)
                return None
        finally:
            files.discard(temp)
        warnings: list[str] = []
        try:
            self._stores.save(committed(recorded, old, new, document, previous), dirs)
        except StoreError as exc:
            warnings.append(f"the running version could not be recorded: {exc}")
            log.error("remote config applied, but " + warnings[-1], version=document.version)
        later = list(result.plan.needs_restart) if result.plan is not None else []
        log.info(
            "remote config applied",
            version=document.version,
            key_id=document.key_id,
            takes_effect_at_next_start=later,
        )
        self._report(
            state.state_payload(
                plant=new.plant.name,
                status=state.APPLIED,
                version=document.version,
                sha256=document.sha256,
                document=document.digest,
                running_version=document.version,
                later=later,
                problems=warnings,
            ),
            retain=True,
        )
        settings = new.remote_config
        if settings is None or settings.rollback_after <= 0:
            return None
        if not before and not sink_was_connected:
            return None
        return _Watch(document, before, sink_was_connected, settings.rollback_after, dirs)

    async def _unwritten(
        self,
        document: ConfigDocument,
        old: PlantConfig,
        exc: OSError,
        refuse: Callable[[str, str], Refusal],
    ) -> None:
        """The plant file could not be written: the previous config runs again and the
        document is refused; if even that fails, ``not_written`` says so."""
        why = f"{self.plant_file}: cannot be written ({exc})"
        undone = await self._apply(old)
        if undone.applied:
            log.error("remote config: " + why + "; the previous config runs again")
            raise refuse(
                "apply",
                f"{why}; the previous config runs again (version {document.version} is used up)",
            )
        log.error("remote config: " + why + "; the previous config could not be put back")
        self._report(
            state.state_payload(
                plant=self._config().plant.name,
                status=state.NOT_WRITTEN,
                version=document.version,
                sha256=document.sha256,
                document=document.digest,
                running_version=None,
                reason=f"{why}; the document runs, the next start runs the previous file",
                problems=list(undone.problems),
            ),
            retain=True,
        )

    def _running_of_file(self, versions: Versions) -> Applied:
        """The plant file as it is now: its pushed version, or None if it is local."""
        digest = files.sha256_of(files.target_of(self.plant_file))
        return Applied(versions.running_version(digest or ""), digest)

    # ------------------------------------------------------------------ rollback

    async def _watch(self, watch: _Watch) -> None:
        connected = self._sink_connected if watch.sink_was_connected else None
        missing = await devices_not_back(watch.devices, self._states, watch.within, connected)
        version = watch.document.version
        if not missing:
            log.info("remote config kept: the devices are back", version=version)
            return
        log.warning(
            "remote config: devices did not come back; putting the last known good back",
            version=version,
            devices=missing,
        )
        async with self._lock:
            await self._roll_back(watch, missing)

    async def _roll_back(self, watch: _Watch, missing: list[str]) -> None:
        document = watch.document
        target = files.target_of(self.plant_file)
        last_good = files.last_good_path(target)
        plant = self._config().plant.name
        try:
            old = await load_for_reload(last_good)
            result = await self._apply(old)
            problems = list(result.problems)
        except ConfigError as exc:
            result, problems = ReloadResult(False), list(exc.problems)
        if not result.applied:
            log.error(
                "remote config rollback failed; the document stays applied",
                version=document.version,
                problems=problems,
            )
            self._report(
                state.state_payload(
                    plant=plant,
                    status=state.ROLLBACK_FAILED,
                    version=document.version,
                    sha256=document.sha256,
                    document=document.digest,
                    running_version=document.version,
                    reason="the last known good could not be applied",
                    problems=problems,
                    devices_not_back=missing,
                ),
                retain=True,
            )
            return
        running: int | None = None
        try:
            versions = self.store.load()
            running = versions.last_good.version
            # Its version stays used up; the keys it revoked stay revoked unless the
            # file put back would keep none that can sign (:mod:`.revocation`).
            self._stores.save(rolled_back(versions, old), (*watch.dirs, old.state_dir))
        except StoreError as exc:
            log.error("rolled back, but the versions could not be recorded", error=str(exc))
        try:
            files.copy_atomically(last_good, target, "rollback")
        except OSError as exc:
            log.error("rolled back, but the plant file could not be written", error=str(exc))
        self._report(
            state.state_payload(
                plant=plant,
                status=state.ROLLED_BACK,
                version=document.version,
                sha256=document.sha256,
                document=document.digest,
                running_version=running,
                reason=f"not back within rollback_after: {', '.join(missing)}",
                devices_not_back=missing,
            ),
            retain=True,
        )

    # ------------------------------------------------------------------ reports

    def _refused(self, plant: str, refusal: Refusal, payload: bytes) -> None:
        log.warning(
            "remote config refused",
            check=refusal.check,
            reason=refusal.reason,
            version=refusal.version,
            problems=list(refusal.problems),
        )
        self._report(
            state.state_payload(
                plant=plant,
                status=state.REFUSED,
                version=refusal.version,
                sha256=refusal.sha256,
                document=refusal.document,
                envelope=hashlib.sha256(payload).hexdigest(),
                running_version=self.running_version(),
                reason=str(refusal),
                problems=list(refusal.problems) or [str(refusal)],
            ),
            retain=refusal.document is not None,
        )

    def running_version(self) -> int | None:
        try:
            return self._running_of_file(self.store.load()).version
        except StoreError:
            return None
