"""Keep role groups in step with the code after every migration."""

from django.db.models.signals import post_migrate
from django.dispatch import receiver


@receiver(post_migrate, dispatch_uid="accounts.sync_roles")
def _sync_roles_after_migrate(sender, using="default", **kwargs) -> None:  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import Group, Permission

    from apps.accounts.roles import sync_roles

    if kwargs.get("plan") is not None and not kwargs.get("plan"):
        return  # nothing was migrated
    sync_roles(Group.objects.db_manager(using).model, Permission)
