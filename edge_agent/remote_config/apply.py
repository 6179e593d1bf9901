"""Take one config document: verify it, validate it like ``check``, apply it like a
reload, write it as the plant file, report, and undo it if devices do not come back.

The order (docs/REMOTE_CONFIG.md):

1. :func:`~edge_agent.remote_config.verify.verify`: parse, plant, key, signature, hash,
   version (newer than the last applied, :mod:`.store`);
2. the file is written beside the plant file (:mod:`.files`) and loaded from there by
   the loader ``edge-agent check`` and a reload use, off the event loop; its problems
   name it ``config/set v12:40: ...``;
3. lock-out: the file must keep ``remote_config:`` (with at least one key, which
   ``check`` requires) and the plant's name, and write no secret in clear (a value of
   a secret field must come from ``${VAR}``: the document passes through the broker);
4. applied by the supervisor as a SIGHUP reload: only what changed restarts, nothing
   buffered is lost; a reload that cannot be built refuses the document;
5. the version store is updated, the plant file copied to ``.last-good``, the new file
   renamed over it (atomic, fsynced);
6. reported on ``config/state`` (:mod:`.state`); with ``rollback_after``, the devices
   that were online are waited for (:mod:`.rollback`) and, if one is not back, the
   last known good is reloaded and written back (``rolled_back``).

Documents are taken one at a time, in order of arrival; one that arrives during a
rollback watch waits for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path

import structlog

from edge_agent.config import PlantConfig
from edge_agent.errors import ConfigError
from edge_agent.redaction import MIN_SECRET_LENGTH, secret_values
from edge_agent.remote_config import files, state
from edge_agent.remote_config.document import ConfigDocument
from edge_agent.remote_config.keys import keys_by_id
from edge_agent.remote_config.rollback import devices_not_back, online
from edge_agent.remote_config.store import Applied, StoreError, Versions, VersionStore
from edge_agent.remote_config.verify import Refusal, verify
from edge_agent.runtime.source_runner import DeviceState
from edge_agent.service.reload import ReloadResult, load_for_reload

log = structlog.get_logger("edge_agent.remote_config")

ApplyConfig = Callable[[PlantConfig], Awaitable[ReloadResult]]


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
    ) -> None:
        self.plant_file = plant_file
        self.store = VersionStore(state_dir)
        self._config = config
        self._states = device_states
        self._apply = apply
        self._report = report

    async def handle(self, payload: bytes, retained: bool) -> None:
        """One message from ``config/set``: applied, or refused with its reason."""
        plant = self._config().plant.name
        try:
            if retained:
                raise Refusal(
                    "parse",
                    "a config document must not be a retained message (it would come back "
                    "at every connection): publish it with retain false",
                )
            versions = self.store.load()
            document = self._verify(payload, plant, versions)
            await self._take(document, versions)
        except Refusal as refusal:
            self._refused(plant, refusal)
        except StoreError as exc:
            self._refused(plant, Refusal("store", str(exc)))

    def _verify(self, payload: bytes, plant: str, versions: Versions) -> ConfigDocument:
        settings = self._config().remote_config
        keys = keys_by_id(list(settings.public_keys)) if settings is not None else {}
        return verify(payload, plant=plant, keys=keys, last_version=versions.highest)

    async def _take(self, document: ConfigDocument, versions: Versions) -> None:
        def refuse(check: str, reason: str, problems: list[str] | None = None) -> Refusal:
            named = [p.replace(str(written), document.name) for p in problems or []]
            return Refusal(check, reason, tuple(named), document.version, document.sha256)

        label = f"v{document.version}"
        temp: Path | None
        try:
            temp = files.write_temp(self.plant_file, label, document.file)
        except OSError as exc:
            raise Refusal(
                "apply", f"cannot write beside the plant file: {exc}", (), document.version
            ) from None
        written = temp
        try:
            try:
                new = await load_for_reload(temp)
            except ConfigError as exc:
                raise refuse(
                    "validation",
                    f"{document.name} fails the checks of edge-agent check "
                    f"({len(exc.problems)} problems)",
                    list(exc.problems),
                ) from None
            self._lock_out(new, document, refuse)
            before = online(self._states())
            previous = self._running_of_file(versions)
            result = await self._apply(new)
            if not result.applied:
                raise refuse("apply", "the reload could not be applied", list(result.problems))
            warnings = self._commit(document, versions, previous, temp)
            temp = None
        finally:
            files.discard(temp)
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
                running_version=document.version,
                later=later,
                problems=warnings,
            )
        )
        settings = new.remote_config
        if settings is not None and settings.rollback_after > 0 and before:
            await self._watch(document, before, settings.rollback_after)

    def _lock_out(
        self,
        new: PlantConfig,
        document: ConfigDocument,
        refuse: Callable[[str, str], Refusal],
    ) -> None:
        """A document that would leave the agent unreachable, or carries a secret."""
        if new.remote_config is None:
            raise refuse(
                "lockout",
                f"{document.name} has no remote_config: section: the agent would take no "
                "further document; keep it (with the keys that sign the next one)",
            )
        plant = self._config().plant.name
        if new.plant.name != plant:
            raise refuse(
                "lockout",
                f"{document.name} renames the plant to {new.plant.name!r}: its topics would "
                f"change under it; this agent stays {plant!r}",
            )
        for secret in secret_values(new):
            if len(secret) >= MIN_SECRET_LENGTH and secret.encode("utf-8") in document.file:
                raise refuse(
                    "secrets",
                    f"{document.name} writes a secret (a password, token or key) in clear; "
                    "a pushed file refers to secrets as ${VAR}, set on the gateway",
                )

    def _running_of_file(self, versions: Versions) -> Applied:
        """The plant file as it is now: its pushed version, or None if it is local."""
        digest = _sha256_of(self.plant_file)
        return Applied(versions.running_version(digest or ""), digest)

    def _commit(
        self, document: ConfigDocument, versions: Versions, previous: Applied, temp: Path
    ) -> list[str]:
        """Applied: the versions first (a crash after this refuses the same document
        again rather than letting it in twice), then the last known good, then the file.
        Returns what went wrong (the document runs all the same: it is reported)."""
        warnings: list[str] = []
        try:
            self.store.save(
                Versions(
                    highest=document.version,
                    running=Applied(document.version, document.sha256),
                    last_good=previous,
                )
            )
        except StoreError as exc:
            warnings.append(f"the version could not be recorded: {exc}")
        try:
            files.copy_atomically(self.plant_file, files.last_good_path(self.plant_file), "new")
            files.replace(temp, self.plant_file)
        except OSError as exc:
            warnings.append(
                f"{self.plant_file}: not written ({exc}); the next start runs the previous file"
            )
        for warning in warnings:
            log.error("remote config applied, but " + warning, version=document.version)
        return warnings

    async def _watch(self, document: ConfigDocument, before: set[str], within: float) -> None:
        missing = await devices_not_back(before, self._states, within)
        if not missing:
            log.info("remote config kept: the devices are back", version=document.version)
            return
        log.warning(
            "remote config: devices did not come back; putting the last known good back",
            version=document.version,
            devices=missing,
        )
        await self._roll_back(document, missing)

    async def _roll_back(self, document: ConfigDocument, missing: list[str]) -> None:
        last_good = files.last_good_path(self.plant_file)
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
            self.store.save(replace(versions, running=versions.last_good))
        except StoreError as exc:
            log.error("rolled back, but the versions could not be recorded", error=str(exc))
        try:
            files.copy_atomically(last_good, self.plant_file, "rollback")
        except OSError as exc:
            log.error("rolled back, but the plant file could not be written", error=str(exc))
        self._report(
            state.state_payload(
                plant=plant,
                status=state.ROLLED_BACK,
                version=document.version,
                sha256=document.sha256,
                running_version=running,
                reason=f"devices not online within rollback_after: {', '.join(missing)}",
                devices_not_back=missing,
            )
        )

    def _refused(self, plant: str, refusal: Refusal) -> None:
        log.warning(
            "remote config refused",
            check=refusal.check,
            reason=refusal.reason,
            version=refusal.version,
            problems=list(refusal.problems),
        )
        try:
            running = self._running_of_file(self.store.load()).version
        except StoreError:
            running = None
        self._report(
            state.state_payload(
                plant=plant,
                status=state.REFUSED,
                version=refusal.version,
                sha256=refusal.sha256,
                running_version=running,
                reason=str(refusal),
                problems=list(refusal.problems) or [str(refusal)],
            )
        )

    def running_version(self) -> int | None:
        try:
            return self._running_of_file(self.store.load()).version
        except StoreError:
            return None


def _sha256_of(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
