from django.apps import AppConfig


class KeysConfig(AppConfig):
    verbose_name = "Keys and encryption"
    name = "apps.keys"
    label = "keys"
