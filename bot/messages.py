"""Everything the bot and the handoff service say in their own words, in every language
the assistant serves (knowledge-base answers live in ``data/faq``).

One table for the action server and the handoff service alike, so a Russian or Georgian
customer hears the same language from the bot, the queue and the survey. Unknown
languages fall back to English.
"""

from __future__ import annotations

from datetime import datetime

FALLBACK = "en"

TEXTS: dict[str, dict[str, str]] = {
    "greet": {
        "en": "Hi! I'm Brightline's virtual assistant. Ask me about your bill, plan, order, delivery, returns, "
        "outages or devices.",
        "ru": "Здравствуйте! Я виртуальный помощник Brightline. Спросите меня о счёте, тарифе, заказе, доставке, "
        "возврате, авариях или устройствах.",
        "ka": "გამარჯობა! მე ვარ Brightline-ის ვირტუალური ასისტენტი. მკითხეთ ანგარიშის, ტარიფის, შეკვეთის, "
        "მიწოდების, დაბრუნების, ქსელის დაზიანების ან მოწყობილობების შესახებ.",
    },
    "goodbye": {
        "en": "Thanks for chatting with Brightline. Have a great day!",
        "ru": "Спасибо, что обратились в Brightline. Хорошего дня!",
        "ka": "გმადლობთ, რომ დაგვიკავშირდით. კარგი დღე გქონდეთ!",
    },
    "you_are_welcome": {
        "en": "You're welcome! Is there anything else I can help you with?",
        "ru": "Пожалуйста! Могу ли я ещё чем-то помочь?",
        "ka": "არაფრის! კიდევ რამით შემიძლია დაგეხმაროთ?",
    },
    "iamabot": {
        "en": "I'm Brightline's virtual assistant, a bot. I can answer most questions right away, and I can "
        "connect you with a person from our support team whenever you like.",
        "ru": "Я виртуальный помощник Brightline, то есть бот. На большинство вопросов отвечаю сразу, а в любой "
        "момент могу соединить вас с сотрудником поддержки.",
        "ka": "მე Brightline-ის ვირტუალური ასისტენტი ვარ, ანუ ბოტი. კითხვების უმეტესობას მაშინვე ვპასუხობ და "
        "ნებისმიერ დროს შემიძლია დაგაკავშიროთ მხარდაჭერის თანამშრომელთან.",
    },
    "affirm": {
        "en": "Great! Is there anything else I can help you with?",
        "ru": "Отлично! Чем ещё могу помочь?",
        "ka": "შესანიშნავია! კიდევ რამით შემიძლია დაგეხმაროთ?",
    },
    "deny": {
        "en": "Sorry about that. Could you tell me a bit more, in other words? Or I can connect you with a person.",
        "ru": "Извините. Расскажите, пожалуйста, подробнее, другими словами. Или я соединю вас с сотрудником.",
        "ka": "ბოდიში. შეგიძლიათ სხვა სიტყვებით ამიხსნათ? ან დაგაკავშირებთ თანამშრომელთან.",
    },
    "did_you_mean": {
        "en": "I want to make sure I get this right. Did you mean:",
        "ru": "Хочу убедиться, что правильно вас понял. Вы имели в виду:",
        "ka": "მინდა დავრწმუნდე, რომ სწორად გავიგე. ხომ არ გულისხმობდით:",
    },
    "not_understood": {
        "en": "Sorry, I didn't understand that. Could you rephrase it? Or I can connect you with a person from "
        "our support team.",
        "ru": "Извините, я не понял. Попробуйте сформулировать иначе. Или я соединю вас с сотрудником поддержки.",
        "ka": "ბოდიში, ვერ გავიგე. სცადეთ სხვა სიტყვებით, ან დაგაკავშირებთ მხარდაჭერის თანამშრომელთან.",
    },
    "talk_to_person": {"en": "Talk to a person", "ru": "Связаться с человеком", "ka": "ადამიანთან საუბარი"},
    "handoff_queue": {
        "en": "I'm connecting you with a person from our support team. You are number {position} in the queue; "
        "expected wait: about {minutes} minute{plural}. They will see this whole conversation, so you won't "
        "need to repeat yourself.",
        "ru": "Соединяю вас с сотрудником поддержки. Вы {position}-й в очереди; ожидание около {minutes} мин. "
        "Сотрудник увидит всю переписку, повторять ничего не нужно.",
        "ka": "გაკავშირებთ მხარდაჭერის თანამშრომელთან. რიგში ხართ {position}-ე; მოლოდინი დაახლოებით {minutes} "
        "წთ. თანამშრომელი მთელ მიმოწერას დაინახავს, ასე რომ, გამეორება არ დაგჭირდებათ.",
    },
    "handoff_nobody": {
        "en": "I've passed your conversation to our support team. No one is available right now, but your "
        "messages are saved here and a person will reply as soon as someone is back. You don't need to repeat "
        "anything.",
        "ru": "Я передал ваш разговор в службу поддержки. Сейчас свободных сотрудников нет, но ваши сообщения "
        "сохранены, и вам ответят здесь, как только кто-то освободится. Повторять ничего не нужно.",
        "ka": "თქვენი საუბარი გადავეცი მხარდაჭერის გუნდს. ამჟამად თავისუფალი თანამშრომელი არ არის, მაგრამ "
        "თქვენი შეტყობინებები შენახულია და გიპასუხებენ აქ, როგორც კი ვინმე გათავისუფლდება.",
    },
    "handoff_after_hours": {
        "en": "I've passed your conversation to our support team. They're not in right now; we're here {hours} "
        "({zone} time). A person will reply here {back}. You can leave more details now, and you won't need to "
        "repeat anything.",
        "ru": "Я передал ваш разговор в службу поддержки. Сейчас сотрудники не работают; мы на связи {hours} "
        "(время {zone}). Вам ответят здесь {back}. Можете пока добавить подробности, повторять ничего не нужно.",
        "ka": "თქვენი საუბარი გადავეცი მხარდაჭერის გუნდს. ამჟამად არ ვმუშაობთ; ვმუშაობთ {hours} ({zone} დროით). "
        "გიპასუხებენ აქ {back}. შეგიძლიათ დაამატოთ დეტალები, გამეორება არ დაგჭირდებათ.",
    },
    "position": {
        "en": "You are now number {position} in the queue.",
        "ru": "Теперь вы {position}-й в очереди.",
        "ka": "ახლა რიგში ხართ {position}-ე.",
    },
    "expected_wait": {
        "en": " Expected wait: about {minutes} minute{plural}.",
        "ru": " Ожидание около {minutes} мин.",
        "ka": " მოლოდინი დაახლოებით {minutes} წთ.",
    },
    "agent_joined": {
        "en": "Hi, this is {agent} from the Brightline support team. I'm reading your conversation now.",
        "ru": "Здравствуйте, это {agent} из службы поддержки Brightline. Читаю вашу переписку.",
        "ka": "გამარჯობა, მე ვარ {agent} Brightline-ის მხარდაჭერის გუნდიდან. ვკითხულობ თქვენს მიმოწერას.",
    },
    "back_to_bot": {
        "en": "You're back with Brightline's virtual assistant. Ask me anything, or ask for a person again at "
        "any time.",
        "ru": "Вы снова общаетесь с виртуальным помощником Brightline. Спрашивайте что угодно или в любой момент "
        "попросите соединить с сотрудником.",
        "ka": "თქვენ კვლავ Brightline-ის ვირტუალურ ასისტენტთან ხართ. მკითხეთ ნებისმიერი რამ, ან ნებისმიერ დროს "
        "ითხოვეთ თანამშრომელი.",
    },
    "csat_question": {
        "en": "Your chat with our support team is closed. How would you rate the help you got, from 1 (poor) to 5 "
        "(excellent)?",
        "ru": "Чат со службой поддержки завершён. Оцените, пожалуйста, полученную помощь от 1 (плохо) до 5 (отлично).",
        "ka": "მხარდაჭერის ჩატი დასრულდა. შეაფასეთ მიღებული დახმარება 1-დან (ცუდი) 5-მდე (შესანიშნავი).",
    },
    "csat_thanks": {
        "en": "Thank you for your feedback! If you need anything else, just write here.",
        "ru": "Спасибо за отзыв! Если понадобится что-то ещё, просто напишите здесь.",
        "ka": "გმადლობთ შეფასებისთვის! თუ კიდევ რამე დაგჭირდებათ, უბრალოდ მოგვწერეთ აქ.",
    },
}

_DAYS = {
    "en": ("today", "tomorrow", "on {weekday}", ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                                 "Saturday", "Sunday")),
    "ru": ("сегодня", "завтра", "{weekday}", ("в понедельник", "во вторник", "в среду", "в четверг",
                                              "в пятницу", "в субботу", "в воскресенье")),
    "ka": ("დღეს", "ხვალ", "{weekday}", ("ორშაბათს", "სამშაბათს", "ოთხშაბათს", "ხუთშაბათს", "პარასკევს",
                                          "შაბათს", "კვირას")),
}  # fmt: skip
_AT = {"en": "{day} at {time}", "ru": "{day} в {time}", "ka": "{day} {time}-ზე"}


def say(key: str, language: str | None = None, **values: object) -> str:
    """The text for ``key`` in ``language`` (English if there is none), filled with ``values``."""
    texts = TEXTS[key]
    text = texts.get(language or FALLBACK) or texts[FALLBACK]
    minutes = values.get("minutes")
    return text.format(plural="" if minutes == 1 else "s", **values)


def when(at: datetime, now: datetime, language: str | None = None) -> str:
    """'tomorrow at 08:00' as the customer reads it, in their language."""
    today, tomorrow, weekday_form, weekdays = _DAYS.get(language or FALLBACK, _DAYS[FALLBACK])
    days = (at.date() - now.astimezone(at.tzinfo).date()).days
    day = today if days == 0 else tomorrow if days == 1 else weekday_form.format(weekday=weekdays[at.weekday()])
    return _AT.get(language or FALLBACK, _AT[FALLBACK]).format(day=day, time=f"{at:%H:%M}")


def csat_buttons() -> list[dict[str, str]]:
    """The 1-5 rating buttons; their payload is read by ``action_store_csat``."""
    return [{"title": str(n), "payload": f'/csat{{"csat_score": "{n}"}}'} for n in range(1, 6)]
