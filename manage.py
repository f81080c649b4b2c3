#!/usr/bin/env python
from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from django.core.management import execute_from_command_line

    from project.cli_errors import describe, wants_traceback

    if wants_traceback(sys.argv):
        execute_from_command_line(sys.argv)
        return
    try:
        execute_from_command_line(sys.argv)
    except Exception as exc:
        line = describe(exc)
        if line is None:
            raise
        sys.stderr.write(line + "\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
