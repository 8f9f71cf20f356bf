"""The run-log spool's own rules, on real files: order kept, refusals wait, waiting rows wait, bad entries go."""
from datetime import datetime

from panel.runlog.spool import Spool


class Refused(Exception):
    pass


def test_replay_keeps_order_waits_while_refused_and_for_missing_rows(tmp_path):
    spool = Spool(tmp_path)
    for n in range(3):
        spool.keep([("started", {"tid": f"t{n}", "now": datetime(2026, 1, 1, 0, 0, n)})], "locked")
    assert spool.pending and len(spool.waiting()) == 1
    written = []

    def refuse(steps):
        raise Refused("still locked")
    assert spool.replay(refuse, lambda exc: isinstance(exc, Refused)) == 0
    assert spool.pending  # nothing lost
    assert spool.replay(written.append, lambda exc: False, lambda steps, age: steps[0][1]["tid"] != "t1") == 1
    assert [s[0][1]["tid"] for s in written] == ["t0"]  # t1 waits for its row, and t2 behind it
    assert spool.replay(written.append, lambda exc: False) == 2
    assert [s[0][1]["tid"] for s in written] == ["t0", "t1", "t2"]
    assert written[0][0][1]["now"] == datetime(2026, 1, 1)  # datetimes survive the file
    assert not spool.pending and spool.waiting() == []


def test_an_entry_that_can_never_be_written_is_dropped_not_retried_for_ever(tmp_path):
    spool = Spool(tmp_path)
    spool.keep([("insert", {"tid": "dup"})], "locked")
    spool.keep([("started", {"tid": "ok"})], "locked")
    written = []

    def write(steps):
        if steps[0][1]["tid"] == "dup":
            raise ValueError("unique constraint")
        written.append(steps)
    assert spool.replay(write, lambda exc: False) == 1
    assert written == [[("started", {"tid": "ok"})]] and spool.waiting() == []


def test_the_owner_keeps_queueing_while_another_process_replays_its_file(tmp_path):
    """A new change must not overtake the owner's earlier ones while they are in another process's hands."""
    owner = Spool(tmp_path)
    owner.keep([("started", {"tid": "t"})], "locked")
    claimed = owner.mine.with_suffix(".replaying-1")  # pid 1 lives: a replay in progress elsewhere
    owner.mine.rename(claimed)
    assert owner.replay(lambda steps: None, lambda exc: False) == 0
    assert owner.pending  # so the next change is kept behind, not written past the claimed ones


def test_a_file_claimed_by_a_process_that_died_mid_replay_is_written_by_the_next_replay(tmp_path):
    import subprocess
    import sys
    owner = Spool(tmp_path)
    owner.keep([("started", {"tid": "a"})], "locked")
    owner.keep([("succeeded", {"tid": "a"})], "locked")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer exists
    owner.mine.rename(owner.mine.with_suffix(f".replaying-{dead.pid}"))
    written = []
    assert Spool(tmp_path).replay(written.append, lambda exc: False) == 2
    assert [steps[0][0] for steps in written] == ["started", "succeeded"]
    assert list(owner.folder.iterdir()) == []
