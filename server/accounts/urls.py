"""Account routes: login, logout, password reset and change, invitations, settings, import."""

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy
from django.views.decorators.cache import never_cache

from server.accounts import views
from server.accounts.forms import AccountPasswordResetForm, EmailAuthenticationForm
from server.accounts.tokens import invitation_token_generator

urlpatterns = [
    path(
        "login/",
        views.LoginView.as_view(
            template_name="accounts/login.html",
            authentication_form=EmailAuthenticationForm,
            redirect_authenticated_user=True,
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "account/password/reset/",
        views.PasswordResetView.as_view(
            form_class=AccountPasswordResetForm,
            template_name="registration/password_reset_form.html",
            subject_template_name="emails/password_reset_subject.txt",
            email_template_name="emails/password_reset.txt",
            html_email_template_name="emails/password_reset.html",
        ),
        name="password_reset",
    ),
    path(
        "account/password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(
            template_name="registration/password_reset_done.html"
        ),
        name="password_reset_done",
    ),
    path(
        "account/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="registration/password_reset_confirm.html"
        ),
        name="password_reset_confirm",
    ),
    path(
        "account/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="registration/password_reset_complete.html"
        ),
        name="password_reset_complete",
    ),
    # The invitation link: a set-password link with its own token salt and lifetime.
    path(
        "account/invitation/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            token_generator=invitation_token_generator,
            template_name="registration/password_reset_confirm.html",
            extra_context={"invitation": True},
            success_url=reverse_lazy("password_reset_complete"),
        ),
        name="invitation_confirm",
    ),
    path(
        "account/password/",
        auth_views.PasswordChangeView.as_view(
            template_name="registration/password_change_form.html"
        ),
        name="password_change",
    ),
    path(
        "account/password/done/",
        auth_views.PasswordChangeDoneView.as_view(
            template_name="registration/password_change_done.html"
        ),
        name="password_change_done",
    ),
    path("account/", never_cache(views.account_settings), name="account_settings"),
    path("account/tokens/", never_cache(views.api_token_new), name="api_token_create"),
    path("account/tokens/<int:pk>/revoke/", views.api_token_delete, name="api_token_revoke"),
    path(
        "courses/<slug:code>/learners/import/",
        views.learners_import_page,
        name="learners_import",
    ),
]
