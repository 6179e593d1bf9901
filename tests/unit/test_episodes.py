"""Log once per change of state: the begin/end answers every component relies on."""

from __future__ import annotations

from edge_agent.episodes import Episode, Episodes


def test_an_episode_is_reported_once_when_it_begins_and_once_when_it_ends() -> None:
    episode = Episode()
    assert not episode.end()  # nothing to recover from
    assert [episode.begin() for _ in range(3)] == [True, False, False]
    assert episode.active
    assert [episode.end() for _ in range(2)] == [True, False]
    assert episode.begin()  # a new episode is reported again


def test_episodes_are_kept_apart_by_key() -> None:
    episodes: Episodes[str] = Episodes()
    assert episodes.begin("a")
    assert episodes.begin("b")
    assert not episodes.begin("a")
    assert episodes.end("a")
    assert episodes.active("b")
    assert not episodes.active("a")
    assert not episodes.end("a")
    assert episodes.end("b")
