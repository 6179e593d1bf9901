"""Signed remote configuration: a plant file pushed over MQTT (docs/REMOTE_CONFIG.md).

One module per job: :mod:`.keys` (Ed25519 keys and their ids), :mod:`.document` (the
envelope and the canonical bytes that are signed), :mod:`.verify` (the checks in their
order), :mod:`.store` (the last version applied, kept across restarts), :mod:`.files`
(atomic writes, the last known good), :mod:`.state` (the ``config/state`` report),
:mod:`.apply` (validate, reload, write, report), :mod:`.rollback` (undo when devices do
not come back), :mod:`.wiring` (the subscription on the MQTT sink) and :mod:`.cli`
(``edge-agent config keygen|sign|push|status``). Importing this package loads none of
them.
"""
