#!/usr/bin/env python
import sys


def main():
    from config.env import use_default_settings_module

    use_default_settings_module()  # production unless DJANGO_SETTINGS_MODULE (environment or .env) says otherwise
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
