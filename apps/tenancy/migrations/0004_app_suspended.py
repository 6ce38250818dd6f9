from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tenancy', '0003_app_previous_secret'),
    ]

    operations = [
        migrations.AddField(
            model_name='app',
            name='suspended',
            field=models.BooleanField(default=False),
        ),
    ]
