"""Guess which of Brightline's six languages a customer writes in: en, ru, ka, sr, lv or tl.

Why it works this way:

* The script decides first, because it is certain and cheap. Georgian letters mean
  Georgian. Latin words in a Cyrillic or Georgian message are usually names
  ("Brightline", "wifi", "SIM"), so the other script wins from a quarter of the letters
  on, and below that whenever the Latin words do not clearly say which language.
* Cyrillic is Russian or Serbian. Some letters exist in only one of them (ђ ј љ њ ћ џ
  are Serbian; ы э ё ъ щ й ь are Russian) and settle most messages; short ones without
  such letters are told apart by frequent words ("како", "шта", "рачун", "није" against
  "как", "что", "мне", "работает").
* Latin is English, Latvian, Serbian Latin or Tagalog. Each frequent word votes for the
  languages it belongs to with a weight: high for words only one language has ("nav",
  "kako", "ang", "the"), low and split for words several share ("na" and "sa" are Serbian
  and Tagalog, "ko" Tagalog, Latvian and Serbian, "man" Latvian and English). Diacritics
  add votes (ā ē ī ū ģ ķ ļ ņ are Latvian only, ć đ Serbian only, č š ž both), but the
  word lists also hold the forms people type without them ("ludzu", "kapec", "zasto",
  "racun"), since many do. English words weigh least, because Taglish ("ang bagal ng
  internet ko po", "my bill is so high naman") is full of them and is still Tagalog.
* Georgian is also typed in Latin letters on phones without a Georgian keyboard
  ("interneti ar mushaobs"), so it is a fifth candidate there, with its own words.
* Too little evidence, or two languages too close to call, gives ``default``: the
  callers keep the language the conversation already had rather than flip on "ok" or
  "da". For Cyrillic the choice is only between Russian and Serbian, so without
  evidence it is ``default`` if that is one of them, else Russian (most customers who
  write in Cyrillic).

No model and no dependencies: word lists and a few ``str.count`` calls take tens of
microseconds for a chat message, which matters because every message is checked.
"""

from __future__ import annotations

import re
import unicodedata

SUPPORTED: tuple[str, ...] = ("en", "ru", "ka", "sr", "lv", "tl")

# English names of the languages, for the agent's handoff card.
LANGUAGE_NAMES: dict[str, str] = {
    "en": "English",
    "ru": "Russian",
    "ka": "Georgian",
    "sr": "Serbian",
    "lv": "Latvian",
    "tl": "Tagalog",
}

_GEORGIAN = re.compile("[\u10a0-\u10ff\u1c90-\u1cbf\u2d00-\u2d2f]+")
_CYRILLIC = re.compile("[\u0400-\u04ff]+")
_LATIN = re.compile("[a-z\u00c0-\u024f]+")
_HAS_LATIN = re.compile("[a-z\u00c0-\u024f]")
_WORD = re.compile(r"[^\W\d_]+")
# Tagalog affixes written with a hyphen before an English or Tagalog stem: "nag-load",
# "na-charge", "i-pause", "pa-check", "paki-send".
_TL_HYPHEN = re.compile(r"(?<![^\W\d_])(?:nag|mag|na|ma|i|pa|ipa|paki|naka|maka|pinag|ika)-[^\W\d_]{2,}")
# Tagalog verb prefixes glued to a stem ("magbayad", "nagre-restart", "pakisend", "makausap").
_TL_PREFIXES = ("nag", "mag", "paki", "naka", "maka", "nakaka", "makaka", "pinaka", "napaka", "nakiki")
# Georgian case endings as transliterated: "tarifshi" (in the plan), "angarishebi" (bills).
_KA_SUFFIXES = ("shi", "ebi", "ebs", "ebma")
_APOSTROPHES = "'\u2019\u02bc`\u00b4"

# Words that count as evidence, per language: {weight: "space-separated words"}.
_CYRILLIC_WORDS: dict[str, dict[float, str]] = {
    "ru": {
        1.0: "как что чтобы мне меня это этот эта эти этом почему зачем счет счета счёт нет я вы вас вам ваш "
        "можно нужно надо пожалуйста здравствуйте привет спасибо работает работать оплатить оплата оплачу "
        "деньги денег сколько когда уже еще ещё был была было были есть так только очень хочу хотел хотела "
        "связь связи помогите подскажите подключить отключить если для сегодня вчера день месяц месяце "
        "всё все мы нас наш нам ничего опять снова тоже также просто через после перед знаю понимаю "
        "сделать делать стоит списали пропал пропала пропадает договор со от при "
        "получил получила дорого дешево телефоном какой какая",
        0.5: "с карта оператор оператора",
    },
    "sr": {
        1.0: "шта како зашто рачун рачуна рачуну нема немам нисам није сам смо сте су ради раде хвала молим "
        "треба може хоћу желим бих би али ако јер овај ово овог тај нешто ништа неко сада сад данас јуче "
        "добар здраво поздрав месец месеца месечно уплата уплатио уплатила платио платила платим број "
        "мреже мрежа мрежу претплата претплату уговор уговора картица картицу кад када колико кошта јако "
        "веома спор добио добила помоћ помозите оператера оператер стално јутрос вечерас пута паре "
        "ће биће био била је мој моја моје мене мени ваш вашег од са опет поново нула имате баш бре нико "
        "уопште бескористан",
        0.8: "ми",
        0.7: "да",
        0.3: "ни ли",
    },
}

_LATIN_WORDS: dict[str, dict[float, str]] = {
    # Georgian typed in Latin letters ("interneti ar mushaobs"), common on phones without a Georgian keyboard.
    "ka": {
        1.5: "gamarjoba gamarjobat madloba gmadlobt mushaobs mushaobda interneti ratom rogor ukve isev kidev chemi "
        "chems chemtan tqven tkven tqveni tkveni tqvens tkvens aris minda mchirdeba sheidzleba shegidzliat gtxovt "
        "gtkhovt kargi kargad yvelaferi araferi aravin xdeba xom axla dzalian dzaan ramdeni ramdenamde ghirs "
        "shedis chans angarishi angarishs gadavixado gadavixadot mainc dges dghes gushin fuli puli nomeri "
        "telefoni tarifi botia",
        1.0: "ver xo rom ras rato rogorc tu",
        0.8: "ar ra",
        0.5: "da ki ho sad es",
    },
    "en": {
        0.6: "the an is are was were be been being my mine you your it its and of for on in not what whats how "
        "why when where can cant cannot do does dont doesnt didnt did with this that have has had will wont "
        "would should could there here please pay want need help get got from just still again am im ive id "
        "hi hello hey thanks thank bill phone plan working work works service since today yesterday "
        "morning tonight really very too about which who any some all yes they them we our us he she "
        "but or if then than out up down off now new last every time month week day days keeps number "
        "send tell know see like use usage charged twice refund cancel change card contract moved house "
        "transfer received never where provider copy invoice running fast slow area outage cost much many "
        "someone anyone asking third sure ok okay",
        0.5: "i",
        0.4: "no",
        0.3: "a man to at may",
    },
    "lv": {
        1.5: "nav kā lūdzu ludzu kāpēc kapec kapēc internets nestrādā nestrada strādā darbojas nedarbojas "
        "rēķins rekins rēķinu rekinu labdien sveiki paldies šodien sodien ļoti loti vēlos velos gribu "
        "palīdziet palidziet",
        1.2: "es ir vai un jau",
        1.0: "man mans mana mani manu manā mēs jūs jums jūsu jusu uz kur kas kāds kāda kads nevaru varu varat "
        "varētu vajag vajadzētu strada tagad vēl ļoti arī tas tā šis sis lai pie līdz lidz tikai savu "
        "savienojums savienojumu numurs numuru tarifs maksāt maksā samaksāt samaksat dienu dienas mēnesi "
        "menesi otro cik kopš kops nekas neko kaut jo tad viss visu labvakar telefons datus dati zvanīt "
        "zvanu nerāda nerada laiku laika nesaņēmu nesanemu saņēmu sanemu karti jauno jaunu savienojiet zagli",
        0.8: "ar par var",
        0.6: "ka kad ari bet",
        0.5: "jus vel tarifu interneta internetu",
        0.4: "no ja",
        0.3: "ta ko",
    },
    "sr": {
        1.5: "kako zašto zasto šta račun racun računa racuna računu racunu nemam nije nisam molim hvala koliko "
        "mogu hoću hocu",
        1.2: "je radi broj",
        1.0: "sta što sam su smo ste li ali ili ima imam od iz koji koja koje gde gdje kada treba moze može "
        "mozete možete želim zelim rade mreža mreza mrezu mrežu pretplata pretplatu uplatio uplatila uplata "
        "platio platila platim platiti zdravo pozdrav dobar danas juče juce sad sada već vec još jos ništa "
        "nista nešto nesto neko veoma mnogo jako ovo ovaj ovog ovde moj moja moje mog mom mene meni vaš "
        "vaša vasa jer ako kao kakav bi bih čovek covek pomoć pomoc preko košta kosta ugovor ugovora "
        "karticu kartica operatera operater dobio dobila dobijem stalno jutros veceras večeras spor puta "
        "pare će ce biti bio bila interneta internetu lopovi prevaranti bezobrazluk sramota opet ponovo neta "
        "jebote jebem sranje",
        0.8: "da ne mi za kod vam vas paket",
        0.6: "u kad ja si",
        0.5: "sa dan tarifu",
        0.4: "na sto pa",
        0.3: "i po ko to",
    },
    "tl": {
        1.5: "ang ng mga hindi naman bakit paano yung opo talaga ngayon ngayong kasi",
        1.2: "po ako pano yun sana gusto pwede puwede salamat magkano kailan",
        1.0: "lang ba ito yan iyan iyon siya sya kayo kami tayo namin natin nyo niyo ninyo dito doon wala "
        "walang meron mayroon pero nga din rin kung saan oo bayad ano anong sira bagal mabagal ulit nang "
        "nasa kahapon bukas buwan bahay tanong lagi palagi bago bagong diba eh yata daw raw sobra sobrang "
        "hina mahina laki malaki bilis mabilis nawala nawalan gumagana gamit tao ayaw ayos maayos pede "
        "natanggap natatanggap makita makikita kausap dalawang beses amin atin ninyo sakin akin pumasok "
        "di wag huwag bwiset bwisit letse leche sige ingat",
        0.8: "ko mo",
        0.7: "sa",
        0.6: "na pa pag san",
        0.5: "ka para may grabe load raw",
    },
}


def _fold(text: str) -> str:
    """Casefolded, apostrophes dropped ("don't" -> "dont"), as :func:`bot.kb.normalize.normalize` does."""
    text = text.casefold()
    for mark in _APOSTROPHES:
        if mark in text:
            text = text.replace(mark, "")
    return text


def _table(words: dict[str, dict[float, str]], order: tuple[str, ...]) -> dict[str, tuple[tuple[int, float], ...]]:
    """``{word: ((language index, weight), ...)}``, folded like the text it is matched on."""
    table: dict[str, dict[int, float]] = {}
    for language, groups in words.items():
        index = order.index(language)
        for weight, text in groups.items():
            for word in _fold(unicodedata.normalize("NFC", text)).split():
                row = table.setdefault(word, {})
                row[index] = max(row.get(index, 0.0), weight)
    return {word: tuple(row.items()) for word, row in table.items()}


_CYRILLIC_ORDER = ("ru", "sr")
_LATIN_ORDER = ("en", "lv", "sr", "tl", "ka")
_CYRILLIC_TABLE = _table(_CYRILLIC_WORDS, _CYRILLIC_ORDER)
_LATIN_TABLE = _table(_LATIN_WORDS, _LATIN_ORDER)

# Letters only one side uses, and how much one occurrence counts.
_SERBIAN_CYRILLIC = "ђјљњћџ"
_RUSSIAN_CYRILLIC = "ыэёъщйь"
_LATVIAN_LETTERS = "āēīūģķļņ"
_SERBIAN_LETTERS = "ćđ"
_SHARED_LETTERS = "čšž"  # Serbian Latin and Latvian

# Latin text needs at least this much evidence, and the winner this lead over the runner-up.
_MIN_SCORE = 1.0
_MIN_LEAD = 0.5


def _cyrillic(text: str, default: str) -> str:
    scores = [0.0, 0.0]  # ru, sr
    scores[0] += sum(text.count(c) for c in _RUSSIAN_CYRILLIC)
    scores[1] += sum(text.count(c) for c in _SERBIAN_CYRILLIC)
    get = _CYRILLIC_TABLE.get
    for token in _WORD.findall(text):
        for index, weight in get(token, ()):
            scores[index] += weight
    if scores[0] - scores[1] >= _MIN_SCORE:
        return "ru"
    if scores[1] - scores[0] >= _MIN_SCORE:
        return "sr"
    return default if default in _CYRILLIC_ORDER else "ru"


def _latin(text: str) -> str | None:
    scores = [0.0, 0.0, 0.0, 0.0, 0.0]  # en, lv, sr, tl, ka
    if not text.isascii():
        shared = 0.4 * sum(text.count(c) for c in _SHARED_LETTERS)
        scores[1] += sum(text.count(c) for c in _LATVIAN_LETTERS) + shared
        scores[2] += sum(text.count(c) for c in _SERBIAN_LETTERS) + shared
    if "-" in text:
        scores[3] += len(_TL_HYPHEN.findall(text))
    get = _LATIN_TABLE.get
    for token in _WORD.findall(text):
        row = get(token)
        if row is not None:
            for index, weight in row:
                scores[index] += weight
        elif len(token) >= 6:
            if token.startswith(_TL_PREFIXES):
                scores[3] += 0.5
            elif token.endswith(_KA_SUFFIXES):
                scores[4] += 0.7
    ranked = sorted(zip(scores, _LATIN_ORDER, strict=True), reverse=True)
    (best, language), (second, _) = ranked[0], ranked[1]
    if best < _MIN_SCORE or best - second < _MIN_LEAD:
        return None
    return language


def guess_language(text: str, default: str = "en") -> str:
    """One of :data:`SUPPORTED` for ``text``; ``default`` when there is too little to tell.

    ``default`` is returned as given for text without letters ("12345", "👍", "").
    """
    folded = _fold(text)
    if folded.isascii():
        return (_latin(folded) or default) if _HAS_LATIN.search(folded) else default
    if not unicodedata.is_normalized("NFC", folded):
        folded = unicodedata.normalize("NFC", folded)
    # Letters per script, counted by runs of them (fewer matches than one per letter).
    georgian = sum(map(len, _GEORGIAN.findall(folded)))
    cyrillic = sum(map(len, _CYRILLIC.findall(folded)))
    if not (georgian or cyrillic):
        return (_latin(folded) or default) if _HAS_LATIN.search(folded) else default
    # Latin words in Cyrillic or Georgian text are mostly names ("Brightline", "wifi"), so a
    # quarter of the letters is enough for the other script, and it decides when the Latin
    # words alone do not.
    latin = sum(map(len, _LATIN.findall(folded)))
    if 3 * max(georgian, cyrillic) < latin and (found := _latin(folded)):
        return found
    return "ka" if georgian >= cyrillic else _cyrillic(folded, default)


# Serbian is written in both alphabets, letter for letter (Vuk's alphabet and Gaj's).
_SERBIAN_TO_LATIN = str.maketrans(
    {
        **dict(zip("абвгдђежзијклмнопрстћуфхцчш", "abvgdđežzijklmnoprstćufhcčš", strict=True)),
        **dict(zip("АБВГДЂЕЖЗИЈКЛМНОПРСТЋУФХЦЧШ", "ABVGDĐEŽZIJKLMNOPRSTĆUFHCČŠ", strict=True)),
        "љ": "lj",
        "њ": "nj",
        "џ": "dž",
        "Љ": "Lj",
        "Њ": "Nj",
        "Џ": "Dž",
    }
)


def serbian_in_latin(text: str) -> str | None:
    """Serbian Cyrillic text in Latin letters, or None when ``text`` is not Serbian Cyrillic.

    The encoder knows Serbian far better in Latin letters (the script most Serbian,
    Croatian and Bosnian web text uses): "Ово је невиђено" and "Ovo je neviđeno" mean the same
    but land apart. The tone model learns from both forms of each Cyrillic message.
    """
    if not _CYRILLIC.search(text) or guess_language(text, default="") != "sr":
        return None
    return unicodedata.normalize("NFC", text).translate(_SERBIAN_TO_LATIN)
