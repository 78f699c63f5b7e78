from django.apps import AppConfig


class LtiConfig(AppConfig):
    default = True
    name = "apps.lti"
    label = "lti"
    verbose_name = "LTI 1.3 platform"

    def ready(self) -> None:
        # Answer governance's offboarding signal (revoke what this spoke issued).
        from . import receivers  # noqa: F401
