"""API tokens for report clients: `api_token create USER [--name N]` (prints the key once), `list`, `revoke PREFIX`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from notifier.models import ApiToken
from notifier.report.access import create_token, find_user, missing_rights


class Command(BaseCommand):
    help = "Create, list or revoke API tokens (Authorization: Token <key>) for the eligibility report."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="A new token for USER; the key is printed once, never stored.")
        create.add_argument("username")
        create.add_argument("--name", default="", help="What the token is for (max 100 characters).")
        actions.add_parser("list", help="Tokens by user, with their prefix and last use.")
        revoke = actions.add_parser("revoke", help="Delete the token whose key starts with PREFIX.")
        revoke.add_argument("prefix")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            self.create(options["username"], options["name"])
        elif action == "list":
            for token in ApiToken.objects.select_related("user").order_by("user__username", "created_at"):
                used = f"last used {token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never used"
                self.stdout.write(f"{token.prefix}…  {token.user.get_username():<20} {token.name or '-':<30} {used}")
        else:
            prefix = options["prefix"]
            if len(prefix) < 8:
                raise CommandError("prefix: give at least the first 8 characters of the key (see `api_token list`)")
            deleted, _ = ApiToken.objects.filter(prefix__startswith=prefix[:12]).delete()
            if not deleted:
                raise CommandError(f"prefix: no token starts with {prefix!r}")
            self.stdout.write(f"Revoked {deleted} token(s).")

    def create(self, username: str, name: str) -> None:
        if len(name) > 100 or "\x00" in name:
            raise CommandError("--name: at most 100 characters, no NUL")
        user = find_user(username)
        if user is None or not user.is_active:
            raise CommandError(f"username: no active user {username!r}")
        _token, key = create_token(user, name)
        self.stdout.write(key)
        lacking = missing_rights(user)
        if lacking:
            self.stderr.write(
                f"Note: {username} lacks the report right(s) {', '.join(lacking)}: the report will say 403."
            )
