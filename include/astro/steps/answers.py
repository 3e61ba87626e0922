"""Human answers of approval (HITL) tasks as data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class HumanAnswer:
    chosen: str
    params: dict[str, Any] = field(default_factory=dict)
    by: str | None = None  # None: nobody answered, the default applied at the timeout
    timed_out: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def human_answer(output: Mapping[str, Any] | None, default: str) -> HumanAnswer:
    """The HITL task's output (``chosen_options``, ``params_input``, ``responded_by_user``)."""
    output = output or {}
    chosen = (output.get("chosen_options") or [default])[0]
    user = output.get("responded_by_user")
    by = None
    if isinstance(user, Mapping):
        by = str(user.get("name") or user.get("id") or "user")
    elif user:
        by = str(user)
    return HumanAnswer(
        chosen=chosen,
        params=dict(output.get("params_input") or {}),
        by=by,
        timed_out=user is None,
    )
