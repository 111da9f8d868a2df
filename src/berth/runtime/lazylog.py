"""A logger that imports `logging` on its first use.

The runtime's modules are imported by every `berth-runtime` command, and `logging`
(with `threading`, `traceback`, `string` and `weakref` behind it) cost more than the
warnings they log are ever printed. `getLogger(__name__)` here is a stand-in that
forwards to the real logger of that name once something is logged.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _LazyLogger:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        import logging

        return getattr(logging.getLogger(self.name), attr)


def getLogger(name: str) -> _LazyLogger:  # noqa: N802 (logging's name)
    return _LazyLogger(name)
