from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from importlib import import_module

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError

from notifier import sms
from notifier.demo import load_demo
from notifier.models import Family, FamilyNotification, Language, NotificationTemplate, Outbox, Policy, Product
from notifier.rendering import (
    LONG_SAMPLE_VALUES,
    RenderError,
    language_candidates,
    render_outbox,
    template_report,
)
from notifier.template_syntax import PLACEHOLDERS, TemplateError, parse_template
from notifier.types import NOTIFICATION_TYPES

SHIPPED_LANGUAGES = ("en", "fr", "sw")


@pytest.fixture
def demo_policy(db: None) -> Policy:
    load_demo(today=dt.date(2026, 11, 28), families=12)
    policy = (
        Policy.objects.current()
        .filter(effective_date__isnull=False, expiry_date__isnull=False)
        .select_related("family__head_insuree", "product")
        .order_by("id")
        .first()
    )
    assert policy is not None
    return policy


def test_it_ships_a_template_for_every_type_and_language(db: None) -> None:
    shipped = set(NotificationTemplate.objects.values_list("notification_type", "language_id"))
    assert shipped == {(t, language) for t in NOTIFICATION_TYPES for language in SHIPPED_LANGUAGES}


@pytest.mark.parametrize("language", SHIPPED_LANGUAGES)
@pytest.mark.parametrize("notification_type", NOTIFICATION_TYPES)
def test_it_renders_every_shipped_template_for_a_demo_family_in_gsm7(
    demo_policy: Policy, notification_type: str, language: str, make_outbox: Callable[..., Outbox]
) -> None:
    head = demo_policy.family.head_insuree
    assert head is not None
    message = render_outbox(make_outbox(demo_policy, notification_type, language))

    assert message.language == language
    assert message.encoding == sms.GSM7
    assert message.segments == 1
    assert "{" not in message.text and "}" not in message.text
    assert head.chf_id is not None and head.chf_id in message.text
    assert f"{head.other_names} {head.last_name}" in message.text
    assert demo_policy.product.name in message.text
    assert message.text == message.text.strip()
    stored = NotificationTemplate.objects.get(notification_type=notification_type, language_id=language)
    assert message.text.startswith(stored.text.split("{", 1)[0])


def test_it_keeps_every_shipped_template_within_two_segments_with_long_values(db: None) -> None:
    for template in NotificationTemplate.objects.all():
        report = template_report(template.text, template.language_id)
        assert report.error == ""
        assert report.encoding == sms.GSM7, template
        assert report.ucs2_forcing == [], template
        assert report.worst_case_segments <= 2, template


# --- Language fallback ------------------------------------------------------------------------------------------


@pytest.fixture
def family_policy(make_family: Callable[..., Family], make_policy: Callable[..., Policy]) -> Policy:
    family = make_family(consent={"approvalOfNotification": True, "languageOfNotification": "fr"})
    return make_policy(family, effective_date=dt.date(2026, 11, 28), expiry_date=dt.date(2027, 11, 27))


@pytest.mark.parametrize(
    ("family_language", "expected"),
    [("fr-CA", "fr"), ("fr_ca", "fr"), ("FR", "fr"), ("sw", "sw"), ("xx", "en"), ("", "en"), ("  ", "en")],
)
def test_it_falls_back_from_the_family_language_to_its_base_then_the_default(
    family_policy: Policy, family_language: str, expected: str, make_outbox: Callable[..., Outbox]
) -> None:
    message = render_outbox(make_outbox(family_policy, "need_for_renewal", family_language))
    assert message.language == expected
    stored = NotificationTemplate.objects.get(notification_type="need_for_renewal", language_id=expected)
    assert message.text.startswith(stored.text.split("{", 1)[0])
    assert "27" in message.text and "2027" in message.text


def test_it_prefers_a_regional_template_when_one_exists(
    family_policy: Policy, make_outbox: Callable[..., Outbox]
) -> None:
    Language.objects.create(code="fr-CA", name="Français (Canada)", sort_order=9)
    NotificationTemplate.objects.create(
        notification_type="need_for_renewal", language_id="fr-CA", text="Allo {Name}, renouvelez avant le {ExpiryDate}."
    )
    message = render_outbox(make_outbox(family_policy, "need_for_renewal", "fr-CA"))
    assert message.language == "fr-CA"
    assert message.text.startswith("Allo ")
    assert message.text.endswith("avant le 27/11/2027.")


def test_it_uses_notifier_default_language_before_english(
    family_policy: Policy, settings, make_outbox: Callable[..., Outbox]
) -> None:
    settings.NOTIFIER_DEFAULT_LANGUAGE = "sw"
    assert language_candidates("xx") == ["xx", "sw", "en"]
    assert render_outbox(make_outbox(family_policy, "expiration_of_policy", "xx")).language == "sw"
    assert render_outbox(make_outbox(family_policy, "expiration_of_policy", "")).language == "sw"


def test_it_falls_back_to_english_when_the_family_language_has_no_template_for_the_type(
    family_policy: Policy, make_outbox: Callable[..., Outbox]
) -> None:
    NotificationTemplate.objects.filter(notification_type="renewal_of_policy", language_id="fr").delete()
    message = render_outbox(make_outbox(family_policy, "renewal_of_policy", "fr"))
    assert message.language == "en"
    assert message.text.startswith("Dear ")


def test_it_refuses_to_render_when_no_language_has_a_template(
    family_policy: Policy, make_outbox: Callable[..., Outbox]
) -> None:
    NotificationTemplate.objects.filter(notification_type="starting_of_policy").delete()
    with pytest.raises(RenderError, match="starting_of_policy"):
        render_outbox(make_outbox(family_policy, "starting_of_policy", "fr"))


def test_it_sends_the_family_language_never_a_raw_key_spec_13_3(
    family_policy: Policy, make_outbox: Callable[..., Outbox]
) -> None:
    """Upstream ignored LanguageOfSMS and sent message keys such as 'notification.expiration_of_policy'."""
    texts = {}
    for language in SHIPPED_LANGUAGES:
        message = render_outbox(make_outbox(family_policy, "expiration_of_policy", language))
        texts[language] = message.text
        assert message.language == language
        assert "expiration_of_policy" not in message.text
        assert "notification." not in message.text
        assert not any("{" + name + "}" in message.text for name in PLACEHOLDERS)
    assert len(set(texts.values())) == 3  # three languages, three different texts
    assert texts["fr"].startswith("Bonjour") and texts["sw"].startswith("Ndugu") and texts["en"].startswith("Dear")
    consent = FamilyNotification.objects.get(family=family_policy.family)
    assert consent.language_of_sms == "fr"
    assert (
        render_outbox(make_outbox(family_policy, "expiration_of_policy", consent.language_of_sms)).text == texts["fr"]
    )


# --- Values and dates -------------------------------------------------------------------------------------------


def test_it_fills_every_placeholder_with_the_policy_and_head_values(
    family_policy: Policy, make_outbox: Callable[..., Outbox]
) -> None:
    NotificationTemplate.objects.filter(notification_type="activation_of_policy", language_id="en").update(
        text="{InsuranceID}|{Name}|{ProductCode}|{ProductName}|{EffectiveDate}|{ExpiryDate}|{{literal}}"
    )
    head = family_policy.family.head_insuree
    assert head is not None
    message = render_outbox(make_outbox(family_policy, "activation_of_policy", "en"))
    assert message.text == (
        f"{head.chf_id}|{head.other_names} {head.last_name}|BASIC|Basic cover|28 Nov 2026|27 Nov 2027|{{literal}}"
    )
    assert message.encoding == sms.GSM7
    assert message.segments == 1


def test_it_formats_dates_per_language(family_policy: Policy, make_outbox: Callable[..., Outbox]) -> None:
    for language, expected in (("en", "27 Nov 2027"), ("fr", "27/11/2027"), ("sw", "27/11/2027")):
        assert expected in render_outbox(make_outbox(family_policy, "need_for_renewal", language)).text


def test_it_refuses_to_render_a_missing_date_naming_the_placeholder(
    make_family: Callable[..., Family], make_policy: Callable[..., Policy], make_outbox: Callable[..., Outbox]
) -> None:
    policy = make_policy(make_family(), effective_date=None)
    with pytest.raises(RenderError, match=r"\{EffectiveDate\}"):
        render_outbox(make_outbox(policy, "starting_of_policy", "en"))


def test_it_replaces_lookalikes_on_render_when_the_template_asks(
    family_policy: Policy, make_outbox: Callable[..., Outbox]
) -> None:
    template = NotificationTemplate.objects.get(notification_type="renewal_of_policy", language_id="en")
    template.text = "Dear {Name}, it\u2019s renewed \u2013 see you\u2026"
    template.save()
    typed = render_outbox(make_outbox(family_policy, "renewal_of_policy", "en"))
    assert typed.encoding == sms.UCS2
    template.replace_lookalikes = True
    template.save()
    fixed = render_outbox(make_outbox(family_policy, "renewal_of_policy", "en"))
    assert fixed.encoding == sms.GSM7
    assert fixed.text.endswith(", it's renewed - see you...")


def test_it_does_not_reach_attributes_or_run_template_code(db: None) -> None:
    for text in ("{Name.__class__}", "{Name[0]}", "{Name!r}", "{Name:>99}", "{% debug %}", "{0}", "{}", "{ Name }"):
        with pytest.raises(TemplateError, match="unknown placeholder"):
            parse_template(text)


# --- Validation on save -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Hello {Nmae}", "{Nmae}"),
        ("Hello {PolicyValue}", "{PolicyValue}"),
        ("Hello {Name", "unclosed '{'"),
        ("Hello Name}", "unmatched '}'"),
        ("Hello {Name {ExpiryDate}}", "unclosed '{'"),
        ("   ", "empty"),
    ],
)
def test_it_refuses_a_broken_template_on_save_naming_the_problem(db: None, text: str, named: str) -> None:
    template = NotificationTemplate(notification_type="need_for_renewal", language_id="en", text=text)
    with pytest.raises(ValidationError) as caught:
        template.full_clean(exclude=["notification_type", "language"])
    assert named in " ".join(caught.value.message_dict["text"])


def test_it_accepts_every_placeholder_and_doubled_braces(db: None) -> None:
    text = " ".join("{" + name + "}" for name in PLACEHOLDERS) + " {{not a placeholder}}"
    pieces = parse_template(text)
    assert [piece.name for piece in pieces if not isinstance(piece, str)] == list(PLACEHOLDERS)
    assert pieces[-1] == " {not a placeholder}"
    NotificationTemplate(notification_type="need_for_renewal", language_id="en", text=text).clean()


def test_it_worst_case_uses_long_sample_values(db: None) -> None:
    report = template_report("{Name} {ProductName}", "en")
    assert report.worst_case_length == len(f"{LONG_SAMPLE_VALUES['Name']} {LONG_SAMPLE_VALUES['ProductName']}")
    assert template_report("{Nope}", "en").error


# --- The shipped-defaults migration -----------------------------------------------------------------------------


def test_it_never_overwrites_an_edited_template_when_defaults_are_shipped_again(db: None) -> None:
    migration = import_module("notifier.migrations.0003_templates")
    edited = NotificationTemplate.objects.get(notification_type="need_for_renewal", language_id="sw")
    edited.text = "Ndugu {Name}, bima yako inaisha {ExpiryDate}."
    edited.edited = True
    edited.save()
    stale = NotificationTemplate.objects.get(notification_type="need_for_renewal", language_id="en")
    stale.text = "an older shipped text for {Name}"
    stale.save()
    NotificationTemplate.objects.filter(notification_type="renewal_of_policy", language_id="fr").delete()

    migration.ship_templates(apps, None)

    edited.refresh_from_db()
    stale.refresh_from_db()
    assert edited.text == "Ndugu {Name}, bima yako inaisha {ExpiryDate}."
    assert stale.text == migration.TEMPLATES["need_for_renewal"]["en"]
    assert (
        NotificationTemplate.objects.get(notification_type="renewal_of_policy", language_id="fr").text
        == (migration.TEMPLATES["renewal_of_policy"]["fr"])
    )
    assert NotificationTemplate.objects.count() == len(NOTIFICATION_TYPES) * len(SHIPPED_LANGUAGES)


def test_it_inserts_values_literally_without_expanding_braces_inside_them(
    make_family: Callable[..., Family],
    make_policy: Callable[..., Policy],
    product: Product,
    make_outbox: Callable[..., Outbox],
) -> None:
    product.name = "{InsuranceID} {{x}} Ng\u02bcwana"
    product.save()
    policy = make_policy(make_family())
    NotificationTemplate.objects.filter(notification_type="renewal_of_policy", language_id="en").update(
        text="Renewed: {ProductName}."
    )
    message = render_outbox(make_outbox(policy, "renewal_of_policy", "en"))
    assert message.text == "Renewed: {InsuranceID} {{x}} Ng\u02bcwana."
    assert message.encoding == sms.UCS2  # a value outside GSM-7 is counted as the network will
    assert message.segments == 1
