"""The words a person reads, in Polish first, then English and Ukrainian: one catalogue.

Each entry is a template per language with named fields (`{language}`, `{parts}`...);
`words(key, **fields)` fills them in for every language at once, so an error can carry
its text in each language and each face picks the reader's (the console the page's
language, the API all three, the CLI English, as its other messages are).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from broadcaster.errors import InvalidInput

# Polish first: the language every resident and operator without a choice reads.
LANGUAGES = ("pl", "en", "uk")

CATALOGUE: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "text.control": {
            "pl": "zawiera niedozwolony znak sterujący {code} (znak nr {position}): usuń go",
            "en": "contains a control character {code} (character {position}): remove it",
            "uk": (
                "містить недозволений керівний символ {code} (символ № {position}): видаліть його"
            ),
        },
        "text.surrogate": {
            "pl": "zawiera niepoprawny znak {code} (znak nr {position}): to nie jest tekst Unicode",
            "en": "contains an invalid character {code} (character {position}): not Unicode text",
            "uk": "містить неприпустимий символ {code} (символ № {position}): це не текст Unicode",
        },
        "text.noncharacter": {
            "pl": (
                "zawiera znak {code} (znak nr {position}), który nie służy do pisania tekstu: "
                "usuń go"
            ),
            "en": "contains {code} (character {position}), which is not for text: remove it",
            "uk": (
                "містить символ {code} (символ № {position}), не призначений для тексту: "
                "видаліть його"
            ),
        },
        "sms.too_many_parts": {
            "pl": (
                "SMS ({language}) wymaga {parts} części, limit to {limit}: skróć tekst "
                "lub włącz transliterację do GSM-7"
            ),
            "en": (
                "SMS ({language}) needs {parts} parts, the limit is {limit}: shorten the "
                "text or transliterate it to GSM-7"
            ),
            "uk": (
                "SMS ({language}) потребує {parts} частин, ліміт {limit}: скоротіть текст "
                "або увімкніть транслітерацію в GSM-7"
            ),
        },
        "sms.over_limit": {
            "pl": "ponad limit {limit} części: nie zostanie zatwierdzony",
            "en": "over the limit of {limit} parts: it cannot be approved",
            "uk": "понад ліміт {limit} частин: його не буде затверджено",
        },
        "sms.shorten": {
            "pl": (
                "Skróć tekst albo zaznacz „SMS bez polskich znaków” (transliterate_sms): "
                "w GSM-7 część mieści 160 znaków zamiast 70."
            ),
            "en": (
                "Shorten the text, or tick “SMS without Polish letters” (transliterate_sms): "
                "a GSM-7 part holds 160 characters, not 70."
            ),
            "uk": (
                "Скоротіть текст або позначте «SMS без польських літер» (transliterate_sms): "
                "частина GSM-7 вміщує 160 символів замість 70."
            ),
        },
        "sms.shorten_only": {
            "pl": "Tekst jest już transliterowany: skróć go.",
            "en": "The text is already transliterated: shorten it.",
            "uk": "Текст уже транслітеровано: скоротіть його.",
        },
        "audit.missing": {
            "pl": "brak wpisu seq {seq}",
            "en": "record seq {seq} is missing",
            "uk": "бракує запису seq {seq}",
        },
        "audit.out_of_order": {
            "pl": "wpis seq {seq} stoi nie na swoim miejscu",
            "en": "seq {seq} appears out of order",
            "uk": "запис seq {seq} стоїть не на своєму місці",
        },
        "audit.moved": {
            "pl": "nie następuje po poprzednim wpisie (przeniesiony albo usunięto wpis przed nim)",
            "en": "does not follow the previous record (moved, or a record before it was removed)",
            "uk": "не йде за попереднім записом (переміщений або видалено запис перед ним)",
        },
        "audit.changed": {
            "pl": "jego treść albo skrót zmieniono po zapisaniu",
            "en": "its content or its hash was changed after it was written",
            "uk": "його вміст або хеш змінено після запису",
        },
        "audit.cut": {
            "pl": "łańcuch kończy się na seq {seq}, a jego wierzchołek wskazuje {tip}: "
            "usunięto wpisy z końca",
            "en": "the chain ends at seq {seq} but its tip says {tip}: "
            "records were removed from the end",
            "uk": "ланцюг закінчується на seq {seq}, а його вершина вказує {tip}: "
            "записи видалено з кінця",
        },
        "audit.no_tip": {
            "pl": "brak wierzchołka łańcucha (wiersz audit_head usunięty lub nieczytelny)",
            "en": "the chain's tip is missing (the audit_head row was removed or cannot be read)",
            "uk": "вершина ланцюга відсутня (рядок audit_head видалено або він нечитабельний)",
        },
        "audit.unreadable": {
            "pl": "od seq {seq} wpis nie daje się odczytać: jego wartości zmieniono poza systemem",
            "en": "from seq {seq} on, a record cannot be read: its values were changed outside "
            "the system",
            "uk": "починаючи з seq {seq}, запис неможливо прочитати: його значення змінено поза "
            "системою",
        },
        "audit.tip_differs": {
            "pl": "wierzchołek łańcucha wskazuje seq {seq}, ale nie jego skrót: zmieniono go",
            "en": "the chain's tip names seq {seq} but not its hash: the tip was changed",
            "uk": "вершина ланцюга вказує seq {seq}, але не його хеш: її змінено",
        },
        "audit.beyond_tip": {
            "pl": "w śladzie jest wpis seq {seq}, dalej niż wierzchołek (seq {tip}): wpis "
            "dopisano poza systemem albo wierzchołek cofnięto",
            "en": "the trail holds record seq {seq}, past its tip (seq {tip}): a record was "
            "added outside the system, or the tip was moved back",
            "uk": "у журналі є запис seq {seq}, далі за вершину (seq {tip}): запис додано поза "
            "системою або вершину повернуто назад",
        },
        "audit.tip_not_sealed": {
            "pl": "wierzchołek łańcucha (seq {seq}) nie jest zapieczętowany przez ten system "
            "(pieczęć się nie zgadza): przesunięto go bez klucza, teraz albo przed dopisaniem "
            "późniejszych wpisów, i mogły zostać usunięte wpisy z końca",
            "en": "the chain's tip (seq {seq}) is not sealed by this system (its seal does "
            "not match): it was moved without the key, now or before later records were "
            "appended, and records may have been removed from the end",
            "uk": "вершину ланцюга (seq {seq}) не запечатала ця система (печатка не "
            "збігається): її переміщено без ключа, зараз або до дописування пізніших записів, "
            "і могли бути видалені записи з кінця",
        },
        "audit.cut_after_checkpoint": {
            "pl": "punkt kontrolny z {taken_at} widział seq {seen}, a łańcuch kończy się na "
            "seq {seq}: usunięto wpisy z końca",
            "en": "a checkpoint taken {taken_at} saw seq {seen}, but the chain ends at seq "
            "{seq}: records were removed from the end",
            "uk": "контрольна точка від {taken_at} бачила seq {seen}, а ланцюг закінчується на "
            "seq {seq}: записи видалено з кінця",
        },
        "audit.checkpoint_differs": {
            "pl": "różni się od tego, co widział punkt kontrolny z {taken_at}",
            "en": "differs from what the checkpoint taken {taken_at} saw",
            "uk": "відрізняється від того, що бачила контрольна точка від {taken_at}",
        },
        "audit.foreign_checkpoint": {
            "pl": "punktu kontrolnego seq {seq} nie wydał ten ślad audytowy (pieczęć się nie "
            "zgadza)",
            "en": "the checkpoint of seq {seq} was not issued by this audit trail (its seal "
            "does not match)",
            "uk": "контрольну точку seq {seq} видав не цей журнал аудиту (печатка не збігається)",
        },
        "audit.malformed_checkpoint": {
            "pl": "wiersz {line} nie jest całym punktem kontrolnym śladu audytowego",
            "en": "line {line} is not a whole audit checkpoint",
            "uk": "рядок {line} не є повною контрольною точкою журналу аудиту",
        },
        "audit.not_a_checkpoint": {
            "pl": "to nie jest cały punkt kontrolny śladu audytowego",
            "en": "is not a whole audit checkpoint",
            "uk": "це не повна контрольна точка журналу аудиту",
        },
        "audit.reseal_needs_checkpoint": {
            "pl": "podaj co najmniej jeden punkt kontrolny (najnowszy, jaki masz): pieczęć "
            "wraca tylko po sprawdzeniu śladu z czymś spoza bazy",
            "en": "give at least one checkpoint (the newest you hold): a seal comes back only "
            "once the trail was checked against something kept outside the database",
            "uk": "вкажіть щонайменше одну контрольну точку (найновішу, яку маєте): печатка "
            "повертається лише після перевірки журналу з чимось поза базою",
        },
        "audit.no_checkpoint": {
            "pl": "nie zawiera żadnego punktu kontrolnego śladu audytowego",
            "en": "holds no audit checkpoint",
            "uk": "не містить жодної контрольної точки журналу аудиту",
        },
        "audit.not_utf8": {
            "pl": "{name} nie jest tekstem UTF-8",
            "en": "{name} is not UTF-8 text",
            "uk": "{name} не є текстом UTF-8",
        },
        "link.forged": {
            "pl": "Ten link jest nieprawidłowy.",
            "en": "This link is not valid.",
            "uk": "Це посилання недійсне.",
        },
        "link.expired": {
            "pl": "Ten link wygasł. Poproś o nowy.",
            "en": "This link has expired. Ask for a new one.",
            "uk": "Термін дії цього посилання минув. Попросіть нове.",
        },
        "status.done_with_failures": {
            "pl": "wysłany z błędami ({failed} nieudanych)",
            "en": "sent with failures ({failed} failed)",
            "uk": "надіслано з помилками ({failed} невдалих)",
        },
        "time.not_a_time": {
            "pl": "musi być datą i godziną (RRRR-MM-DD GG:MM)",
            "en": "must be a date and time (YYYY-MM-DD HH:MM)",
            "uk": "має бути датою й часом (РРРР-ММ-ДД ГГ:ХХ)",
        },
        "time.skipped": {
            "pl": "nie istnieje w Warszawie (zegary przestawia się wtedy do przodu)",
            "en": "does not exist in Warsaw (the clocks go forward then)",
            "uk": "не існує у Варшаві (тоді годинники переводять уперед)",
        },
    }
)


def words(key: str, **fields: object) -> dict[str, str]:
    """The entry `key` in every language, its fields filled in (Polish first)."""
    entry = CATALOGUE[key]
    return {language: entry[language].format(**fields) for language in LANGUAGES}


def refusal(field: str, key: str, **fields: object) -> InvalidInput:
    """Bad input named by `field`, worded from the catalogue entry `key`."""
    said = words(key, **fields)
    return InvalidInput(field, said["en"], translations=said)
