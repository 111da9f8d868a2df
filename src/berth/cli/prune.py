"""What every ``prune`` shares: POST ``…/prune``, list what went, sum the space.

``container``, ``image``, ``network``, ``volume`` and ``system prune`` print
each section as docker does: a ``Deleted …:`` title, one line an item (images
as ``untagged:``/``deleted:``), a blank line; and at the end the reclaimed
space.
"""

from __future__ import annotations

from typing import Any

from berth.cli.context import CliContext
from berth.cli.formatting import human_size
from berth.client.engine import filters_json


def prune_section(cli: CliContext, path: str, filters: list[tuple[str, str]], key: str, title: str) -> Any:
    """POST ``path`` with ``filters``, print the ``key`` list under ``title``; return SpaceReclaimed (or 0)."""
    body = cli.client.post_json(path, {"filters": filters_json(filters)}) or {}
    deleted = body.get(key) or []
    if deleted:
        lines = [f"{title}:"]
        for item in deleted:
            if isinstance(item, dict):
                if item.get("Untagged"):
                    lines.append(f"untagged: {item['Untagged']}")
                if item.get("Deleted"):
                    lines.append(f"deleted: {item['Deleted']}")
            else:
                lines.append(str(item))
        cli.out("\n".join(lines) + "\n")
    return body.get("SpaceReclaimed") or 0


def print_reclaimed(cli: CliContext, space: Any) -> None:
    cli.out(f"Total reclaimed space: {human_size(float(space))}")
