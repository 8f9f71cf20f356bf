"""`flask --app app users|tokens|runs|celery-check ...`: accounts, API tokens, the run clean-up and the attached
Celery app's facts from the command line."""
import getpass
import os
import sys

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from models import ROLES, iso
from panel.errors import UserError
from panel.runlog import retention
from panel.security import audit, users

users_cli = AppGroup("users", help="Create, list and change panel users.")
tokens_cli = AppGroup("tokens", help="Create, list and revoke API tokens.")
runs_cli = AppGroup("runs", help="The run log: retention clean-up.")


def _actor():
    return f"cli:{getpass.getuser()}"


def _read_password(from_stdin):
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _fail(exc):
    raise click.ClickException(str(exc))


def _audited(action, target, fn):
    try:
        result = fn()
    except UserError as exc:
        audit.record(_actor(), "cli", action, target, "failure", str(exc))
        _fail(exc)
    audit.record(_actor(), "cli", action, target, "success")
    return result


@users_cli.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def create_user(name, role, password_stdin):
    """Create a user (the password is asked for, or read from stdin)."""
    password = _read_password(password_stdin)
    _audited("users.create", name, lambda: users.create(name, password, role))
    click.echo(f"created {name} ({role})")


@users_cli.command("list")
def list_users():
    """List users with their role and state."""
    for user in users.all_users():
        last = iso(user.last_login_at, "seconds") or "never"
        click.echo(f"{user.username:<24} {user.role:<9} {'active' if user.active else 'disabled':<9} last login {last}")


@users_cli.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
def set_role(name, role):
    """Change a user's role (their open sessions end)."""
    _audited("users.set-role", f"{name} -> {role}", lambda: users.set_role(name, role))
    click.echo(f"{name} is now {role}")


@users_cli.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True)
@click.option("--end-tokens/--keep-tokens", default=None,
              help="End the user's API tokens too, or keep them working (asked when neither is given on a terminal).")
def set_password(name, password_stdin, end_tokens):
    """Change a user's password (their open sessions end; their API tokens too with --end-tokens)."""
    password = _read_password(password_stdin)
    if end_tokens is None:  # offered, not assumed: a token may be what a script of theirs runs on
        end_tokens = (not password_stdin and sys.stdin.isatty()
                      and click.confirm(f"End every API token of {name} too?", default=False))
    changed = _audited("users.set-password", name, lambda: users.set_password(name, password, end_tokens))
    click.echo(changed.summary(name, end_tokens))


@users_cli.command("disable")
@click.argument("name")
def disable(name):
    """Disable a user: no login, no tokens, open sessions end."""
    _audited("users.disable", name, lambda: users.set_active(name, False))
    click.echo(f"{name} disabled")


@users_cli.command("end-sessions")
@click.argument("name")
def end_sessions(name):
    """Log a user out of every browser at once (a cookie may have been copied)."""
    ended = _audited("users.end-sessions", name, lambda: users.end_sessions(name))
    click.echo(f"{ended} session(s) of {name} ended")


@users_cli.command("enable")
@click.argument("name")
def enable(name):
    """Enable a disabled user again."""
    _audited("users.enable", name, lambda: users.set_active(name, True))
    click.echo(f"{name} enabled")


@tokens_cli.command("create")
@click.argument("user")
@click.option("--name", default="", help="A label, e.g. what the token is for.")
def create_token(user, name):
    """Create a token for USER and print it once (it is stored hashed)."""
    token, plain = _audited("tokens.create", user, lambda: users.create_token(user, name))
    click.echo(plain)
    click.echo(f"token id {token.id} for {user}; shown once, keep it safe. "
               f'Use it as: curl -H "Authorization: Bearer <token>" ...', err=True)


@tokens_cli.command("list")
def list_tokens():
    """List tokens (never their secret)."""
    for t in users.all_tokens():
        state = f"revoked {iso(t.revoked_at, 'seconds')}" if t.revoked_at else "live"
        used = iso(t.last_used_at, "minutes") or "never"
        click.echo(f"{t.id:>4} {t.prefix}…  {t.user.username:<20} {t.name:<20} {state:<28} last used {used}")


@tokens_cli.command("revoke")
@click.argument("token_id", type=int)
def revoke(token_id):
    """Revoke a token by id."""
    _audited("tokens.revoke", str(token_id), lambda: users.revoke_token(token_id))
    click.echo(f"token {token_id} revoked")


@runs_cli.command("cleanup")
@click.option("--days", type=click.IntRange(0, retention.KEEP_DAYS_MAX), default=retention.DEFAULT_KEEP_DAYS,
              show_default=True, help="Keep runs queued in the last DAYS days.")
@click.option("--include-failures", is_flag=True, help="Delete old failed and revoked runs too (kept by default).")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
def cleanup_runs(days, include_failures, dry_run):
    """Delete old successful runs (the same clean-up as the scheduled cleanup_results task)."""
    outcome = retention.cleanup(days=days, include_failures=include_failures, dry_run=dry_run)
    if dry_run:
        click.echo(f"would delete {outcome['would_delete']} run(s) in {', '.join(outcome['states'])} "
                   f"queued before {outcome['before']}")
        return
    audit.record(_actor(), "cli", "runs.cleanup", f"{days} days", "success", f"deleted {outcome['deleted']}")
    click.echo(f"deleted {outcome['deleted']} run(s) in {', '.join(outcome['states'])} "
               f"queued before {outcome['before']}")


def _check_lines(facts):
    """celery-check's report in words: one line per fact, ✓ or ✗."""
    proj, mark = facts["project"], (lambda ok: "✓" if ok else "✗")
    lines = [f"app         {proj['app']} in {proj['workdir']}" + (" (the embedded demo)" if proj["embedded"] else ""),
             f"celery      {mark(proj['celery_version'])} {proj['celery_version'] or proj['celery_bin']}",
             f"app loads   {mark(proj['loads'])}" + (f"\n{proj['error']}" if proj["error"] else "")]
    for part in ("broker", "backend"):
        answer = facts[part]
        detail = f"{answer['latency_ms']} ms" if "latency_ms" in answer else answer.get("error", "")
        words = [f"{part:<11} {mark(answer['ok'])}", answer.get("kind") or "", detail, answer.get("note") or ""]
        lines.append(" ".join(word for word in words if word))
    if not facts["workers"]:
        lines.append("workers     none answered: start a worker to list the task types it registers")
    for worker, types in sorted(facts["workers"].items()):
        lines.append(f"worker      {worker}: {', '.join(types) or '(no task types)'}")
    return lines + _settings_lines(facts["settings"]) + [f"⚠ {w}" for w in facts.get("supervisors", [])]


def _settings_lines(conf):
    """The project's settings: where they were read, and each warning with the line to add (warnings, not errors)."""
    where = {"workers": f"from its workers ({', '.join(conf['workers'])})", "report": "from `celery report`",
             "panel": "the panel's own (embedded app)", "unread": "✗ not read"}[conf["source"]]
    lines = [f"settings    {where}" + (f": {conf['error']}" if conf["error"] else "")]
    for warning in conf["warnings"]:
        lines.append(f"⚠ {warning['setting']}: {warning['message']}")
        if warning["line"]:
            lines.append(f"    add to the project: {warning['line']}")
    return lines


@click.command("celery-check")
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON.")
@with_appcontext
def celery_check(as_json):
    """What the panel found of its Celery app: app, Celery version, broker, backend, task types
    (exit 1: a part failed)."""
    import json

    from panel.fleet import hosts
    from panel.health import app_check
    facts = app_check.check(current_app.config, current_app.extensions["celery"],
                            current_app.extensions["supervisor"].child_env())
    config = current_app.config
    facts["supervisors"] = [f"SUPERVISORS: {w}" for w in hosts.exposed(config.get("SUPERVISORS") or {})]
    if config["PROCESS_MANAGER"] == "supervisor":  # this host's own, as exposed when it is reached over a network
        facts["supervisors"] += [f"SUPERVISOR_URL: {w.partition(': ')[2]}"
                                 for w in hosts.exposed({"this host": config["SUPERVISOR_URL"]})]
    click.echo(json.dumps(facts, indent=2) if as_json else "\n".join(_check_lines(facts)))
    ok = facts["project"]["loads"] and facts["broker"]["ok"] and facts["backend"]["ok"]
    sys.exit(0 if ok else 1)


def register(app):
    app.cli.add_command(celery_check)
    app.cli.add_command(users_cli)
    app.cli.add_command(runs_cli)
    app.cli.add_command(tokens_cli)
    os.environ.setdefault("FLASK_APP", "app")
