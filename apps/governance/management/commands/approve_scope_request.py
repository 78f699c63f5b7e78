"""``approve_scope_request ID --as USERNAME --reason TEXT [--deny]``: decide one request.

Exactly the admin's rules (it calls the same service): a refusal exits non-zero with the
reason on stderr, so scripts cannot mistake "refused" for "done".
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.governance.models import ScopeRequest, ScopeRequestStatus
from apps.governance.services import requests as svc

ERROR_NO_REQUEST = "No scope request #{id}."
ERROR_NO_USER = "No active staff user {username!r}."


class Command(BaseCommand):
    help = "Approve (or with --deny, deny) a scope request as a named member of staff."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("id", type=int)
        parser.add_argument("--as", dest="username", required=True,
                            help="The member of governance staff deciding.")
        parser.add_argument("--reason", required=True, help="Kept in the audit log.")
        parser.add_argument("--deny", action="store_true", help="Deny instead of approving.")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        request = ScopeRequest.objects.filter(pk=options["id"]).first()
        if request is None:
            raise CommandError(ERROR_NO_REQUEST.format(id=options["id"]))
        user = get_user_model().objects.filter(
            username=options["username"], is_active=True, is_staff=True).first()
        if user is None:
            raise CommandError(ERROR_NO_USER.format(username=options["username"]))
        decide = svc.scope_request_deny if options["deny"] else svc.scope_request_approve
        try:
            result = decide(request=request, approver=user, reason=options["reason"])
        except svc.ScopeRequestRefused as refused:
            raise CommandError(f"Refused: {refused}") from None
        if result.status == ScopeRequestStatus.APPROVED:
            self.stdout.write(f"Request #{result.pk} approved until {result.expires_at:%Y-%m-%d}.")
        elif result.status == ScopeRequestStatus.DENIED:
            self.stdout.write(f"Request #{result.pk} denied.")
        else:
            missing = svc.approvals_required(result) - result.decisions.filter(
                decision="approve").count()
            self.stdout.write(
                f"Approval of request #{result.pk} recorded; {missing} more approval(s) by a "
                "different member of governance staff needed before anything is granted.")
