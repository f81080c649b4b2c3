"""What the family reads: the template for (type, language), its placeholders filled (the template language is
`template_syntax.py`), counted as the network will."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from django.db import connections, router
from django.utils import timezone

from notifier import sms
from notifier.amounts import amount_to_be_paid, format_amount
from notifier.models import Family, Insuree, NotificationTemplate, Outbox, Policy
from notifier.settings import get_config, get_settings
from notifier.template_syntax import (
    AMOUNT_TYPES,
    TemplateError,
    parse_template,
)

DATE_PLACEHOLDERS = frozenset({"EffectiveDate", "ExpiryDate"})
FALLBACK_LANGUAGE = "en"

_EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Day-first numeric dates where month names would need characters outside GSM-7 (French "août", "févr.").
DATE_FORMATS: dict[str, str] = {"en": "{day} {month_en} {year}", "fr": "{dd}/{mm}/{year}", "sw": "{dd}/{mm}/{year}"}
DEFAULT_DATE_FORMAT = "{dd}/{mm}/{year}"

# Long but plausible values: the admin's worst case for segments (CHFID is 12 characters at most).
LONG_SAMPLE_VALUES: dict[str, str | dt.date] = {
    "InsuranceID": "123456789012",
    "Name": "Emmanuela Nyamizi Mwakalukwa-Kapinga",
    "ProductCode": "CHFPLUS8",
    "ProductName": "Community Health Fund Family Plus",
    "EffectiveDate": dt.date(2026, 12, 31),
    "ExpiryDate": dt.date(2027, 12, 31),
    "AmountToBePaid": "TZS 1,250,000",
}


class RenderError(ValueError):
    """A message cannot be rendered (no template, missing value); the message names the template or the field."""


@dataclass(frozen=True)
class RenderedMessage:
    text: str
    language: str
    encoding: str
    segments: int


def format_date(value: dt.date, language: str) -> str:
    pattern = DATE_FORMATS.get(base_language(language), DEFAULT_DATE_FORMAT)
    return pattern.format(
        day=value.day,
        dd=f"{value.day:02d}",
        mm=f"{value.month:02d}",
        month_en=_EN_MONTHS[value.month - 1],
        year=value.year,
    )


def fill(
    text: str, values: Mapping[str, str | dt.date | None], language: str, *, template_name: str = "template"
) -> str:
    """Substitute the placeholders of `text`; a placeholder the template uses must have a non-empty value."""
    try:
        pieces = parse_template(text)
    except TemplateError as exc:
        raise RenderError(f"{template_name}: {exc}") from None
    out: list[str] = []
    for piece in pieces:
        if isinstance(piece, str):
            out.append(piece)
            continue
        value = values.get(piece.name)
        if isinstance(value, dt.date):
            out.append(format_date(value, language))
        elif value is None or not str(value).strip():
            raise RenderError(f"{template_name}: no value for {{{piece.name}}}")
        else:
            out.append(str(value).strip())
    rendered = "".join(out).strip()
    if not rendered:
        raise RenderError(f"{template_name}: renders to an empty message")
    return rendered


# --- Language ---------------------------------------------------------------------------------------------------


def base_language(code: str) -> str:
    return code.strip().replace("_", "-").split("-", 1)[0].lower()


def language_candidates(code: str | None) -> list[str]:
    """The fallback chain: the family's language, its base language, NOTIFIER_DEFAULT_LANGUAGE, then English."""
    chain: list[str] = []
    raw = (code or "").strip().replace("_", "-")
    default = get_settings().default_language.strip()
    for candidate in (raw, base_language(raw), default, base_language(default), FALLBACK_LANGUAGE):
        candidate = candidate.lower()
        if candidate and candidate not in chain:
            chain.append(candidate)
    return chain


def choose_template(notification_type: str, language: str | None) -> NotificationTemplate:
    """The template of `notification_type` in the first language of the fallback chain that has one."""
    templates = {
        template.language_id.lower(): template
        for template in NotificationTemplate.objects.filter(notification_type=notification_type)
    }
    return _pick_template(templates, notification_type, language)


def _pick_template(
    templates: Mapping[str, NotificationTemplate], notification_type: str, language: str | None
) -> NotificationTemplate:
    """From one type's templates by lower-cased language code, the first of the fallback chain."""
    chain = language_candidates(language)
    for candidate in chain:
        if candidate in templates:
            return templates[candidate]
    raise RenderError(f"no template for {notification_type!r} in any of the languages {chain}")


# --- Values -----------------------------------------------------------------------------------------------------


def family_head(family: Family) -> Insuree:
    head = family.head_insuree
    if head is None:
        head = Insuree.objects.current().filter(family=family, head=True).order_by("id").first()
    if head is None:
        raise RenderError(f"family {family.pk} has no head insuree (needed for {{InsuranceID}} and {{Name}})")
    return head


def head_name(head: Insuree) -> str:
    return " ".join(part.strip() for part in (head.other_names or "", head.last_name or "") if part and part.strip())


def policy_values(policy: Policy, head: Insuree) -> dict[str, str | dt.date | None]:
    return {
        "InsuranceID": head.chf_id,
        "Name": head_name(head),
        "ProductCode": policy.product.code,
        "ProductName": policy.product.name,
        "EffectiveDate": policy.effective_date,
        "ExpiryDate": policy.expiry_date,
    }


def is_late(event_date: dt.date | None, send_date: dt.date | None) -> bool:
    """A message goes out late when the scheme's day of sending is after its event date."""
    return event_date is not None and send_date is not None and send_date > event_date


def render_template(
    template: NotificationTemplate,
    values: Mapping[str, str | dt.date | None],
    language: str | None = None,
    *,
    late: bool = False,
    amount_for: Callable[[str], str] | None = None,
) -> RenderedMessage:
    """The template's text, or its late variant when the message goes out after its event date and has one."""
    source = template.late_text if late and template.late_text.strip() else template.text
    if "{AmountToBePaid}" in source and amount_for is not None and "AmountToBePaid" not in values:
        values = {**values, "AmountToBePaid": amount_for(language or template.language_id)}
    text = fill(source, values, language or template.language_id, template_name=f"template {template}")
    if template.replace_lookalikes:
        text = sms.replace_lookalikes(text)
    info = sms.analyse(text)
    return RenderedMessage(text=text, language=template.language_id, encoding=info.encoding, segments=info.segments)


def scheme_today() -> dt.date:
    return timezone.localdate()


def render_outbox(outbox: Outbox, send_date: dt.date | None = None) -> RenderedMessage:
    """The message for an outbox row, in the family's language or the best fallback, worded for `send_date`
    (default: today in TIME_ZONE). Raises RenderError."""
    policy = Policy.objects.select_related("product").get(pk=outbox.policy_id)
    family = Family.objects.select_related("head_insuree").get(pk=outbox.family_id)
    template = choose_template(outbox.notification_type, outbox.language)
    send_date = send_date or scheme_today()
    late = is_late(outbox.event_date, send_date)
    amount = _amount_function(policy, outbox.notification_type, send_date)
    return render_template(template, policy_values(policy, family_head(family)), late=late, amount_for=amount)


def _amount_function(policy: Policy, notification_type: str, send_date: dt.date) -> Callable[[str], str] | None:
    """{AmountToBePaid} for a policy, formatted per language; computed only when a template asks for it."""
    if notification_type not in AMOUNT_TYPES:
        return None

    def amount_for(language: str) -> str:
        config = get_config()
        value = amount_to_be_paid(policy, notification_type, send_date, config.age_of_majority)
        return format_amount(value, language, config.currency, config.currency_decimals)

    return amount_for


def render_outboxes(
    rows: Sequence[Outbox], send_date: dt.date | None = None
) -> dict[int, RenderedMessage | RenderError]:
    """`render_outbox` for many rows with one template query: outbox id -> message, or the RenderError of that row.

    The rows should come with `select_related("policy__product", "family__head_insuree")`, or each row costs
    its own queries again.
    """
    by_type: dict[str, dict[str, NotificationTemplate]] = {}
    types = {row.notification_type for row in rows}
    for template in _templates_of(sorted(types)):
        by_type.setdefault(template.notification_type, {})[template.language_id.lower()] = template
    rendered: dict[int, RenderedMessage | RenderError] = {}
    send_date = send_date or scheme_today()
    for row in rows:
        try:
            template = _pick_template(by_type.get(row.notification_type, {}), row.notification_type, row.language)
            late = is_late(row.event_date, send_date)
            amount = _amount_function(row.policy, row.notification_type, send_date)
            values = policy_values(row.policy, family_head(row.family))
            rendered[row.pk] = render_template(template, values, late=late, amount_for=amount)
        except RenderError as exc:
            rendered[row.pk] = exc
    return rendered


def _templates_of(types: list[str]) -> list[NotificationTemplate]:
    """The templates of these types, as a raw SELECT (delivery asks for every chunk; the ORM would compile the
    same query each time)."""
    if not types:
        return []
    connection = connections[router.db_for_read(NotificationTemplate)]
    quote, meta = connection.ops.quote_name, NotificationTemplate._meta
    column = quote(meta.get_field("notification_type").column)  # type: ignore[union-attr]
    marks = ", ".join(["%s"] * len(types))
    sql = f"SELECT * FROM {quote(meta.db_table)} WHERE {column} IN ({marks})"  # noqa: S608
    return list(NotificationTemplate.objects.raw(sql, types))


# --- Admin support ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateReport:
    """The admin's view of a template text: worst case with long sample values, and characters forcing UCS-2."""

    encoding: str
    worst_case_length: int
    worst_case_segments: int
    ucs2_forcing: Sequence[str]
    replaceable: Sequence[str]
    error: str = ""


def template_report(text: str, language: str, *, replace_lookalikes: bool = False) -> TemplateReport:
    try:
        rendered = fill(text, LONG_SAMPLE_VALUES, language)
    except RenderError as exc:
        return TemplateReport("", 0, 0, [], [], error=str(exc))
    # What the operator typed, so a look-alike is flagged even where it is replaced on render.
    typed = sms.analyse(rendered)
    sent = sms.analyse(sms.replace_lookalikes(rendered)) if replace_lookalikes else typed
    return TemplateReport(
        encoding=sent.encoding,
        worst_case_length=sent.length,
        worst_case_segments=sent.segments,
        ucs2_forcing=typed.ucs2_forcing,
        replaceable=typed.replaceable,
    )


def describe_chars(chars: Iterable[str]) -> str:
    return ", ".join(sms.describe_char(char) for char in chars)


def find_family(reference: str) -> Family | None:
    """A current family by its head's CHFID, or by family id when `reference` is all digits and no CHFID matches."""
    reference = reference.strip()
    if not reference:
        return None
    families = Family.objects.current().select_related("head_insuree")
    family = families.filter(head_insuree__chf_id=reference).first()
    if family is None and reference.isascii() and reference.isdigit() and len(reference) <= 18:  # fits a bigint
        family = families.filter(pk=int(reference)).first()
    return family


def preview_values(family: Family | None) -> dict[str, str | dt.date | None]:
    """Values for a preview: the family's head and its latest current policy; long samples for whatever is missing."""
    values: dict[str, str | dt.date | None] = dict(LONG_SAMPLE_VALUES)
    if family is None:
        return values
    head = family_head(family)
    policy = (
        Policy.objects.current().filter(family=family).select_related("product").order_by("-expiry_date", "-id").first()
    )
    if policy is None:
        values.update({"InsuranceID": head.chf_id, "Name": head_name(head)})
        return values
    values.update({key: value for key, value in policy_values(policy, head).items() if value is not None})
    return values
