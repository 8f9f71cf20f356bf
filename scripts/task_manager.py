#!/usr/bin/env python3
"""Check, locate, revoke and clean up one Celery task by id."""
import argparse
import json
import sys

from celery import states
from cli_common import EXIT_NOT_FOUND, EXIT_OK, add_common, emit, open_app, record_text, run, steps_text, who


def where_text(where):
    if not where["workers"]:
        return ["  workers: none answered"]
    lines = [f"  workers answering: {', '.join(where['workers'])}"]
    for label in ("active", "reserved"):
        if where[label]:
            lines.append(f"  {label.upper()} on {', '.join(where[label])}")
    for entry in where["scheduled"]:
        lines.append(f"  SCHEDULED on {entry['worker']} for {entry['eta']}")
    if not (where["active"] or where["reserved"] or where["scheduled"]):
        lines.append("  not in any worker's active, reserved or scheduled list")
    return lines


def backend_text(backend):
    """What the result backend keeps of the task: its state and result, or why it keeps nothing."""
    if backend.get("kept") is False:
        return [f"  result backend: keeps nothing ({backend['why']})"]
    lines = [f"  result backend: {backend['state']}"]
    if backend.get("result") is not None:
        lines.append(f"  stored result: {backend['result']}")
    return lines


def progress_text(progress):
    """A running task's own state and the meta it reported with it (update_state), as JSON."""
    if not progress:
        return []
    return [f"  progress: {progress['state']} {json.dumps(progress['meta'], ensure_ascii=False, sort_keys=True)}"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    add_common(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("status", "state from the result backend and the panel's database"),
                       ("info", "everything known, and where the task is now"),
                       ("revoke", "revoke it and confirm the outcome"),
                       ("cleanup", "forget its result and close its record")):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("task_id")
        if name == "revoke":
            cmd.add_argument("--terminate", action="store_true", help="also stop it if it is running")
    args = parser.parse_args(argv)
    app = open_app(args)
    celery = app.extensions["celery"]
    host = app.extensions["supervisor"].host  # the processes this panel may signal
    from panel.runlog import operations, progress

    report = run(app, lambda: operations.info(celery, args.task_id))
    if not operations.known(report):
        emit(args, dict(report, found=False),
             [f"task {args.task_id}: not found (no record, no result, no worker has it)"])
        return EXIT_NOT_FOUND
    if args.command in ("status", "info"):
        if args.command == "status":
            report.pop("where", None)
        if report["backend"].get("state") not in states.ALL_STATES:  # a state of the task's own: its meta too
            report["progress"] = run(app, lambda: progress.of_task(celery, args.task_id))
        lines = ([f"task {args.task_id}"] + backend_text(report["backend"]) + progress_text(report.get("progress"))
                 + record_text(report["record"]))
        if args.command == "info":
            lines += where_text(report["where"])
        emit(args, report, lines)
        return EXIT_OK
    if args.command == "revoke":
        result = run(app, lambda: operations.revoke(celery, host, args.task_id, args.terminate, who()))
    else:
        result = run(app, lambda: operations.cleanup(celery, args.task_id))
    emit(args, result, [f"{args.command} {args.task_id}"] + steps_text(result))
    return EXIT_OK if result["ok"] else EXIT_NOT_FOUND


if __name__ == "__main__":
    sys.exit(main())
