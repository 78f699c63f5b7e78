"""Control packs are built by a worker: a state, the failure reason and when it was built.
Packs exported before this were built in the request and are all ready."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('offboarding', '0002_historicalincident_incident'),
    ]

    operations = [
        migrations.AddField(
            model_name='controlpack',
            name='built_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='controlpack',
            name='error',
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AddField(
            model_name='controlpack',
            name='state',
            field=models.CharField(choices=[('queued', 'Queued'), ('ready', 'Ready'), ('failed', 'Failed')], default='queued', editable=False, max_length=10),
        ),
        migrations.RunSQL(
            "UPDATE offboarding_controlpack SET state = 'ready', built_at = created_at",
            migrations.RunSQL.noop,
        ),
    ]
