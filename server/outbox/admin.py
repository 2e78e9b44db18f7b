from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from server.outbox.models import OutboxEmail
from server.outbox.services import outbox_retry


@admin.register(OutboxEmail)
class OutboxEmailAdmin(admin.ModelAdmin):
    list_display = (
        "pk", "kind", "to", "submission", "generation", "course", "sent_at", "attempts", "skipped"
    )  # fmt: skip
    list_filter = ("kind", "skipped", ("sent_at", admin.EmptyFieldListFilter))
    search_fields = ("to",)
    readonly_fields = [f.name for f in OutboxEmail._meta.fields]
    actions = ["send_again"]

    @admin.action(description=_("Send again (unsent emails only, with a fresh attempt budget)"))
    def send_again(self, request: HttpRequest, queryset: QuerySet[OutboxEmail]) -> None:
        count = outbox_retry(OutboxEmail.objects.filter(pk__in=queryset.values("pk")))
        self.message_user(
            request,
            ngettext("%(n)d email queued to be sent.", "%(n)d emails queued to be sent.", count)
            % {"n": count},
            messages.SUCCESS,
        )
