"""An e-mail address or phone number a customer leaves for a follow-up, checked.

Out of hours, or with nobody online, the bot offers to be contacted instead of waiting in
the chat; the customer's next messages are read for an address. Only what could really
reach them is taken: an address with a domain that has a dot and a top-level name of two
letters or more, or a phone number of 7 to 15 digits (the ITU's E.164 maximum).
"""

from __future__ import annotations

import re

EMAIL = re.compile(
    r"(?<![\w.+-])([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24})(?![\w-])"
)
PHONE = re.compile(r"(?<![\w+])(\+?\d[\d\s().-]{5,22}\d)(?!\w)")
EMAIL_MAX = 254
# "phone", "call", "number" in the six languages: the number in the message is a phone.
PHONE_WORDS = re.compile(
    r"phone|call|number|mobile|reach|тел|звон|номер|ტელ|ნომერ|დამირეკ|telefon|zov|broj|зов|број|tālr|zvan|numur|"
    r"tawag|numero|telepono",
    re.IGNORECASE,
)
DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")


def contact_in(text: str) -> tuple[str, str] | None:
    """``("email", address)`` or ``("phone", "+37120000000")`` found in ``text``, else ``None``."""
    text = text or ""
    found = EMAIL.search(text)
    if found and len(found.group(1)) <= EMAIL_MAX and ".." not in found.group(1):
        return "email", found.group(1)
    for candidate in PHONE.findall(text):
        digits = re.sub(r"\D", "", candidate)
        if not 7 <= len(digits) <= 15 or DATE.fullmatch(candidate.strip()):
            continue
        # Without a "+", only a message that is mostly the number: "order 1234567, still
        # not here" holds an order number, not a phone.
        rest = text.replace(candidate, " ").split()
        if candidate.startswith("+") or len(rest) <= 4 or PHONE_WORDS.search(text):
            return "phone", ("+" if candidate.startswith("+") else "") + digits
    return None


def looks_like_contact(text: str) -> bool:
    """A message that tries to be an address or number but is not a valid one."""
    return "@" in (text or "") or len(re.sub(r"\D", "", text or "")) >= 5
