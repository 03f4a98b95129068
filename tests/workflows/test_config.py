"""``workflows:`` and ``when:`` in the configuration: compiled when sound, every problem placed
(``file:line path: message``, with "did you mean") when not, and typed in the JSON Schema."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from erpbridge.cli import app
from erpbridge.config import load_config
from erpbridge.config.schema import config_schema
from erpbridge.errors import ConfigError
from erpbridge.workflows.machine import Actor, TransitionRefused
from erpbridge.workflows.spec import FiredBy, TransitionSpec, WhenSpec, WorkflowSpec
from workflows.claims import ENTITY, config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "erpbridge.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    return [str(p) for p in info.value.problems]


def test_the_claim_workflow_and_its_triggers_compile(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, config()), env={})
    claim = loaded.workflows["claim"]
    assert claim.initial == "submitted"
    assert claim.allowed_from("submitted") == ["review", "reject"]
    assert claim.allowed_from("closed") == []
    assert [w.name for w in loaded.workflows_of("warranty_claim")] == ["claim"]
    assert set(loaded.triggers) == {"credit-memo-sap", "credit-note-dealer", "archive"}
    dealer = loaded.triggers["credit-note-dealer"]
    before = {"number": "W-1", "status": "in_review", "approved_amount": "10"}
    after = {**before, "status": "approved"}
    assert dealer(before, after, frozenset({"approve"}))
    assert not dealer(after, after, frozenset())  # already approved: not entered again
    assert not dealer(before, {**after, "approved_amount": "0"}, frozenset({"approve"}))
    sap = loaded.triggers["credit-memo-sap"]
    assert sap(None, after, frozenset({"approve"}))
    assert not sap(before, after, frozenset())


def test_every_workflow_problem_at_once_with_its_line(tmp_path: Path) -> None:
    text = ENTITY + textwrap.dedent(
        """\
        channels:
          vms: {system: folder, options: {path: inbox}}
          out: {system: folder, options: {path: out}}
        flows:
          - name: claims-in
            channel: vms
            entity: warranty_claim
            direction: in
            when: {enters: approved}
          - name: claims-out
            channel: out
            entity: warranty_claim
            direction: out
            status_policy: record
            when:
              enters: aproved
              transition: [approve, aprove]
              changed: [amont]
              condition: "amount > 0 and bogus == 1"
          - name: dealers-out
            channel: out
            entity: warranty_claim
            direction: out
            when: {condition: "__import__('os').system('true')"}
        workflows:
          claim:
            entity: warranty_claim
            states: [submitted, in_review, approved, closed, approved]
            initial: sumbitted
            final: [closed]
            transitions:
              review: {from: submitted, to: in_revue}
              approve:
                from: in_review
                to: approved
                guard: ["amount <= 5000", "amount.__class__ == 1", "amount >"]
                required: [aprover]
                by: {flows: [claims-inn]}
              close: {from: closed, to: submitted}
          orders:
            entity: warranty_claims
            states: [a, b]
            initial: a
            transitions: {go: {from: a, to: b}}
        """
    )
    found = problems(tmp_path, text)
    assert found == [
        "erpbridge.yaml:38 workflows.claim.states[4]: state 'approved' is listed twice",
        "erpbridge.yaml:39 workflows.claim.initial: unknown state 'sumbitted'; "
        "did you mean 'submitted'?",
        "erpbridge.yaml:42 workflows.claim.transitions.review.to: unknown state 'in_revue'; "
        "did you mean 'in_review'?",
        "erpbridge.yaml:46 workflows.claim.transitions.approve.guard[1]: 'amount' is a decimal, "
        "it has no fields ('amount.__class__')",
        "erpbridge.yaml:46 workflows.claim.transitions.approve.guard[2]: not a valid condition "
        "(invalid syntax): 'amount >'",
        "erpbridge.yaml:47 workflows.claim.transitions.approve.required[0]: warranty_claim has "
        "no field 'aprover'; did you mean 'approver'?",
        "erpbridge.yaml:48 workflows.claim.transitions.approve.by.flows[0]: 'claims-inn' is not "
        "an IN flow of warranty_claim; did you mean 'claims-in'? (IN flows: claims-in)",
        "erpbridge.yaml:49 workflows.claim.transitions.close.from: 'closed' is a final state: "
        "no transition leaves it",
        "erpbridge.yaml:51 workflows.orders.entity: unknown entity 'warranty_claims'; "
        "did you mean 'warranty_claim'?",
        "erpbridge.yaml:19 flows[0].when: an IN flow takes what its channel sends: 'when' is "
        "OUT only",
        "erpbridge.yaml:24 flows[1].status_policy: an OUT flow takes no status changes: "
        "status_policy is IN only",
        "erpbridge.yaml:28 flows[1].when.changed[0]: warranty_claim has no field 'amont'; "
        "did you mean 'amount'?",
        "erpbridge.yaml:29 flows[1].when.condition: unknown field 'bogus' in 'bogus'",
        "erpbridge.yaml:34 flows[2].when.condition: \"__import__('os').system('true')\" is not "
        "allowed: use field names, constants, comparisons, and, or, not",
    ]


def test_a_trigger_names_states_and_transitions_that_exist(tmp_path: Path) -> None:
    text = config().replace("when: {transition: approve}", "when: {transition: aprove}")
    text = text.replace("enters: [approved, rejected]", "enters: [approved, rejectd]")
    assert problems(tmp_path, text) == [
        "erpbridge.yaml:47 flows[2].when.transition: no workflow of warranty_claim has a "
        "transition 'aprove'; did you mean 'approve'?",
        "erpbridge.yaml:59 flows[4].when.enters[1]: no workflow of warranty_claim has a state "
        "'rejectd'; did you mean 'rejected'?",
    ]


def test_one_workflow_per_entity_and_field_and_unique_transition_names(tmp_path: Path) -> None:
    text = config() + textwrap.indent(
        textwrap.dedent(
            """\
            again:
              entity: warranty_claim
              states: [a, b]
              initial: a
              transitions: {go: {from: a, to: b}}
            payment:
              entity: warranty_claim
              field: dealer
              states: [open, paid]
              initial: open
              transitions: {approve: {from: open, to: paid}}
            """
        ),
        "  ",
    )
    found = problems(tmp_path, text)
    assert found == [
        "erpbridge.yaml:88 workflows.again.field: warranty_claim.status already has workflow "
        "'claim'; one workflow per entity and field",
        "erpbridge.yaml:98 workflows.payment.transitions.approve: warranty_claim already has a "
        "transition 'approve' (workflow 'claim'); transition names are unique per entity",
    ]


def test_unreachable_state_is_a_warning(tmp_path: Path) -> None:
    text = config().replace("close: {from: [credited, rejected], to: closed}", "")
    text = text.replace("final: [closed]", "final: []")
    loaded = load_config(write(tmp_path, text), env={})
    assert [str(w) for w in loaded.warnings] == [
        "erpbridge.yaml:69 workflows.claim.states[5]: no transition enters 'closed': unreachable"
    ]


def test_check_counts_workflows(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["check", str(write(tmp_path, config()))])
    assert result.exit_code == 0, result.output
    assert "1 workflow(s)" in result.output


def test_schema_types_workflows_and_when() -> None:
    schema = config_schema()
    assert "workflows" in schema["properties"]
    spec = schema["$defs"]["WorkflowSpec"]
    assert set(spec["required"]) == {"entity", "states", "initial", "transitions"}
    transition = schema["$defs"]["TransitionSpec"]["properties"]
    assert {"from", "to", "guard", "required", "by", "reason_required"} <= set(transition)
    flow = schema["$defs"]["FlowConfig"]["properties"]
    assert "when" in flow and "status_policy" in flow
    assert json.dumps(schema)  # serialisable as printed by `erpbridge schema`


def test_the_machine_checks_state_guard_required_reason_and_who(tmp_path: Path) -> None:
    claim = load_config(write(tmp_path, config()), env={}).workflows["claim"]
    clerk = Actor("client", "vms", frozenset({"write"}))
    record = {"number": "W-1", "status": "in_review", "amount": "7200", "approved_amount": None}

    def refused(name: str, payload: dict[str, object], actor: Actor = clerk) -> str:
        with pytest.raises(TransitionRefused) as info:
            claim.check(name, payload, actor, None)
        return f"{info.value.code}: {info.value}"

    assert refused("aprove", record) == (
        "unknown_transition: workflow 'claim' has no transition 'aprove'; did you mean "
        "'approve'? (transitions: review, approve, reject, credit, close)"
    )
    assert refused("credit", record) == (
        "illegal_transition: 'credit' cannot fire from in_review; allowed: approve, reject"
    )
    assert refused("approve", record) == (
        "required_missing: 'approve' needs approved_amount: empty"
    )
    assert refused("approve", {**record, "approved_amount": "7200"}) == (
        "guard_failed: guard of 'approve' failed: amount <= 5000 (amount is '7200')"
    )
    assert refused("reject", record) == "reason_required: 'reject' needs a reason"
    approved = {**record, "status": "approved"}
    assert refused("credit", approved) == (
        "not_allowed: client 'vms' may not fire 'credit' (allowed: scopes admin; flows claims-erp)"
    )
    admin = Actor("client", "boss", frozenset({"admin"}))
    assert claim.check("credit", approved, admin, None).to == "credited"
    erp = Actor("flow", "claims-erp")
    assert claim.check("credit", approved, erp, None).to == "credited"


@pytest.mark.parametrize(
    "name",
    sorted(
        {
            info.alias or field
            for model in (WorkflowSpec, TransitionSpec, WhenSpec, FiredBy)
            for field, info in model.model_fields.items()
        }
        - {"description"}
    ),
)
def test_workflow_setting_is_documented(name: str) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Workflows and triggers", 1)[1]
    assert f"{name}:" in section or f"`{name}`" in section
