"""Provider accounts: config edited as JSON and validated by the provider's typed config, secrets masked, the
callback URLs to give the gateway, the circuit breaker's state, and a test send."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from notifier import coordination
from notifier.delivery import operator
from notifier.models import ProviderAccount, new_callback_token
from notifier.phones import normalize_phone
from notifier.providers.base import MASK, Provider, ProviderConfigError
from notifier.providers.registry import UnknownProviderError, get_provider, provider_classes
from notifier.safe_input import first_message, parse_json
from notifier.settings import get_settings


class ProviderAccountForm(forms.ModelForm):  # type: ignore[type-arg]
    """Config edited as JSON, validated by the provider's typed config; secrets shown back masked."""

    provider = forms.ChoiceField()
    config = forms.CharField(widget=forms.Textarea(attrs={"rows": 14, "cols": 90}), required=False)

    class Meta:
        model = ProviderAccount
        fields = [
            "name",
            "provider",
            "enabled",
            "priority",
            "rate_limit_per_second",
            "price_per_segment",
            "currency",
            "config",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        provider_field = self.fields["provider"]
        assert isinstance(provider_field, forms.ChoiceField)
        provider_field.choices = [(slug, cls.label or slug) for slug, cls in provider_classes().items()]
        if self.instance.pk and not self.is_bound:
            try:
                shown = get_provider(self.instance.provider).masked(self.instance.config or {})
            except UnknownProviderError:
                shown = {}
            self.initial["config"] = json.dumps(shown, indent=2, ensure_ascii=False)

    def clean_rate_limit_per_second(self) -> float | None:
        value: float | None = self.cleaned_data.get("rate_limit_per_second")
        if value is not None and value <= 0:
            raise forms.ValidationError("must be more than 0 messages per second (empty: the NOTIFIER default)")
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        slug = cleaned.get("provider")
        if not slug:
            return cleaned
        text = (cleaned.get("config") or "").strip() or "{}"
        try:
            submitted = parse_json(text, "config")
        except ValidationError as exc:
            self.add_error("config", first_message(exc)[1])
            return cleaned
        cls = get_provider(slug)
        if not isinstance(submitted, dict):
            self.add_error("config", "must be a JSON object")
            return cleaned
        stored = self.instance.config if self.instance.pk and self.instance.provider == slug else {}
        try:
            config = cls.parse_config(cls.unmask(submitted, stored or {}))
        except ProviderConfigError as exc:
            self.add_error("config", str(exc))
            return cleaned
        kept = secrets_kept_for_a_new_address(cls, submitted, stored or {}, config.model_dump(mode="json"))
        if kept:
            self.add_error("config", kept)
            return cleaned
        cleaned["config"] = config.model_dump(mode="json")
        return cleaned


def secrets_kept_for_a_new_address(
    cls: type[Provider], submitted: dict[str, Any], stored: dict[str, Any], new: dict[str, Any]
) -> str:
    """An error when an address field (URL, host) changes while a stored secret is kept masked: the stored secret
    must never reach a host it was not given for, so the person re-enters it. Empty when all is well."""
    if not stored:
        return ""
    try:
        before = cls.parse_config(stored).model_dump(mode="json")  # defaults filled in, as `new` has them
    except ProviderConfigError:
        before = stored
    changed = [name for name in cls.config_class.address_fields if new.get(name) != before.get(name)]
    masked = [name for name in cls.config_class.secret_fields if submitted.get(name) == MASK and stored.get(name)]
    if not changed or not masked:
        return ""
    return (
        f"{', '.join(masked)}: re-enter the secret — {', '.join(changed)} changed, and a stored secret is never "
        "sent to a new address (replace the mask with the secret for the new address)"
    )


class SendTestForm(forms.Form):
    phone = forms.CharField(max_length=50, help_text="Any format; normalised with the scheme's default region.")
    text = forms.CharField(max_length=459, initial="Test message from the policy notification service.")

    def clean_phone(self) -> str:
        recipient = normalize_phone(self.cleaned_data["phone"])
        if recipient is None:
            raise forms.ValidationError("not a valid phone number")
        return recipient


@admin.register(ProviderAccount)
class ProviderAccountAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = ProviderAccountForm
    list_display = ["name", "provider", "enabled", "priority", "rate_limit_per_second", "price", "breaker"]
    list_editable = ["enabled", "priority"]
    list_filter = ["provider", "enabled"]
    ordering = ["priority", "id"]
    readonly_fields = ["breaker", "send_test_link", "callback_urls"]
    actions = ["send_test_message", "renew_callback_urls"]

    @admin.action(description="Give new callback URLs (the old receipt and inbound URLs stop working)")
    def renew_callback_urls(self, request: HttpRequest, queryset: QuerySet[ProviderAccount]) -> None:
        count = 0
        for account in queryset:
            account.callback_token = new_callback_token()
            account.save(update_fields=["callback_token", "updated_at"])
            count += 1
        self.message_user(request, f"{count} account(s) have new callback URLs; enter them in the gateway's dashboard.")

    @admin.display(description="Gateway callback URLs")
    def callback_urls(self, account: ProviderAccount) -> str:
        """What to enter in the gateway's dashboard (the token in them is this account's secret)."""
        if not account.pk:
            return "Save the account first."
        base = get_settings().public_url or "https://<this service>"
        receipts = base + reverse("notifier:receipt", args=[account.callback_token])
        inbound = base + reverse("notifier:inbound", args=[account.callback_token])
        return format_html(
            "Delivery receipts: <code>{}</code><br>Inbound messages (STOP): <code>{}</code>", receipts, inbound
        )

    @admin.display(description="Circuit breaker")
    def breaker(self, account: ProviderAccount) -> str:
        if not account.pk:
            return "—"
        state = coordination.breaker_state(account.pk)
        return format_html('<span class="badge breaker-{}">{}</span>', state, state)

    @admin.display(description="Price / segment", ordering="price_per_segment")
    def price(self, account: ProviderAccount) -> str:
        if account.price_per_segment is None:
            return "—"
        return f"{account.price_per_segment} {account.currency}"

    @admin.display(description="Test")
    def send_test_link(self, account: ProviderAccount) -> str:
        if not account.pk:
            return "Save the account first."
        url = reverse("admin:notifier_provideraccount_send_test", args=[account.pk])
        return format_html('<a class="button" href="{}">Send a test message</a>', url)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.send_test_view)
        own = [path("<int:account_id>/send-test/", view, name="notifier_provideraccount_send_test")]
        return own + super().get_urls()

    @admin.action(description="Send a test message (one account)")
    def send_test_message(self, request: HttpRequest, queryset: QuerySet[ProviderAccount]) -> HttpResponse | None:
        accounts = list(queryset[:2])
        if len(accounts) != 1:
            self.message_user(request, "Select exactly one account to test.", messages.WARNING)
            return None
        return redirect("admin:notifier_provideraccount_send_test", accounts[0].pk)

    def send_test_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        account = get_object_or_404(ProviderAccount, pk=account_id)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        form = SendTestForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            outcome = operator.send_test_message(account, form.cleaned_data["phone"], form.cleaned_data["text"])
            self.message_user(request, outcome.message, messages.SUCCESS if outcome.ok else messages.ERROR)
            if outcome.ok:
                return redirect("admin:notifier_provideraccount_change", account.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Send a test message through {account}",
            "account": account,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/notifier/provideraccount/send_test.html", context)
