"""Status machines (workflows), their transitions and the ``when:`` triggers of OUT flows.

:mod:`~erpbridge.workflows.spec` is the configuration, :mod:`~erpbridge.workflows.conditions`
the guard and condition form, :mod:`~erpbridge.workflows.machine` a compiled workflow and its
checks, :mod:`~erpbridge.workflows.triggers` the compiled ``when:`` the outbox applies.
"""
