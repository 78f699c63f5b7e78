"""Runs of the stored ids of lists ordered by a computed key (render.page_stats); a cache,
so the table is unlogged."""

import django.contrib.postgres.fields
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('oneroster_api', '0006_sourced_id_order_from_unique_index'),
    ]

    operations = [
        migrations.CreateModel(
            name='PageRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(max_length=64)),
                ('number', models.PositiveIntegerField()),
                ('roster_version', models.PositiveIntegerField()),
                ('sourced_ids', django.contrib.postgres.fields.ArrayField(base_field=models.TextField(db_collation='C'), size=None)),
                ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('key', 'number'), name='oneroster_page_run_key_number')],
            },
        ),
        migrations.RunSQL("ALTER TABLE oneroster_api_pagerun SET UNLOGGED",
                          "ALTER TABLE oneroster_api_pagerun SET LOGGED"),
    ]
