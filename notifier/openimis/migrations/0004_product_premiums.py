"""{AmountToBePaid} (issue 14): the premium and fee columns of tblProduct and tblInsuree.Relationship, as openIMIS has
them, in the standalone mirror. Attached to an openIMIS database they already exist and are read as they are."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("openimis", "0003_policy_history_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="insuree",
            name="relationship",
            field=models.SmallIntegerField(blank=True, db_column="Relationship", null=True),
        ),
        migrations.AddField(
            model_name="product",
            name="general_assembly_fee",
            field=models.DecimalField(
                blank=True, db_column="GeneralAssemblyFee", decimal_places=2, max_digits=18, null=True
            ),
        ),
        migrations.AddField(
            model_name="product",
            name="general_assembly_lump_sum",
            field=models.DecimalField(
                blank=True, db_column="GeneralAssemblyLumpSum", decimal_places=2, max_digits=18, null=True
            ),
        ),
        migrations.AddField(
            model_name="product",
            name="lump_sum",
            field=models.DecimalField(db_column="LumpSum", decimal_places=2, default=0, db_default=0, max_digits=18),
        ),
        migrations.AddField(
            model_name="product",
            name="max_members",
            field=models.SmallIntegerField(db_column="MemberCount", default=0, db_default=0),
        ),
        migrations.AddField(
            model_name="product",
            name="premium_adult",
            field=models.DecimalField(blank=True, db_column="PremiumAdult", decimal_places=2, max_digits=18, null=True),
        ),
        migrations.AddField(
            model_name="product",
            name="premium_child",
            field=models.DecimalField(blank=True, db_column="PremiumChild", decimal_places=2, max_digits=18, null=True),
        ),
        migrations.AddField(
            model_name="product",
            name="registration_fee",
            field=models.DecimalField(
                blank=True, db_column="RegistrationFee", decimal_places=2, max_digits=18, null=True
            ),
        ),
        migrations.AddField(
            model_name="product",
            name="registration_lump_sum",
            field=models.DecimalField(
                blank=True, db_column="RegistrationLumpSum", decimal_places=2, max_digits=18, null=True
            ),
        ),
        migrations.AddField(
            model_name="product",
            name="renewal_discount_perc",
            field=models.IntegerField(blank=True, db_column="RenewalDiscountPerc", null=True),
        ),
        migrations.AddField(
            model_name="product",
            name="renewal_discount_period",
            field=models.IntegerField(blank=True, db_column="RenewalDiscountPeriod", null=True),
        ),
        migrations.AddField(
            model_name="product",
            name="threshold",
            field=models.IntegerField(blank=True, db_column="Threshold", null=True),
        ),
    ]
