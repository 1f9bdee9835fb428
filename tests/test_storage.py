"""The storage rule's verdict (``study.storage.judge``): what the launcher says for each answer
the nodes can give. The probe itself runs on a real two-host cluster in tests/test_cluster.py."""

from __future__ import annotations

from pathlib import Path

from study.storage import FLAG, Sightings, judge

ROOT = Path("/data/studies/penalty_grid")


def test_a_node_that_cannot_see_the_study_dir_is_an_error_naming_it_and_the_flag():
    level, msg = judge(ROOT, Sightings(seen=("10.0.0.1",), unseen=("10.0.0.2",)))
    assert level == "error"
    assert "10.0.0.2" in msg and "10.0.0.1" not in msg
    assert f"{FLAG} /data/studies:" in msg and str(ROOT) in msg


def test_a_silent_node_or_a_lone_node_is_a_warning_naming_the_flag():
    for s in (Sightings(seen=("a", "b"), silent=("c",)), Sightings(seen=("a",))):
        level, msg = judge(ROOT, s)
        assert level == "warn" and FLAG in msg and "cannot tell" in msg


def test_every_node_seeing_it_is_fine():
    level, msg = judge(ROOT, Sightings(seen=("a", "b", "c")))
    assert level == "ok" and "all 3 nodes" in msg
