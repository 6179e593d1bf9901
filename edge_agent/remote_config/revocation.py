"""Which keys are revoked, and when: the bookkeeping of ``revoked`` in the version store.

The rule (docs/REMOTE_CONFIG.md, "Rotating keys"): the keys that may sign the next
document are those the running plant file lists, minus the keys revoked by an applied
document (a key a document dropped). So that the rule never leaves the running file
without a key that can sign:

- a key is revoked only when the document that drops it is applied AND written
  (:func:`committed`): a document refused at any step (a reload that cannot be built, a
  file that cannot be written) revokes nothing; its version alone is used up;
- a rollback keeps the keys the rolled-back document revoked revoked while the file it
  puts back lists another key that can sign (a stolen key dropped by a document that
  is then rolled back stays out); when it lists none (a rotation in one step, A -> B,
  undone), they are trusted again (:func:`rolled_back`): the file put back is what
  runs, and a gateway no key can reach needs a visit;
- a key a document lists again is trusted again (:func:`~.store.revoked_after`).
"""

from __future__ import annotations

from dataclasses import replace

from edge_agent.config import PlantConfig
from edge_agent.remote_config.document import ConfigDocument
from edge_agent.remote_config.keys import keys_by_id
from edge_agent.remote_config.store import Applied, Versions, revoked_after


def key_ids(config: PlantConfig) -> set[str]:
    """The ids of the keys ``config`` lists for remote configuration."""
    settings = config.remote_config
    return set(keys_by_id(list(settings.public_keys))) if settings is not None else set()


def committed(
    recorded: Versions,
    old: PlantConfig,
    new: PlantConfig,
    document: ConfigDocument,
    previous: Applied,
) -> Versions:
    """The store once ``document`` (``new``) replaced ``old`` and is on disk: it runs,
    the file before is the last known good, the keys it dropped are revoked."""
    revoked = revoked_after(recorded.revoked, key_ids(old), key_ids(new))
    return replace(
        recorded,
        running=Applied(document.version, document.sha256),
        last_good=previous,
        revoked=revoked,
        revoked_by_running=tuple(sorted(set(revoked) - set(recorded.revoked))),
    )


def rolled_back(versions: Versions, put_back: PlantConfig) -> Versions:
    """The store once the last known good (``put_back``) replaced the running document:
    its version stays used up; what it revoked stays revoked unless ``put_back`` would
    be left with no key that can sign."""
    revoked = versions.revoked
    if not key_ids(put_back) - set(revoked):
        undone = set(versions.revoked_by_running)
        revoked = tuple(k for k in revoked if k not in undone)
    return replace(versions, running=versions.last_good, revoked=revoked, revoked_by_running=())
