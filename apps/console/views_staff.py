"""Staff accounts (SPEC §13 "Staff"): the Staff page and an account's page for superusers, and everyone's own
password. Every change is an apps.tenancy.services call, which checks the role itself (a forged POST is refused
there as here) and writes the staff-wide audit row.

An account's page takes its three forms (roles, active, password) as POSTs to its own URL: a saved change and a
refused one both redirect to it (post/redirect/get; the refused form shown there once, apps.console.prg), so
reloading works either way. The new-account and own-password forms do the same on their own pages.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse

from apps.common.exceptions import ApplicationError, NotFound
from apps.tenancy import services as tenancy
from apps.tenancy.roles import staff_manage_allowed
from apps.tenancy.selectors import STAFF_LIST_MAX, staff_get, staff_list

from . import presenters_staff
from .forms import apply_field_errors
from .forms_staff import OwnPasswordForm, StaffActiveForm, StaffCreateForm, StaffPasswordResetForm, StaffRolesForm
from .prg import see_other
from .services import LoginLocked
from .views import ConsoleView


def _password_field_errors(form, exc: ApplicationError) -> None:
    """The service names the new password `password`; the forms type it twice, as password1 and password2."""
    fields = dict(exc.fields or {})
    if "password" in fields:
        fields["password1"] = fields.pop("password")
    apply_field_errors(form, fields)
    if not exc.fields:
        form.add_error(None, exc.detail)


class SuperuserView(ConsoleView):
    """A page of staff management: superusers only (roles.staff_manage_allowed), for GET and POST alike."""

    def refusal(self):
        if staff_manage_allowed(user=self.request.user):
            return None
        return self.render("console/forbidden.html", {
            "reason": "Only superusers manage staff accounts. Everyone changes their own password under "
                      "\u201cPassword\u201d at the top of the page."
        }, status=403)


class StaffListView(SuperuserView):
    def get(self, request):
        accounts = [presenters_staff.account_row(user) for user in staff_list()]
        return self.render("console/staff_list.html", {
            "staff_tab": "accounts", "accounts": accounts, "at_max": len(accounts) >= STAFF_LIST_MAX,
            "staff_max": STAFF_LIST_MAX,
        })


class StaffCreateView(SuperuserView):
    template = "console/staff_new.html"

    def get(self, request):
        form = self.refused_form("account", StaffCreateForm) or StaffCreateForm()
        return self.render(self.template, {"staff_tab": "accounts", "form": form})

    def post(self, request):
        form = StaffCreateForm(request.POST)
        if not form.is_valid():
            return self.refuse("account", form, to=reverse("console:staff-create"))
        try:
            user = tenancy.staff_create(actor=request.user, username=form.cleaned_data["username"],
                                        password=form.cleaned_data["password1"], role=form.cleaned_data["role"])
        except ApplicationError as exc:
            _password_field_errors(form, exc)
            return self.refuse("account", form, to=reverse("console:staff-create"))
        messages.success(request, f"Staff account {user.username} created ({form.cleaned_data['role']}). The "
                                  "change is in the staff audit trail.")
        return redirect("console:staff-detail", username=user.username)


class StaffDetailView(SuperuserView):
    """GET: the account, its roles, its state, a new password; POST `action`: roles, active or password."""

    template = "console/staff_detail.html"

    def get_account(self, username: str):
        try:
            return staff_get(username=username)
        except NotFound:
            raise Http404(f"No staff account {username}.") from None

    def page(self, account) -> str:
        return reverse("console:staff-detail", kwargs={"username": account.username})

    def get(self, request, username):
        account = self.get_account(username)
        row = presenters_staff.account_row(account)
        return self.render(self.template, {
            "staff_tab": "accounts", "account": row, "is_self": account.pk == request.user.pk,
            "roles_form": self.refused_form("roles", StaffRolesForm) or StaffRolesForm(initial={"roles": row["roles"]}),
            "password_form": self.refused_form("password", StaffPasswordResetForm) or StaffPasswordResetForm(),
        })

    def post(self, request, username):
        account = self.get_account(username)
        action = request.POST.get("action")
        if action == "roles":
            return self.set_roles(account)
        if action == "active":
            return self.set_active(account)
        if action == "password":
            return self.set_password(account)
        messages.error(request, "That is not a change of a staff account. Nothing was changed.")
        return see_other(self.page(account))

    def set_roles(self, account):
        form = StaffRolesForm(self.request.POST)
        form.is_valid()
        try:
            changed = tenancy.staff_roles_set(actor=self.request.user, user=account,
                                              roles=form.cleaned_data.get("roles") or [])
        except ApplicationError as exc:
            messages.error(self.request, f"{(exc.fields or {}).get('roles', [exc.detail])[0]} Nothing was changed.")
            return self.refuse("roles", form, to=self.page(account))
        if changed:
            messages.success(self.request, f"{account.username} now holds: {', '.join(form.cleaned_data['roles'])}."
                                           " Their console shows it on their next page.")
        else:
            messages.info(self.request, f"{account.username} already holds these roles.")
        return redirect("console:staff-detail", username=account.username)

    def set_active(self, account):
        form = StaffActiveForm(self.request.POST)
        if not form.is_valid():
            messages.error(self.request, "Activate or deactivate: nothing else. Nothing was changed.")
            return see_other(self.page(account))
        try:
            changed = tenancy.staff_active_set(actor=self.request.user, user=account, active=form.active())
        except ApplicationError as exc:
            messages.error(self.request, f"{exc.detail} Nothing was changed.")
            return see_other(self.page(account))
        if not changed:
            state = "active" if form.active() else "deactivated"
            messages.info(self.request, f"{account.username} was already {state}.")
        elif form.active():
            messages.success(self.request, f"{account.username} is active again and can sign in.")
        else:
            messages.success(self.request, f"{account.username} is deactivated: their staff tokens stopped working "
                                           "and their console sessions ended.")
        return redirect("console:staff-detail", username=account.username)

    def set_password(self, account):
        form = StaffPasswordResetForm(self.request.POST)
        if not form.is_valid():
            return self.refuse("password", form, to=self.page(account))
        try:
            tenancy.staff_password_reset(actor=self.request.user, user=account,
                                         password=form.cleaned_data["password1"])
        except ApplicationError as exc:
            _password_field_errors(form, exc)
            return self.refuse("password", form, to=self.page(account))
        if account.pk == self.request.user.pk:
            update_session_auth_hash(self.request, account)
        messages.success(self.request, f"New password set for {account.username}: their staff tokens were revoked "
                                       "and their console sessions ended. Tell them the password another way.")
        return redirect("console:staff-detail", username=account.username)


class OwnPasswordView(ConsoleView):
    """Everyone signed in: change one's own password (the current one, the new one twice). The session stays;
    the account's staff tokens are revoked."""

    template = "console/password.html"

    def get(self, request):
        return self.render(self.template, {"form": self.refused_form("password", OwnPasswordForm) or OwnPasswordForm()})

    def post(self, request):
        form = OwnPasswordForm(request.POST)
        page = reverse("console:password")
        if not form.is_valid():
            return self.refuse("password", form, to=page)
        try:
            tenancy.staff_password_change(request=request, user=request.user,
                                          old_password=form.cleaned_data["old_password"],
                                          new_password=form.cleaned_data["password1"])
        except LoginLocked as exc:
            form.add_error(None, exc.message)  # the page says how long the lock lasts
            return self.refuse("password", form, to=page)
        except ApplicationError as exc:
            _password_field_errors(form, exc)
            return self.refuse("password", form, to=page)
        update_session_auth_hash(request, request.user)  # this session stays signed in
        messages.success(request, "Your password was changed. Your staff tokens were revoked: sign in to the admin "
                                  "API again for a new one.")
        return redirect("console:password")
