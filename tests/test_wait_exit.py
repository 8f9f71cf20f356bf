"""Waiting for processes to end (the wait behind every stop and cancel): at their exit, never a busy loop, never
fooled by a reused pid, and the same answer where no pidfd can be had."""
import subprocess
import sys
import threading

import psutil
import pytest

from panel.host import oscontrol

WAIT_S = 30


@pytest.fixture
def spawn():
    """Processes that end when their stdin is closed; every one is killed at teardown."""
    started = []

    def make():
        proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
        started.append(proc)
        return proc
    yield make
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=WAIT_S)


def member(proc):
    return proc.pid, psutil.Process(proc.pid).create_time()


def _waited(members, timeout_s):
    """wait_gone in a thread, so the test can end processes while it waits; (thread, result holder)."""
    result = []
    thread = threading.Thread(target=lambda: result.append(oscontrol.wait_gone(members, timeout_s)), daemon=True)
    thread.start()
    return thread, result


def test_the_wait_ends_when_the_process_ends(spawn):
    proc = spawn()
    thread, result = _waited([member(proc)], WAIT_S)
    proc.stdin.close()
    thread.join(WAIT_S)
    assert result == [[]], "gone"
    assert proc.poll() is not None or psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE


def test_a_process_that_does_not_end_is_returned_at_the_timeout(spawn):
    proc = spawn()
    assert oscontrol.wait_gone([member(proc)], 0.3) == [member(proc)]
    assert proc.poll() is None, "waiting does not touch it"


def test_one_ended_process_does_not_turn_the_wait_for_another_into_a_busy_loop(spawn, monkeypatch):
    ended, lasting = spawn(), spawn()
    looks = []
    real_alive = oscontrol._alive
    monkeypatch.setattr(oscontrol, "_alive", lambda pid, ct: looks.append(pid) or real_alive(pid, ct))
    thread, result = _waited([member(ended), member(lasting)], 1.0)
    ended.stdin.close()
    ended.wait(WAIT_S)
    thread.join(WAIT_S)
    assert result == [[member(lasting)]]
    # a readable pidfd left in the poll set wakes it at once, again and again: thousands of looks in a second
    assert looks.count(lasting.pid) < 30, looks.count(lasting.pid)


def test_a_reused_pid_is_gone_at_once_and_left_alone(spawn):
    proc = spawn()
    pid, started = member(proc)
    assert oscontrol.wait_gone([(pid, started - 100.0)], WAIT_S) == []  # another process had this pid then
    assert proc.poll() is None


def test_without_pidfds_the_wait_polls_and_gives_the_same_answer(spawn, monkeypatch):
    def no_pidfd(pid):
        raise OSError(38, "Function not implemented")
    monkeypatch.setattr(oscontrol.os, "pidfd_open", no_pidfd)
    proc, lasting = spawn(), spawn()
    thread, result = _waited([member(proc)], WAIT_S)
    proc.stdin.close()
    thread.join(WAIT_S)
    assert result == [[]]
    assert oscontrol.wait_gone([member(lasting)], 0.2) == [member(lasting)]
