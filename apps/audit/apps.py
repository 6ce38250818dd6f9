from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"

    def ready(self):
        # Sign-ins through Django's login() (the console, the Django admin) and lockouts (django-axes' signal,
        # sent by apps/lockout for every staff sign-in) are recorded here: they happen inside Django's and axes'
        # own code, which no service of ours wraps. The staff token's sign-in is audited by staff_token_issue.
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_logged_in

        from apps.common.clientip import client_ip

        from . import services

        def on_logged_in(sender, request, user, **kwargs):
            via = services.sign_in_via(request) if request is not None else None
            if via is not None:
                services.audit_sign_in(user=user, via=via, address=client_ip(request))

        def on_locked_out(sender, request, username, ip_address, **kwargs):
            # Chat users' and client credentials' names ("user:…", "client:…") are an app's, not staff's.
            if request is None or ":" in (username or ""):
                return
            state = getattr(request, "lockout_state", None)
            services.audit_lockout(username=username, via=services.sign_in_via(request) or "other",
                                   address=ip_address or client_ip(request),
                                   retry_after=state.retry_after if state is not None else 0)

        user_logged_in.connect(on_logged_in, dispatch_uid="audit-sign-in", weak=False)
        user_locked_out.connect(on_locked_out, dispatch_uid="audit-lockout", weak=False)
