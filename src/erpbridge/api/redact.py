"""What read clients see of run and delivery errors: local file paths taken out.

Errors of folder and SFTP channels name the folders and files they failed on
(``cannot write into /srv/erp/out: [Errno 13] Permission denied: '/srv/erp/out/x.json'``). That
is what an operator needs, and what a client with only ``read`` should not learn about the hub's
machine: for everyone but ``admin`` each absolute path becomes ``[path]``. The command line and
``admin`` clients see the text as stored; nothing is changed in the store.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from erpbridge.api.auth import Principal

__all__ = ["PATH_MARK", "shown_to", "without_paths"]

PATH_MARK = "[path]"

# A quoted absolute path may hold spaces: '/srv/my folder/x.json', "C:\\data\\x.csv".
_QUOTED = re.compile(r"""(['"])(?:/|[A-Za-z]:\\|\\\\)[^'"\n]*\1""")
# A bare one ends at white space or punctuation. It must not follow a word, a dot, a colon or a
# slash, so that URLs (https://host/path), dates (2026/01/31) and ratios (a/b) stay as they are.
_BARE = re.compile(r"""(?<![\w.:/\\\]~-])(?:/|[A-Za-z]:\\|\\\\)[^\s'",;()<>\[\]]+""")


def without_paths(text: str) -> str:
    """``text`` with every absolute file path (POSIX, Windows, UNC) replaced by ``[path]``."""
    text = _QUOTED.sub(lambda m: f"{m.group(1)}{PATH_MARK}{m.group(1)}", text)
    return _BARE.sub(PATH_MARK, text)


def shown_to(who: Principal, text: str | None) -> str | None:
    """An error text as ``who`` may see it: local paths only for admins."""
    if text is None or who.may("admin"):
        return text
    return without_paths(text)
