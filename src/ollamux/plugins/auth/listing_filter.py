"""Listings show a key only the models it may use."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...exchange import Principal
from ...transforms import JsonLinesTransform
from .policy import model_allowed


class ListingFilter(JsonLinesTransform):
    """Drops the entries of ``/api/tags``, ``/api/ps`` or ``/v1/models`` the key may not use."""

    def __init__(self, principal: Principal, list_key: str, name_key: str) -> None:
        super().__init__()
        self._principal = principal
        self._list_key = list_key
        self._name_key = name_key

    def transform(self, obj: Any) -> Iterable[Any]:
        if isinstance(obj, dict) and isinstance(obj.get(self._list_key), list):
            obj[self._list_key] = [
                item
                for item in obj[self._list_key]
                if isinstance(item, dict)
                and isinstance(item.get(self._name_key), str)
                and model_allowed(self._principal, item[self._name_key])
            ]
        return [obj]
