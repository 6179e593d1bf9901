"""Take one config document: verify it, validate it like ``check``, apply it like a
reload, write it as the plant file, report, and undo it if devices do not come back.

The order (docs/REMOTE_CONFIG.md), all under ``agent.reconfiguring``, the lock a SIGHUP
reload also takes from reading the plant file to applying it (so neither puts a file
back under the other):

1. :func:`~edge_agent.remote_config.verify.verify`: parse, plant, key (listed and not
   revoked), signature, hash, age, version (newer than the last applied, :mod:`.store`);
2. the file is written beside the plant file (:mod:`.files`) and loaded from there by
   the loader ``edge-agent check`` and a reload use, off the event loop; its problems
   name it ``config/set v12:40: ...``;
3. lock-out: the file must keep ``remote_config:`` (with at least one key, which
   ``check`` requires) and the plant's name, and write no secret in clear
   (:mod:`.secrets`: the document passes through the broker);
4. the version is recorded (with the keys the document drops, revoked) BEFORE anything
   changes: a store that cannot be written refuses the document, and a crash from here
   on burns the version at worst, never lets an older one in;
5. applied by the supervisor as a SIGHUP reload: only what changed restarts, nothing
   buffered is lost; a reload that cannot be built refuses the document;
6. the plant file copied to ``.last-good``, the new file renamed over it (atomic,
   fsynced); if that fails, the previous config is applied again and the document
   refused (``not_written`` if even that fails: the state never says ``applied`` for a
   file that is not on disk);
7. reported on ``config/state`` (:mod:`.state`); with ``rollback_after``, the devices
   that were online (and the sink carrying remote configuration, if it was connected)
   are waited for (:mod:`.rollback`) and, if one is not back, the last known good is
   reloaded and written back (``rolled_back``).

Crash windows: docs/REMOTE_CONFIG.md ("If the gateway crashes"); none lets an older
version in.

Documents are taken one at a time, in order of arrival; one that arrives during a
rollback watch waits for it.
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
from edge_agent.remote_config import files, state
from edge_agent.remote_config.document import ConfigDocument, DocumentError, parse_document
from edge_agent.remote_config.keys import keys_by_id
from edge_agent.remote_config.rollback import devices_not_back, online
from edge_agent.remote_config.secrets import secrets_in_clear
from edge_agent.remote_config.store import (
    Applied,
    StoreError,
    Versions,
    VersionStore,
    revoked_after,
)
from edge_agent.remote_config.verify import Refusal, verify
from edge_agent.runtime.source_runner import DeviceState
from edge_agent.service.reload import ReloadResult, load_for_reload

log = structlog.get_logger("edge_agent.remote_config")

#: Apply a loaded config as a reload does; called with the lock held.
ApplyConfig = Callable[[PlantConfig], Awaitable[ReloadResult]]


class _Ignored(Exception):
    """A retained copy of a document already applied (or older): nothing to report."""


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
        report: Callable[[bytes], None],
        lock: asyncio.Lock | None = None,
        sink_connected: Callable[[], bool] = lambda: True,
    ) -> None:
        self.plant_file = plant_file
        self._store_dir = state_dir
        self._config = config
        self._states = device_states
        self._apply = apply
        self._report = report
        #: Held from reading to writing the plant file (the agent's ``reconfiguring``).
        self._lock = asyncio.Lock() if lock is None else lock
        self._sink_connected = sink_connected
        #: Retained copies of old documents ignored (not reported).
        self.ignored = 0

    # ------------------------------------------------------------------ the store

    @property
    def store(self) -> VersionStore:
        """The store of the running ``state_dir``; when a reload moved ``state_dir``, the
        store is carried over from the directory used before (no window for a replay)."""
        store = VersionStore(self._config().state_dir)
        if store.state_dir != self._store_dir:
            before = VersionStore(self._store_dir)
            if not store.exists() and before.exists():
                store.save(before.load())
            self._store_dir = store.state_dir
        return store

    def _save(self, versions: Versions, dirs: tuple[Path, ...]) -> None:
        """``versions`` in the store of every directory of ``dirs`` (each once)."""
        for state_dir in dict.fromkeys(dirs):
            VersionStore(state_dir).save(versions)

    # ------------------------------------------------------------------ one message

    def screen(self, payload: bytes, retained: bool) -> bool:
        """Whether a message may wait for its turn: only a document that passes every
        cheap check (a signature check, no file written) takes one of the few places;
        one that does not is refused and reported now (a retained copy of an old
        document is ignored), so junk cannot push out a real document."""
        plant = self._config().plant.name
        try:
            versions = self.store.load()
            if retained:
                self._retained(payload, plant, versions)
            self._verify(payload, plant, versions)
        except _Ignored:
            return False
        except Refusal as refusal:
            self._refused(plant, refusal)
            return False
        except StoreError:
            return True  # handled (refused and reported) in its turn
        return True

    async def handle(self, payload: bytes, retained: bool) -> None:
        """One message from ``config/set``: applied, or refused with its reason."""
        watch: _Watch | None = None
        async with self._lock:
            plant = self._config().plant.name
            try:
                versions = self.store.load()
                if retained:
                    self._retained(payload, plant, versions)
                document = self._verify(payload, plant, versions)
                watch = await self._take(document, versions)
            except _Ignored:
                return
            except Refusal as refusal:
                self._refused(plant, refusal)
            except StoreError as exc:
                self._refused(plant, Refusal("store", str(exc)))
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
            version=None if document is None else document.version,
            sha256=None if document is None else document.sha256,
            document=None if document is None else document.digest,
        )

    def _verify(self, payload: bytes, plant: str, versions: Versions) -> ConfigDocument:
        settings = self._config().remote_config
        keys = keys_by_id(list(settings.public_keys)) if settings is not None else {}
        return verify(
            payload,
            plant=plant,
            keys=keys,
            last_version=versions.highest,
            max_age=settings.max_age if settings is not None else 0.0,
            revoked=versions.revoked,
        )

    # ------------------------------------------------------------------ apply

    async def _take(self, document: ConfigDocument, versions: Versions) -> _Watch | None:
        written = ""

        def refuse(check: str, reason: str, problems: list[str] | None = None) -> Refusal:
            named = [p.replace(written, document.name) if written else p for p in problems or []]
            return Refusal(
                check, reason, tuple(named), document.version, document.sha256, document.digest
            )

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
            self._lock_out(new, document, refuse)
            old = self._config()
            dirs = (old.state_dir, new.state_dir)
            recorded = replace(
                versions, highest=document.version, revoked=_revoked_after(old, new, versions)
            )
            try:
                self._save(recorded, dirs)
            except StoreError as exc:
                raise refuse(
                    "store", f"the version cannot be recorded, so it is not applied: {exc}"
                ) from None
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
                files.copy_atomically(target, files.last_good_path(target), "new")
                files.replace(pushed, target)
                temp = None
            except OSError as exc:
                await self._unwritten(document, old, exc, refuse)
                return None
        finally:
            files.discard(temp)
        warnings: list[str] = []
        try:
            self._save(
                replace(
                    recorded, running=Applied(document.version, document.sha256), last_good=previous
                ),
                dirs,
            )
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
            )
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
            )
        )

    def _lock_out(
        self,
        new: PlantConfig,
        document: ConfigDocument,
        refuse: Callable[[str, str, list[str]], Refusal],
    ) -> None:
        """A document that would leave the agent unreachable, or carries a secret."""
        if new.remote_config is None:
            raise refuse(
                "lockout",
                f"{document.name} has no remote_config: section: the agent would take no "
                "further document; keep it (with the keys that sign the next one)",
                [],
            )
        plant = self._config().plant.name
        if new.plant.name != plant:
            raise refuse(
                "lockout",
                f"{document.name} renames the plant to {new.plant.name!r}: its topics would "
                f"change under it; this agent stays {plant!r}",
                [],
            )
        text = document.file.decode("utf-8", errors="replace")
        clear = secrets_in_clear(text, document.name)
        if clear:
            raise refuse(
                "secrets",
                f"{document.name} writes a secret (a password, token or key) in clear; "
                "a pushed file refers to secrets as ${VAR}, set on the gateway",
                clear,
            )

    def _running_of_file(self, versions: Versions) -> Applied:
        """The plant file as it is now: its pushed version, or None if it is local."""
        digest = _sha256_of(files.target_of(self.plant_file))
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
                )
            )
            return
        running: int | None = None
        try:
            versions = self.store.load()
            running = versions.last_good.version
            # The keys the document revoked stay revoked (the store keeps them): the
            # file put back may list them, they sign nothing.
            self._save(replace(versions, running=versions.last_good), (*watch.dirs, old.state_dir))
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
            )
        )

    # ------------------------------------------------------------------ reports

    def _refused(self, plant: str, refusal: Refusal) -> None:
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
                running_version=self.running_version(),
                reason=str(refusal),
                problems=list(refusal.problems) or [str(refusal)],
            )
        )

    def running_version(self) -> int | None:
        try:
            return self._running_of_file(self.store.load()).version
        except StoreError:
            return None


def _revoked_after(old: PlantConfig, new: PlantConfig, versions: Versions) -> tuple[str, ...]:
    return revoked_after(versions.revoked, _key_ids(old), _key_ids(new))


def _key_ids(config: PlantConfig) -> set[str]:
    settings = config.remote_config
    return set(keys_by_id(list(settings.public_keys))) if settings is not None else set()


def _sha256_of(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
