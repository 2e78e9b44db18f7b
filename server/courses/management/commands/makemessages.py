"""makemessages that also collects the scorer CLI's ``fill(translate, "msgid", ...)`` calls.

Django documents this way of adding xgettext keywords: subclass the command and extend
``xgettext_options``. ``fill``'s second argument is the msgid. It also turns off
msgmerge's fuzzy matching (see ``msgmerge_options``).
"""

from django.core.management.commands import makemessages


class Command(makemessages.Command):
    xgettext_options = [*makemessages.Command.xgettext_options, "--keyword=fill:2"]
    # No guessed translations: msgmerge's fuzzy matching filled new English entries with
    # an unrelated plural ("Similar submissions" -> "%(n)s submission"); a new msgid
    # starts untranslated and scripts/messages lists it.
    msgmerge_options = [*makemessages.Command.msgmerge_options, "--no-fuzzy-matching"]
