"""The warranty-claim configuration the workflow tests share: a declared entity, its status
workflow, an IN flow per status policy and OUT flows with ``when:`` triggers into folders."""

from __future__ import annotations

ENTITY = """\
entities:
  warranty_claim:
    key: [number]
    fields:
      number: string
      status: string
      amount: decimal
      approved_amount: decimal
      approver: string
      dealer: string
"""

WORKFLOW = """\
workflows:
  claim:
    entity: warranty_claim
    field: status
    states: [submitted, in_review, approved, rejected, credited, closed]
    initial: submitted
    final: [closed]
    transitions:
      review: {from: submitted, to: in_review}
      approve:
        from: in_review
        to: approved
        guard: "amount <= 5000"
        required: [approved_amount]
      reject:
        from: [submitted, in_review]
        to: rejected
        reason_required: true
      credit:
        from: approved
        to: credited
        by: {scopes: [admin], flows: [claims-erp]}
      close: {from: [credited, rejected], to: closed}
"""


def config(out_root: str = "out") -> str:
    """The whole configuration; OUT folders under ``out_root``."""
    return (
        ENTITY
        + f"""\
channels:
  vms:
    system: folder
    options: {{path: inbox}}
  erp:
    system: folder
    options: {{path: erp-inbox}}
  sap:
    system: folder
    options: {{path: {out_root}/sap}}
  dealer:
    system: folder
    options: {{path: {out_root}/dealer}}
  archive:
    system: folder
    options: {{path: {out_root}/archive}}
  everything:
    system: folder
    options: {{path: {out_root}/everything}}
flows:
  - name: claims-vms
    channel: vms
    entity: warranty_claim
    direction: in
    trigger: manual
  - name: claims-erp
    channel: erp
    entity: warranty_claim
    direction: in
    trigger: manual
    status_policy: record
  - name: credit-memo-sap
    channel: sap
    entity: warranty_claim
    direction: out
    trigger: immediate
    when: {{transition: approve}}
  - name: credit-note-dealer
    channel: dealer
    entity: warranty_claim
    direction: out
    trigger: immediate
    when: {{enters: approved, condition: "approved_amount > 0"}}
  - name: archive
    channel: archive
    entity: warranty_claim
    direction: out
    trigger: immediate
    when: {{enters: [approved, rejected]}}
  - name: every-version
    channel: everything
    entity: warranty_claim
    direction: out
    trigger: immediate
"""
        + WORKFLOW
    )
