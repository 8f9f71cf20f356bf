#!/usr/bin/env python3
"""Find and stop Celery tasks caught in retry loops."""
import argparse
import sys

from cli_common import EXIT_NOT_FOUND, EXIT_OK, add_common, emit, open_app, record_text, run, steps_text, who


def check_text(task_id, report):
    """RETRYING with the next attempt, or how the loop stopped (revoked, by whom, when)."""
    if report["retrying"]:
        return [f"task {task_id}: RETRYING", f"  retries so far: {report['retries']}",
                f"  next attempt: {report['next_attempt'] or '-'}"]
    stopped = report["stopped"]
    if stopped:
        return [f"task {task_id}: not retrying: stopped, {stopped['state']} at {stopped['at']}",
                f"  {stopped['reason']}", f"  retries so far: {report['retries']}"]
    if report["revoked_on"]:
        return [f"task {task_id}: not retrying: revoked on {', '.join(report['revoked_on'])} "
                "(discarded when it falls due)"]
    return [f"task {task_id}: not retrying", f"  retries so far: {report['retries']}"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    add_common(parser)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("task_id", nargs="?", help="stop this task's retry loop for good")
    mode.add_argument("--check", metavar="TASK_ID", help="is it retrying, how often so far, when next")
    mode.add_argument("--all-retries", action="store_true", help="every task waiting for a retry, on every worker")
    args = parser.parse_args(argv)
    app = open_app(args)
    celery = app.extensions["celery"]
    from panel.runlog import operations

    if args.all_retries:
        tasks = run(app, lambda: operations.retrying_tasks(celery))
        lines = [f"{len(tasks)} task(s) waiting for a retry"] + [
            f"  {t['name']} {t['id']}  retries {t['retries'] if t['retries'] is not None else '?'}  "
            f"next {t['next_attempt']}  on {t['worker']}" for t in tasks]
        emit(args, {"tasks": tasks}, lines)
        return EXIT_OK
    task_id = args.check or args.task_id
    report = run(app, lambda: operations.retry_check(celery, task_id))
    if not operations.known(report):
        emit(args, dict(report, found=False), [f"task {task_id}: not found"])
        return EXIT_NOT_FOUND
    if args.check:
        emit(args, report, check_text(task_id, report) + record_text(report["record"]))
        return EXIT_OK if report["retrying"] else EXIT_NOT_FOUND  # like grep: 0 while it is in a retry loop
    result = run(app, lambda: operations.stop_retries(celery, app.extensions["supervisor"].host, task_id, who()))
    emit(args, result, [f"stop retries of {task_id}"] + steps_text(result))
    return EXIT_OK if result["ok"] else EXIT_NOT_FOUND


if __name__ == "__main__":
    sys.exit(main())
