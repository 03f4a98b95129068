"""Documents: templates per entity rendered to text (XML, CSV, JSON), PDF or EDIFACT, numbered
from gapless sequences, stored immutably in the hub and delivered like records.

- :mod:`~.spec` — the ``documents:`` section of the configuration;
- :mod:`~.sandbox` — the sandboxed Jinja2 environment and its errors;
- :mod:`~.edifact`, :mod:`~.pdf`, :mod:`~.xsd` — the formats;
- :mod:`~.render` — a template compiled at load, rendered per record version;
- :mod:`~.issue` — once per (record version, template), numbered and stored in one transaction;
- the ``archive`` connector (``erpbridge.transports.archive``) keeps every document with its
  metadata and retention.
"""

from __future__ import annotations

# Only the configuration's models here: the configuration imports them on every start, the
# renderers (Jinja2, pydifact, xmlschema, WeasyPrint) load when a document is compiled.
from erpbridge.documents.spec import DocumentSpec, EdifactSpec, NumberingSpec

__all__ = ["DocumentSpec", "EdifactSpec", "NumberingSpec"]
