"""What a flow does with a card number found in a record: reject the record, or mask the number.

Every record a flow maps passes :meth:`CardPolicy.apply`: a canonical record before it is stored
(IN) and the channel's payload before it is written (OUT). The scanner is :mod:`erpbridge.pci`.

- ``reject`` (the default): the record is rejected with the field path; the number is never in
  the reason, the stored rejection or any log.
- ``mask``: the number is stored as its first six and last four digits (``411111******1111``),
  the most PCI DSS allows to be kept in clear.

Business key fields and guarded fields (``no_card_numbers``) always reject: a masked key would
merge different records, and a guarded field's only valid content is a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from erpbridge.errors import DataError
from erpbridge.pci import has_card_number, mask_card_numbers

__all__ = ["CardAction", "CardPolicy", "CardSetting"]

CardAction = Literal["reject", "mask"]
#: A flow's ``card_numbers`` option: one action for every field, or field path → action with
#: ``"*"`` for the fields not named.
CardSetting = CardAction | dict[str, CardAction]

_MIN_TEXT = 13
_REASON = "holds a payment card number (PAN); the flow's card_numbers policy rejects it"
_KEY_REASON = "holds a payment card number (PAN); a business key or guarded field never takes one"


@dataclass(frozen=True)
class CardPolicy:
    """The card-number action per field path (dot-separated, without list indexes)."""

    default: CardAction = "reject"
    fields: Mapping[str, CardAction] = field(default_factory=dict)
    #: Fields that always reject, whatever the setting: the business key, guarded fields.
    always_reject: frozenset[str] = frozenset()

    @classmethod
    def of(cls, setting: CardSetting, always_reject: frozenset[str] = frozenset()) -> CardPolicy:
        """The policy of a flow's ``card_numbers`` option."""
        if isinstance(setting, str):
            return cls(setting, {}, always_reject)
        named = {path: action for path, action in setting.items() if path != "*"}
        return cls(setting.get("*", "reject"), named, always_reject)

    def action(self, path: str) -> CardAction:
        """The action for a field path: its own, the nearest enclosing field's, or the default."""
        probe = path
        while True:
            if probe in self.always_reject:
                return "reject"
            if probe in self.fields:
                return self.fields[probe]
            if "." not in probe:
                return self.default
            probe = probe.rsplit(".", 1)[0]

    def apply(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``payload`` as it may be stored or written; :class:`DataError` if a number rejects it.

        The usual record holds no card number: its longer texts are checked in one call to the
        scanner, and only a record that holds one is walked field by field.
        """
        texts: list[str] = []
        for value in payload.values():  # field names are the configuration's, not data
            kind = value.__class__
            if kind is str:
                if len(value) >= _MIN_TEXT:
                    texts.append(value)
            elif kind is not int and kind is not bool and value is not None:
                _collect(value, texts)
        if not texts or not has_card_number("\n".join(texts)):
            return payload
        result: dict[str, Any] = self._walk(payload, "", "")
        return result

    def _walk(self, value: Any, where: str, path: str) -> Any:
        if isinstance(value, str):
            if not has_card_number(value):
                return value
            if self.action(path) == "reject":
                key_or_guard = any(
                    path == p or path.startswith(p + ".") for p in self.always_reject
                )
                raise DataError(where, _KEY_REASON if key_or_guard else _REASON)
            return mask_card_numbers(value)
        if isinstance(value, Mapping):
            out = {}
            for name, item in value.items():
                sub = f"{path}.{name}" if path else str(name)
                at = f"{where}.{name}" if where else str(name)
                out[self._walk(name, at, sub) if isinstance(name, str) else name] = self._walk(
                    item, at, sub
                )
            return out
        if isinstance(value, list | tuple):
            return [self._walk(item, f"{where}[{i}]", path) for i, item in enumerate(value)]
        return value


def _collect(value: Any, texts: list[str]) -> None:
    """The strings of ``value`` (keys too) long enough to hold a card number."""
    if isinstance(value, str):
        if len(value) >= _MIN_TEXT:
            texts.append(value)
    elif isinstance(value, Mapping):
        for name, item in value.items():
            if isinstance(name, str) and len(name) >= _MIN_TEXT:
                texts.append(name)
            if item.__class__ is str:
                if len(item) >= _MIN_TEXT:
                    texts.append(item)
            elif isinstance(item, Mapping | list | tuple):
                _collect(item, texts)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, texts)
