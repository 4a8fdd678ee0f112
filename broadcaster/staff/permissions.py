"""Who may do what: one table of actions and the roles that may take them.

Every face asks this table: the API's staff dependencies before a request's body is read,
the console's page guards, its menu and the buttons it shows, the CLI; and the domain
asks it again where the action is done, so a face that forgot to ask is still refused.

Two rules about a person and an alert sit next to the table, for the same reason: only
a draft's author (or an admin) edits, schedules or submits it, and four eyes: whoever
wrote any of an alert's text, or sent it for approval, never reviews it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType

from broadcaster.errors import Forbidden
from broadcaster.staff.models import Operator, Role


class Action(StrEnum):
    """What a member of staff may be allowed to do."""

    # See alerts: the list, one alert, its preview and progress.
    READ_ALERTS = "read_alerts"
    # Compose, edit, schedule and submit a draft; write an Update or Cancel of an alert.
    WRITE_ALERTS = "write_alerts"
    # Edit, schedule or submit a draft somebody else wrote.
    ACT_ON_OTHERS_DRAFTS = "act_on_others_drafts"
    # Approve or reject an alert awaiting approval (never one's own: `second_person`).
    REVIEW_ALERTS = "review_alerts"
    # Cancel an alert in any live state.
    CANCEL_ALERTS = "cancel_alerts"
    # Read and export the delivery log, message by message.
    READ_DELIVERY_LOG = "read_delivery_log"
    # Read the audit trail, verify its chain and take a checkpoint of its tip.
    READ_AUDIT_TRAIL = "read_audit_trail"
    # Seal again an audit tip found unsealed.
    RESEAL_AUDIT_TRAIL = "reseal_audit_trail"
    # List staff accounts and create them.
    MANAGE_OPERATORS = "manage_operators"
    # See one's own account; issue, list and revoke one's own tokens.
    OWN_ACCOUNT = "own_account"
    # Revoke somebody else's token.
    REVOKE_ANY_TOKEN = "revoke_any_token"  # noqa: S105 - an action, not a secret
    # See what the sandbox providers received (development and demo only).
    VIEW_SANDBOX = "view_sandbox"


_OPERATOR, _APPROVER, _AUDITOR, _ADMIN = Role.OPERATOR, Role.APPROVER, Role.AUDITOR, Role.ADMIN
_ANYONE = (_OPERATOR, _APPROVER, _AUDITOR, _ADMIN)

# In the order of `Role`, as refusals name them ("needs the approver or admin role").
PERMISSIONS: Mapping[Action, tuple[Role, ...]] = MappingProxyType(
    {
        Action.READ_ALERTS: _ANYONE,
        Action.WRITE_ALERTS: (_OPERATOR, _ADMIN),
        Action.ACT_ON_OTHERS_DRAFTS: (_ADMIN,),
        Action.REVIEW_ALERTS: (_APPROVER, _ADMIN),
        Action.CANCEL_ALERTS: (_OPERATOR, _APPROVER, _ADMIN),
        Action.READ_DELIVERY_LOG: (_AUDITOR, _ADMIN),
        Action.READ_AUDIT_TRAIL: (_AUDITOR, _ADMIN),
        Action.RESEAL_AUDIT_TRAIL: (_ADMIN,),
        Action.MANAGE_OPERATORS: (_ADMIN,),
        Action.OWN_ACCOUNT: _ANYONE,
        Action.REVOKE_ANY_TOKEN: (_ADMIN,),
        Action.VIEW_SANDBOX: _ANYONE,
    }
)


def roles_for(action: Action) -> tuple[Role, ...]:
    """The roles that may take `action`."""
    return PERMISSIONS[action]


def can(operator: Operator, action: Action) -> bool:
    """Whether `operator`'s account is active and its role may take `action`."""
    return operator.active and operator.role in PERMISSIONS[action]


def require(operator: Operator, action: Action) -> None:
    """Refuse (Forbidden) an inactive account, or one whose role may not take `action`."""
    if not operator.active:
        raise Forbidden(f"operator {operator.username} is deactivated")
    if operator.role not in PERMISSIONS[action]:
        allowed = " or ".join(role.value for role in PERMISSIONS[action])
        raise Forbidden(f"this needs the {allowed} role; {operator.username} is {operator.role}")


def may_act_on_draft(operator: Operator, *, author_id: int) -> bool:
    """Only a draft's author, or whoever may act on others' drafts, edits, schedules or
    submits it (the role to write at all is `Action.WRITE_ALERTS`)."""
    return operator.id == author_id or can(operator, Action.ACT_ON_OTHERS_DRAFTS)


def second_person(
    reviewer: Operator,
    *,
    author_id: int,
    submitted_by_id: int | None,
    editor_ids: Iterable[int],
) -> bool:
    """Four eyes: whether `reviewer` is somebody else than everyone who wrote, edited or
    submitted the alert, and so may approve or reject it."""
    return reviewer.id not in {author_id, submitted_by_id, *editor_ids}
