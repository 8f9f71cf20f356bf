"""The hosts' pane: each host's supervisord, its worker and Beat with Supervisor's states; start, stop, restart.

404: no such host, or no such program on it; 409: Supervisor refused (it could not start it, say); 502: the host's
supervisord refused the panel's credentials (a setting to fix, not the caller's login, so not 401); 503: it did not
answer within SUPERVISOR_TIMEOUT_S.
"""
from flask import current_app, jsonify

from panel.cluster import workers
from panel.fleet.hosts import place_nodes
from panel.supervision import follow
from panel.web.contract import api
from panel.web.schemas.hosts import HostAction, Hosts

ACTION_ERRORS = (404, 409, 502)


def fleet():
    """The hosts of SUPERVISORS, made once per app (their thread pool with them), their actions in the history."""
    return follow.pane(current_app._get_current_object())


def pane():
    """Every host, asked in parallel, with the Celery nodes the events show on it."""
    hosts = fleet().view()
    return place_nodes(hosts, workers.list_workers()) if hosts else hosts


@api(Hosts)
def list_hosts():
    """Every host of SUPERVISORS, asked in parallel: reachable or not (with the reason), its programs' states, the
    Celery nodes on it."""
    return jsonify({"hosts": pane()})


def _act(host, program, action):
    return jsonify({"status": "success", **fleet().act(host, program, action)})


@api(HostAction, *ACTION_ERRORS)
def start_program(host, program):
    """Start the worker or Beat on one host through its supervisord (a running one stays as it is, said so)."""
    return _act(host, program, "start")


@api(HostAction, *ACTION_ERRORS)
def stop_program(host, program):
    """Stop the worker or Beat on one host through its supervisord; Supervisor does not start it again."""
    return _act(host, program, "stop")


@api(HostAction, *ACTION_ERRORS)
def restart_program(host, program):
    """Stop, then start the worker or Beat on one host through its supervisord, waiting for each."""
    return _act(host, program, "restart")
