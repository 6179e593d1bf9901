"""Checks of the message flow (order, subscriptions, primary host, rebirth, device death)
and of the metric definitions (aliases, datatypes, properties). See tests/sparkplug_checks.py."""

from __future__ import annotations

import itertools

from tests.sparkplug_checks import (
    Check,
    each,
)
from tests.sparkplug_story import DEVICE_IDS
from tests.sparkplug_view import DATA, Sent, Session, View, matches

# ---------------------------------------------------------------------- order


def births_first(view: View) -> list[str]:
    """In every session the first PUBLISH is the NBIRTH (or an NDEATH of a session that
    never became a Sparkplug session: primary host offline)."""
    problems = []
    for session in view.sessions.values():
        sent = [s for s in session.sent if s.message_type != "NDEATH"]
        if sent and sent[0].message_type != "NBIRTH":
            problems.append(f"{sent[0]}: first publish of its session is not the NBIRTH")
    return problems


def connect_first(view: View) -> list[str]:
    """The node publishes only inside an MQTT session (its CONNECT came first)."""
    return [
        f"{s}: before its CONNECT"
        for session in view.sessions.values()
        for s in session.sent
        if s.order < session.connect_order
    ]


def dbirth_after_nbirth(view: View) -> list[str]:
    problems = []
    for session in view.sessions.values():
        born = False
        for s in session.sent:
            born = born or s.message_type == "NBIRTH"
            if s.message_type == "DBIRTH" and not born:
                problems.append(f"{s}: DBIRTH before any NBIRTH of its session")
    return problems or ([] if view.sent_of("DBIRTH") else ["no DBIRTH"])


def dbirths_right_after_nbirth(view: View) -> list[str]:
    """After each NBIRTH: DBIRTHs of every device, before any DATA message."""
    problems = []
    for session in view.sessions.values():
        sent = session.sent
        for i, s in enumerate(sent):
            if s.message_type != "NBIRTH":
                continue
            block = []
            for t in sent[i + 1 :]:
                if t.message_type != "DBIRTH":
                    break
                block.append(t.device)
            after = sent[i + 1 + len(block) :]
            if after and after[0].message_type in DATA and not block:
                problems.append(f"{after[0]}: DATA right after the NBIRTH, no DBIRTH between")
    return problems


def data_after_births(*types: str) -> Check:
    """A DATA message follows the session's NBIRTH and (DDATA) its device's DBIRTH."""

    def check(view: View) -> list[str]:
        problems, checked = [], 0
        for session in view.sessions.values():
            node_born, devices_born = False, set()
            for s in session.sent:
                if s.message_type == "NBIRTH":
                    node_born, devices_born = True, set()
                elif s.message_type == "DBIRTH":
                    devices_born.add(s.device)
                elif s.message_type == "DDEATH":
                    devices_born.discard(s.device)
                elif s.message_type in types:
                    checked += 1
                    if not node_born or (
                        s.message_type == "DDATA" and s.device not in devices_born
                    ):
                        problems.append(f"{s}: before the births it depends on")
        return problems or ([] if checked or types == ("NDATA",) else ["nothing to check"])

    return check


# ---------------------------------------------------------------------- subscriptions


def subscribed_before_births(topic_of: str, *, qos: int | None = 1) -> Check:
    """Each session that births subscribed to ``topic_of`` ("NCMD", "DCMD" or "STATE")
    before its first NBIRTH (DCMD: before each device's DBIRTH)."""

    def check(view: View) -> list[str]:
        problems, checked = [], 0
        for session in view.sessions.values():
            births = session.of_type("NBIRTH", "DBIRTH")
            if not births:
                continue
            if topic_of == "DCMD":
                targets = [
                    (b.order, view.device_topic("DCMD", b.device))
                    for b in births
                    if b.message_type == "DBIRTH"
                ]
            else:
                topic = view.state_topic if topic_of == "STATE" else view.node_topic("NCMD")
                targets = [(births[0].order, topic)]
            for before, topic in targets:
                checked += 1
                found = [
                    (f, q)
                    for order, f, q in session.subscribed
                    if order < before and matches(f, topic)
                ]
                if not found:
                    problems.append(
                        f"session {session.number}: no subscription to {topic} before its birth"
                    )
                elif qos is not None and all(q != qos for _, q in found):
                    problems.append(
                        f"session {session.number}: {topic} at QoS {found[0][1]}, not {qos}"
                    )
        return problems or ([] if checked else ["nothing to check"])

    return check


# ---------------------------------------------------------------------- primary host


def no_birth_while_host_offline(view: View) -> list[str]:
    """Every NBIRTH/DBIRTH went out while the primary host was online by the newest STATE
    (this covers the wait at start, the stale online STATE while the host was offline,
    and the online STATE of another host id)."""
    problems = each(
        view.sent_of("NBIRTH", "DBIRTH"),
        lambda s: (
            None if view.host_online_at(s.at_ns) else "born while the primary host was offline"
        ),
    )
    waiting = view.phase_sent("waiting", "NBIRTH", "DBIRTH", "DDATA", "NDATA")
    problems += [f"{s}: sent before the primary host was ever online" for s in waiting]
    if not view.story.phases.get("waiting"):
        problems.append("the waiting scenario did not run")
    return problems


def _host_offline_ns(view: View) -> int:
    offline = [
        ns
        for ns, online, _ in view.story.host.published
        if not online and ns >= view.story.phases["host"].start_ns
    ]
    return offline[0]


def ndeath_then_disconnect_on_host_offline(view: View) -> list[str]:
    """After the host's offline STATE the node's next packets are NDEATH (its bdSeq) then
    DISCONNECT, and nothing else of its session comes after."""
    session = view.session_at(_host_offline_ns(view))
    if session is None:
        return ["no session when the host went offline"]
    after = [s for s in session.sent if s.at_ns >= _host_offline_ns(view)]
    deaths = [s for s in after if s.message_type == "NDEATH"]
    problems = (
        [] if deaths else [f"session {session.number}: no NDEATH after the host went offline"]
    )
    if session.disconnect_order is None:
        problems.append(f"session {session.number}: no DISCONNECT after the host went offline")
    elif deaths and deaths[-1].order > session.disconnect_order:
        problems.append("DISCONNECT before the NDEATH")
    if deaths and any(s.order > deaths[0].order for s in after):
        problems.append(
            f"after its NDEATH: {[str(s) for s in after if s.order > deaths[0].order][:3]}"
        )
    return problems


def reconnects_after_host_offline(view: View) -> list[str]:
    session = view.session_at(_host_offline_ns(view))
    later = [s for s in view.sessions.values() if session and s.number > session.number]
    return [] if later else ["no new CONNECT after the disconnect for the host's offline STATE"]


def stale_offline_ignored(view: View) -> list[str]:
    """An offline STATE older than the last online one: the node stays connected."""
    span = view.story.phases["stale"]
    session = view.session_at(span.start_ns)
    problems = [] if session else ["no session when the stale STATE came"]
    if session and session.closed_ns and session.closed_ns <= span.end_ns:
        problems.append(f"session {session.number} ended at the stale offline STATE")
    problems += [
        f"{s}: NDEATH for a stale offline STATE" for s in view.phase_sent("stale", "NDEATH")
    ]
    if not view.phase_sent("stale", "DDATA"):
        problems.append("no data went out during the stale STATE")
    return problems


def single_server(view: View) -> list[str]:
    """Never two connections at once: each session ended before the next CONNECT."""
    sessions = sorted(view.sessions.values(), key=lambda s: s.connect_ns)
    return [
        f"session {b.number} connected while session {a.number} was open"
        for a, b in itertools.pairwise(sessions)
        if not a.closed_ns or a.closed_ns > b.connect_ns
    ]


# ---------------------------------------------------------------------- rebirth, death


def _rebirth_nbirth(view: View) -> tuple[Session | None, Sent | None]:
    request = view.story.host.rebirth_requests[0]
    session = view.session_at(request)
    if session is None:
        return None, None
    births = [s for s in session.of_type("NBIRTH") if s.at_ns >= request]
    return session, births[0] if births else None


def rebirth_stops_data(view: View) -> list[str]:
    """Between the request and the new NBIRTH at most the DATA already in flight: one per
    device."""
    session, nbirth = _rebirth_nbirth(view)
    if nbirth is None or session is None:
        return ["no NBIRTH after the rebirth request"]
    request = view.story.host.rebirth_requests[0]
    between = [s for s in session.of_type(*DATA) if request <= s.at_ns < nbirth.at_ns]
    return (
        [f"{len(between)} DATA messages between the request and the NBIRTH"]
        if len(between) > len(DEVICE_IDS)
        else []
    )


def rebirth_complete(view: View) -> list[str]:
    """The rebirth is NBIRTH then a DBIRTH of every device, in the same session."""
    session, nbirth = _rebirth_nbirth(view)
    if nbirth is None or session is None:
        return ["no NBIRTH after the rebirth request"]
    dbirths = {s.device for s in session.of_type("DBIRTH") if s.order > nbirth.order}
    return (
        [] if dbirths >= set(view.device_ids) else [f"DBIRTHs after the rebirth: {sorted(dbirths)}"]
    )


def rebirth_same_bdseq(view: View) -> list[str]:
    from tests.sparkplug_view import bdseq_of

    session, nbirth = _rebirth_nbirth(view)
    if nbirth is None or session is None:
        return ["no NBIRTH after the rebirth request"]
    first = session.of_type("NBIRTH")[0]
    problems = (
        []
        if bdseq_of(nbirth.decoded) == session.will_bdseq == bdseq_of(first.decoded)
        else ["bdSeq changed"]
    )
    return problems + ([] if first is not nbirth else ["the rebirth came with a new session"])


def ddeath_on_device_loss(view: View) -> list[str]:
    """compressor-1's simulator stopped: a DDEATH of its device, then (back) a DBIRTH
    before its next DDATA."""
    device = DEVICE_IDS["compressor-1"]
    stopped, started = view.story.device_stopped_ns, view.story.device_started_ns
    mine = [s for s in view.sent if s.device == device and s.at_ns >= stopped]
    deaths = [s for s in mine if s.message_type == "DDEATH" and s.at_ns < started]
    if not deaths:
        return ["no DDEATH while its simulator was stopped"]
    after = [s for s in mine if s.order > deaths[0].order and s.message_type != "DDEATH"]
    if not after or after[0].message_type != "DBIRTH":
        return [f"after the DDEATH: {after[0] if after else 'nothing'}, not a DBIRTH"]
    return []


def intentional_disconnects(view: View) -> list[str]:
    """Every DISCONNECT the node sent (host offline, shutdown) came right after an NDEATH
    with the session's bdSeq."""
    from tests.sparkplug_view import bdseq_of

    problems, checked = [], 0
    for session in view.sessions.values():
        if session.disconnect_order is None:
            continue
        checked += 1
        before = [s for s in session.sent if s.order < session.disconnect_order]
        if not before or before[-1].message_type != "NDEATH":
            problems.append(
                f"session {session.number}: DISCONNECT without an NDEATH right before it"
            )
        elif bdseq_of(before[-1].decoded) != session.will_bdseq:
            problems.append(f"session {session.number}: NDEATH bdSeq differs from its Will's")
    return problems + (
        [] if checked >= 2 else [f"{checked} intentional disconnects seen, expected 2"]
    )


def shutdown_clean(view: View) -> list[str]:
    codes = view.story.exit_codes
    return (
        []
        if codes[-1:] == [0]
        else [f"the agent's exit codes {codes}\n{view.story.agent_log[-2000:]}"]
    )
