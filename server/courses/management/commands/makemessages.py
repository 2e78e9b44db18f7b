"""makemessages that also collects the scorer CLI's ``fill(translate, "msgid", ...)`` calls.

Django documents this way of adding xgettext keywords: subclass the command and extend
``xgettext_options``. ``fill``'s second argument is the msgid.
"""

from django.core.management.commands import makemessages


class Command(makemessages.Command):
    xgettext_options = [*makemessages.Command.xgettext_options, "--keyword=fill:2"]
