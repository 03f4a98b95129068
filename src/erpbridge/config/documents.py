"""The documents stage: each template compiled (``file:line`` of a template error), its entity
and XSD checked, and each OUT flow's ``document:`` matched to a template of its entity."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from erpbridge.config.models import ConfigFile
from erpbridge.config.problems import Problems, did_you_mean
from erpbridge.config.validation import SetAside
from erpbridge.model.entities import EntityCatalog

if TYPE_CHECKING:
    from erpbridge.documents.render import CompiledDocument

__all__ = ["check_documents"]


def check_documents(
    model: ConfigFile,
    catalog: EntityCatalog,
    base_dir: Path,
    problems: Problems,
    aside: SetAside,
) -> dict[str, CompiledDocument]:
    """Compile every document template; report what is wrong with each and with the flows'
    references to them."""
    compiled: dict[str, CompiledDocument] = {}
    _check_flows(model, problems, aside)
    if not model.documents:
        return compiled
    # Jinja2 and pydifact cost ~0.15 s to import: only for a configuration with documents.
    from erpbridge.documents.render import compile_document
    from erpbridge.documents.sandbox import TemplateProblem
    from erpbridge.documents.xsd import XmlProblem

    for name, spec in model.documents.items():
        at = ("documents", name)
        if catalog.get(spec.entity) is None and not aside.entity(spec.entity):
            problems.add(
                (*at, "entity"),
                f"unknown entity {spec.entity!r}{did_you_mean(spec.entity, catalog)} "
                f"(entities: {', '.join(catalog)})",
            )
        if spec.number_of is not None:
            _check_number_of(name, spec.entity, spec.number_of, model, problems)
        try:
            compiled[name] = compile_document(name, spec, base_dir)
        except TemplateProblem as exc:
            problems.add((*at, "template"), f"template {exc}")
        except XmlProblem as exc:
            problems.add((*at, "xsd"), str(exc))
    return compiled


def _check_number_of(
    name: str, entity: str, lead: str, model: ConfigFile, problems: Problems
) -> None:
    at = ("documents", name, "number_of")
    other = model.documents.get(lead)
    if other is None or lead == name:
        hint = did_you_mean(lead, [n for n in model.documents if n != name])
        problems.add(at, f"unknown document {lead!r}{hint}")
    elif other.entity != entity:
        problems.add(at, f"document {lead!r} renders {other.entity!r} records, not {entity!r}")
    elif other.numbering is None:
        problems.add(at, f"document {lead!r} has no numbering of its own to share")


def _check_flows(model: ConfigFile, problems: Problems, aside: SetAside) -> None:
    for i, flow in enumerate(model.flows):
        position = aside.flow_positions[i] if i < len(aside.flow_positions) else i
        channel = model.channels.get(flow.channel)
        archive = channel is not None and "archive" in (channel.system, channel.transport)
        if flow.document is None:
            if archive and flow.direction == "out":
                problems.add(
                    ("flows", position, "channel"),
                    f"channel {flow.channel!r} is an archive, which keeps documents: the flow "
                    "needs `document:`",
                )
            continue
        at = ("flows", position, "document")
        if flow.direction != "out":
            problems.add(at, "an IN flow reads records; only an OUT flow delivers a document")
            continue
        spec = model.documents.get(flow.document)
        if spec is None:
            if not aside.document(flow.document):
                known = ", ".join(model.documents) or "none"
                hint = did_you_mean(flow.document, model.documents)
                problems.add(at, f"unknown document {flow.document!r}{hint} (documents: {known})")
        elif spec.entity != flow.entity:
            problems.add(
                at,
                f"document {flow.document!r} renders {spec.entity!r} records, but the flow "
                f"delivers {flow.entity!r}",
            )
