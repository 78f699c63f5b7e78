"""Webhook secrets move from a plain column to one wrapped by the master key.

Each existing channel gets its own ``secret_ref`` (the wrap's binding) and its secret
wrapped, before the plain column is dropped.
"""

import uuid

from django.db import migrations, models

SECRET_PURPOSE = "monitoring.alert_channel.secret"  # noqa: S105 - a label, not a secret


def wrap_existing(apps, schema_editor):  # type: ignore[no-untyped-def]
    from apps.keys.keyring import keyring

    AlertChannel = apps.get_model("monitoring", "AlertChannel")
    for channel in AlertChannel.objects.all():
        channel.secret_ref = uuid.uuid4()
        if channel.secret:
            wrapped = keyring().wrap(channel.secret.encode(), purpose=SECRET_PURPOSE,
                                     object_id=str(channel.secret_ref))
            channel.secret_wrapped = wrapped.blob
            channel.secret_master_key_id = wrapped.master_key_id
        channel.save(update_fields=["secret_ref", "secret_wrapped", "secret_master_key_id"])


class Migration(migrations.Migration):

    dependencies = [
        ("monitoring", "0002_alert_digest"),
    ]

    operations = [
        migrations.AddField(
            model_name="alertchannel",
            name="secret_wrapped",
            field=models.BinaryField(blank=True, default=b"", editable=False),
        ),
        migrations.AddField(
            model_name="alertchannel",
            name="secret_master_key_id",
            field=models.CharField(blank=True, editable=False, max_length=16),
        ),
        migrations.AddField(
            model_name="alertchannel",
            name="secret_ref",
            field=models.UUIDField(default=uuid.uuid4, editable=False),
        ),
        migrations.RunPython(wrap_existing, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name="alertchannel",
            name="secret",
        ),
    ]
