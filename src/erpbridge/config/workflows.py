"""The workflow stage: each ``workflows:`` entry and each OUT flow's ``when:``, checked against
the entities and flows, and compiled (guards and conditions included).

Every problem is placed (``erpbridge.yaml:42 workflows.claim.transitions.approve.to: unknown
state 'aproved'; did you mean 'approved'?``) and all are reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from erpbridge.config.models import ConfigFile, FlowConfig
from erpbridge.config.problems import Loc, Problems, did_you_mean
from erpbridge.config.validation import SetAside
from erpbridge.model.entities import EntityCatalog, EntitySpec
from erpbridge.workflows.conditions import Condition, ConditionError, compile_condition
from erpbridge.workflows.machine import Transition, Workflow
from erpbridge.workflows.spec import TransitionSpec, WhenSpec, WorkflowSpec
from erpbridge.workflows.triggers import Trigger

__all__ = ["WorkflowChecks", "check_workflows"]


@dataclass
class WorkflowChecks:
    """The compiled workflows (by name) and the OUT flows' triggers (by flow name)."""

    workflows: dict[str, Workflow] = field(default_factory=dict)
    triggers: dict[str, Trigger] = field(default_factory=dict)
    #: Entities with a workflow that failed its checks: their triggers' states and
    #: transitions are not checked (no follow-on problems).
    broken: set[str] = field(default_factory=set)


def check_workflows(
    model: ConfigFile, catalog: EntityCatalog, problems: Problems, aside: SetAside
) -> WorkflowChecks:
    """Check and compile every workflow, then every flow's ``when:`` and ``status_policy``."""
    found = WorkflowChecks()
    owner: dict[tuple[str, str], str] = {}
    names: dict[str, dict[str, str]] = {}  # entity → transition name → workflow
    for name, spec in model.workflows.items():
        at: Loc = ("workflows", name)
        entity = catalog.get(spec.entity)
        if entity is None:
            found.broken.add(spec.entity)
            if not aside.entity(spec.entity):
                hint = did_you_mean(spec.entity, catalog)
                problems.add((*at, "entity"), f"unknown entity {spec.entity!r}{hint}")
            continue
        if (spec.entity, spec.field) in owner:
            problems.add(
                (*at, "field"),
                f"{spec.entity}.{spec.field} already has workflow "
                f"{owner[(spec.entity, spec.field)]!r}; one workflow per entity and field",
            )
            continue
        owner[(spec.entity, spec.field)] = name
        workflow = _workflow(name, spec, entity, model, problems, at)
        if workflow is None:
            found.broken.add(spec.entity)
            continue
        taken = names.setdefault(spec.entity, {})
        for transition in workflow.transitions:
            if transition in taken:
                problems.add(
                    (*at, "transitions", transition),
                    f"{spec.entity} already has a transition {transition!r} (workflow "
                    f"{taken[transition]!r}); transition names are unique per entity",
                )
            taken[transition] = name
        found.workflows[name] = workflow
    for i, flow in enumerate(model.flows):
        position = aside.flow_positions[i] if i < len(aside.flow_positions) else i
        _check_flow(flow, ("flows", position), found, catalog, problems)
    return found


def _workflow(
    name: str,
    spec: WorkflowSpec,
    entity: EntitySpec,
    model: ConfigFile,
    problems: Problems,
    at: Loc,
) -> Workflow | None:
    before = len(problems.found)
    status = entity.fields.get(spec.field)
    if status is None:
        hint = did_you_mean(spec.field, entity.fields)
        problems.add((*at, "field"), f"{spec.entity} has no field {spec.field!r}{hint}")
    elif status.type != "string":
        problems.add((*at, "field"), f"{spec.field!r} is a {status.type}; a status is a string")
    states = spec.states
    for i, state in enumerate(states):
        if state in states[:i]:
            problems.add((*at, "states", i), f"state {state!r} is listed twice")
        elif status is not None and status.choices is not None and state not in status.choices:
            problems.add(
                (*at, "states", i),
                f"{state!r} is not a choice of {spec.entity}.{spec.field} "
                f"(choices: {', '.join(status.choices)})",
            )
    _check_state(spec.initial, states, (*at, "initial"), problems)
    for i, state in enumerate(spec.final):
        _check_state(state, states, (*at, "final", i), problems)
    flows_in = [f.name for f in model.flows if f.direction == "in" and f.entity == spec.entity]
    transitions = {
        tname: _transition(tname, t, spec, entity, flows_in, problems, (*at, "transitions", tname))
        for tname, t in spec.transitions.items()
    }
    if len(problems.found) > before:
        return None
    entered = {spec.initial} | {t.to for t in transitions.values()}
    for i, state in enumerate(states):
        if state not in entered:
            problems.warn((*at, "states", i), f"no transition enters {state!r}: unreachable")
    return Workflow(
        name=name,
        entity=spec.entity,
        field=spec.field,
        states=tuple(states),
        initial=spec.initial,
        final=frozenset(spec.final),
        transitions=transitions,
    )


def _check_state(state: str, states: list[str], at: Loc, problems: Problems) -> bool:
    if state in states:
        return True
    problems.add(at, f"unknown state {state!r}{did_you_mean(state, states)}")
    return False


def _transition(
    name: str,
    spec: TransitionSpec,
    workflow: WorkflowSpec,
    entity: EntitySpec,
    flows_in: list[str],
    problems: Problems,
    at: Loc,
) -> Transition:
    sources = spec.sources()
    if sources == ["*"]:
        sources = [s for s in workflow.states if s not in workflow.final]
    else:
        loc = (*at, "from")
        for i, state in enumerate(sources):
            where = loc if isinstance(spec.from_, str) else (*loc, i)
            if _check_state(state, workflow.states, where, problems) and state in workflow.final:
                problems.add(where, f"{state!r} is a final state: no transition leaves it")
    _check_state(spec.to, workflow.states, (*at, "to"), problems)
    guards = []
    for i, text in enumerate(spec.guards()):
        where = (*at, "guard") if isinstance(spec.guard, str) else (*at, "guard", i)
        condition = _condition(text, entity, where, problems)
        if condition is not None:
            guards.append(condition)
    for i, required in enumerate(spec.required):
        if required not in entity.fields:
            hint = did_you_mean(required, entity.fields)
            problems.add((*at, "required", i), f"{workflow.entity} has no field {required!r}{hint}")
    by = spec.by
    if by is not None:
        for i, flow in enumerate(by.flows):
            if flow not in flows_in:
                hint = did_you_mean(flow, flows_in)
                problems.add(
                    (*at, "by", "flows", i),
                    f"{flow!r} is not an IN flow of {workflow.entity}{hint} "
                    f"(IN flows: {', '.join(flows_in) or 'none'})",
                )
        if not (by.scopes or by.roles or by.flows or by.clients):
            problems.add((*at, "by"), "names nobody: give scopes, roles, flows or clients")
    return Transition(
        name=name,
        sources=frozenset(sources),
        to=spec.to,
        guards=tuple(guards),
        required=tuple(spec.required),
        reason_required=spec.reason_required,
        scopes=None if by is None else frozenset(by.scopes),
        roles=frozenset(by.roles) if by else frozenset(),
        flows=frozenset(by.flows) if by else frozenset(),
        clients=frozenset(by.clients) if by else frozenset(),
    )


def _condition(text: str, entity: EntitySpec, at: Loc, problems: Problems) -> Condition | None:
    try:
        return compile_condition(text, entity.fields)
    except ConditionError as exc:
        problems.add(at, str(exc))
        return None


def _check_flow(
    flow: FlowConfig,
    at: Loc,
    found: WorkflowChecks,
    catalog: EntityCatalog,
    problems: Problems,
) -> None:
    if flow.direction == "out" and "status_policy" in flow.model_fields_set:
        problems.add(
            (*at, "status_policy"), "an OUT flow takes no status changes: status_policy is IN only"
        )
    if flow.when is None:
        return
    if flow.direction == "in":
        problems.add((*at, "when"), "an IN flow takes what its channel sends: 'when' is OUT only")
        return
    entity = catalog.get(flow.entity)
    if entity is None:
        return  # reported by the flow stage
    workflows = [w for w in found.workflows.values() if w.entity == flow.entity]
    broken = flow.entity in found.broken
    trigger = _trigger(flow.when, flow.entity, entity, workflows, broken, (*at, "when"), problems)
    if trigger is not None:
        found.triggers[flow.name] = trigger


def _names(value: str | list[str] | None) -> list[str] | None:
    return None if value is None else [value] if isinstance(value, str) else value


def _trigger(
    when: WhenSpec,
    name: str,
    entity: EntitySpec,
    workflows: list[Workflow],
    broken: bool,
    at: Loc,
    problems: Problems,
) -> Trigger | None:
    before = len(problems.found)
    states = [s for w in workflows for s in w.states]
    transitions = [t for w in workflows for t in w.transitions]
    for setting, given, known, kind in (
        ("enters", _names(when.enters), states, "state"),
        ("transition", _names(when.transition), transitions, "transition"),
    ):
        for i, value in enumerate(given or []):
            if value not in known and not broken:
                where = (*at, setting) if isinstance(getattr(when, setting), str) else (
                    *at, setting, i)  # fmt: skip
                problems.add(
                    where,
                    f"no workflow of {name} has a {kind} {value!r}{did_you_mean(value, known)}"
                    + ("" if workflows else f" ({name} has no workflow)"),
                )
    for i, changed in enumerate(when.changed or []):
        if changed not in entity.fields:
            hint = did_you_mean(changed, entity.fields)
            problems.add((*at, "changed", i), f"{name} has no field {changed!r}{hint}")
    condition = None
    if when.condition is not None:
        condition = _condition(when.condition, entity, (*at, "condition"), problems)
    if len(problems.found) > before or broken:
        return None
    enters, fired = _names(when.enters), _names(when.transition)
    return Trigger(
        workflows=tuple(workflows),
        enters=None if enters is None else frozenset(enters),
        transitions=None if fired is None else frozenset(fired),
        changed=None if when.changed is None else tuple(when.changed),
        condition=condition,
    )
