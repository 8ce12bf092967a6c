"""Extract the marked strings into the catalogs (locale/*/LC_MESSAGES/django.po, djangojs.po), or check them.

    manage.py translations           # makemessages for every translated locale, both domains
    manage.py translations --check   # exit 1 if a marked string is missing, untranslated, fuzzy or stale

Then translate the new entries (empty msgstr) and run ``manage.py compilemessages`` (``make`` does). See
docs/i18n.md and config/translations.py.
"""

from django.core.management.base import BaseCommand, CommandError

from config import translations


class Command(BaseCommand):
    help = "Extract marked strings into the committed catalogs, or check them (--check)."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="write nothing; fail on anything missing")

    def handle(self, *args, check=False, verbosity=1, **options):
        from django.conf import settings

        if not check:
            translations.make_messages(settings.LOCALE_PATHS[0], verbosity=verbosity)
            return
        problems = translations.check_catalogs()
        if problems:
            raise CommandError(problems.report())
        self.stdout.write("translations: complete and up to date")
