import django.contrib.postgres.fields
from django.db import migrations, models


class Migration(migrations.Migration):
    # Required list columns (classes.termSourcedIds, scoreScales.scoreScaleValue) are
    # never empty in an applied feed: the parser refuses them.

    dependencies = [("roster", "0002_canonical_source_without_fk")]

    operations = [
        migrations.AlterField(
            model_name="class",
            name="term_sourced_ids",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.TextField(), size=None
            ),
        ),
        migrations.AlterField(
            model_name="scorescale",
            name="score_scale_value",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.TextField(), size=None
            ),
        ),
    ]
