"""Written text -> the words a person would say (English), before phonemisation.

Covers numbers, ordinals, years, decimals, fractions, currency, percentages, units, dates,
times, common abbreviations, initialisms with dots, URLs and e-mail addresses. Other
languages get only the shared clean-up: espeak-ng reads their digits itself.
"""

from __future__ import annotations

import re
import unicodedata

from num2words import num2words

_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_MONTH_ABBR = {m[:3].lower(): m for m in _MONTHS} | {"sept": "September"}
_DAY_ABBR = {
    "mon": "Monday",
    "tue": "Tuesday",
    "tues": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "thur": "Thursday",
    "thurs": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}
# Abbreviations that end with a period; matched case-sensitively as whole words.
_ABBREVIATIONS = {
    "Mr.": "Mister",
    "Mrs.": "Missus",
    "Ms.": "Miz",
    "Dr.": "Doctor",
    "Prof.": "Professor",
    "Sr.": "Senior",
    "Jr.": "Junior",
    "Gen.": "General",
    "Gov.": "Governor",
    "Sen.": "Senator",
    "Rep.": "Representative",
    "Capt.": "Captain",
    "Lt.": "Lieutenant",
    "Col.": "Colonel",
    "Sgt.": "Sergeant",
    "Rev.": "Reverend",
    "Hon.": "Honorable",
    "Ave.": "Avenue",
    "Blvd.": "Boulevard",
    "Rd.": "Road",
    "Mt.": "Mount",
    "Ft.": "Fort",
    "Inc.": "Incorporated",
    "Ltd.": "Limited",
    "Co.": "Company",
    "Corp.": "Corporation",
    "Dept.": "Department",
    "Univ.": "University",
    "approx.": "approximately",
    "etc.": "et cetera",
    "vs.": "versus",
    "e.g.": "for example",
    "i.e.": "that is",
    "Est.": "Established",
    "Jan.": "January",
    "Feb.": "February",
    "Mar.": "March",
    "Apr.": "April",
    "Jun.": "June",
    "Jul.": "July",
    "Aug.": "August",
    "Sep.": "September",
    "Sept.": "September",
    "Oct.": "October",
    "Nov.": "November",
    "Dec.": "December",
}
# Abbreviations that are only read so before a number ("No. 5", but "he said No.").
_NUMBERED = {
    "No.": "number",
    "no.": "number",
    "Nos.": "numbers",
    "Vol.": "volume",
    "vol.": "volume",
    "Fig.": "figure",
    "fig.": "figure",
    "Ch.": "chapter",
    "pp.": "pages",
    "p.": "page",
}
_UNITS = {
    "km": ("kilometer", "kilometers"),
    "m": ("meter", "meters"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "kg": ("kilogram", "kilograms"),
    "g": ("gram", "grams"),
    "mg": ("milligram", "milligrams"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "ft": ("foot", "feet"),
    "in": ("inch", "inches"),
    "mi": ("mile", "miles"),
    "mph": ("mile per hour", "miles per hour"),
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "l": ("liter", "liters"),
    "ml": ("milliliter", "milliliters"),
    "s": ("second", "seconds"),
    "sec": ("second", "seconds"),
    "ms": ("millisecond", "milliseconds"),
    "min": ("minute", "minutes"),
    "h": ("hour", "hours"),
    "hr": ("hour", "hours"),
    "hrs": ("hour", "hours"),
    "kb": ("kilobyte", "kilobytes"),
    "mb": ("megabyte", "megabytes"),
    "gb": ("gigabyte", "gigabytes"),
    "tb": ("terabyte", "terabytes"),
    "hz": ("hertz", "hertz"),
    "khz": ("kilohertz", "kilohertz"),
    "mhz": ("megahertz", "megahertz"),
    "ghz": ("gigahertz", "gigahertz"),
    "kw": ("kilowatt", "kilowatts"),
    "w": ("watt", "watts"),
    "v": ("volt", "volts"),
    "°c": ("degree Celsius", "degrees Celsius"),
    "°f": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
    "%": ("percent", "percent"),
}
_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
    "¥": ("yen", "yen", "", ""),
    "₹": ("rupee", "rupees", "paisa", "paise"),
}
_SCALES = r"(?:thousand|million|billion|trillion|[kKmMbB]n?\b)"
_SCALE_WORDS = {"k": "thousand", "m": "million", "mn": "million", "b": "billion", "bn": "billion"}
_SYMBOLS = {
    "&": " and ",
    "+": " plus ",
    "=": " equals ",
    "@": " at ",
    "#": " number ",
    "×": " times ",
    "÷": " divided by ",
}
_FRACTIONS = {"½": "1/2", "⅓": "1/3", "⅔": "2/3", "¼": "1/4", "¾": "3/4", "⅛": "1/8"}

_NUM = r"\d{1,3}(?:,\d{3})+|\d+"


def clean(text: str) -> str:
    """Language-neutral clean-up: Unicode forms, quotes, dashes, whitespace."""
    text = unicodedata.normalize("NFKC", text)
    for frac, plain in _FRACTIONS.items():
        text = text.replace(frac, f" {plain}")
    text = text.replace("\u2018", "'").replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = text.replace("\u2013", " - ").replace("\u2026", "...").replace("\u00a0", " ")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    return text.strip()


def _int_words(n: int) -> str:
    # American reading: "one hundred twenty", not "one hundred and twenty"
    return num2words(n).replace(",", "").replace(" and ", " ")


def _number(token: str) -> str:
    """Cardinal words for "1,234", "3.14", "-7", ".5"."""
    token = token.replace(",", "")
    negative = token.startswith("-")
    token = token.lstrip("-+")
    if "." in token:
        whole, frac = token.split(".", 1)
        words = _int_words(int(whole or 0)) + " point " + " ".join(_DIGITS[d] for d in frac)
    else:
        words = _int_words(int(token))
    return ("minus " if negative else "") + words


_DIGITS = dict(zip("0123456789", "zero one two three four five six seven eight nine".split(), strict=False))


def year_words(year: int) -> str:
    """How English speakers read a year: 1999 -> nineteen ninety-nine, 2005 -> two thousand five."""
    if 2000 <= year <= 2009:
        return "two thousand" + (f" {_int_words(year % 10)}" if year % 10 else "")
    hi, lo = divmod(year, 100)
    if lo == 0:
        return f"{_int_words(hi)} hundred"
    if lo < 10:
        return f"{_int_words(hi)} oh {_int_words(lo)}"
    return f"{_int_words(hi)} {_int_words(lo)}"


def _ordinal(n: int) -> str:
    return num2words(n, to="ordinal").replace(",", "")


def _currency(m: re.Match) -> str:
    symbol, amount, scale = m.group("sym"), m.group("amt").replace(",", ""), m.group("scale")
    one, many, sub_one, sub_many = _CURRENCIES[symbol]
    if scale:
        scale_word = _SCALE_WORDS.get(scale.lower(), scale.lower())
        return f"{_number(amount)} {scale_word} {many}"
    whole, _, cents = amount.partition(".")
    whole_n = int(whole or 0)
    parts = []
    if whole_n or not cents:
        parts.append(f"{_int_words(whole_n)} {one if whole_n == 1 else many}")
    if cents and sub_one:
        c = int((cents + "0")[:2])
        if c:
            parts.append(f"{_int_words(c)} {sub_one if c == 1 else sub_many}")
    elif cents:
        parts = [f"{_number(amount)} {many}"]
    return " and ".join(parts)


_AMPM = r"(?P<ampm>[AaPp]\.[Mm]\.|[AaPp][Mm]\b)(?P<end>(?=\s*$|\s+[A-Z]))?"


def _time(m: re.Match) -> str:
    h, mins = int(m.group("h")), int(m.groupdict().get("min") or 0)
    ampm = (m.group("ampm") or "").lower().replace(".", "")
    if h > 24 or mins > 59:
        return m.group(0)
    words = _int_words(h)
    if mins == 0:
        words += "" if ampm else " o'clock"
    elif mins < 10:
        words += f" oh {_int_words(mins)}"
    else:
        words += f" {_int_words(mins)}"
    if ampm:
        words += " " + " ".join(ampm.upper())
        if m.group("ampm").endswith(".") and m.group("end") is not None:
            words += "."  # "p.m." ended the sentence too
    return words


def _date_iso(m: re.Match) -> str:
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return m.group(0)
    return f"{_MONTHS[mo - 1]} {_ordinal(d)}, {year_words(y)}"


def _date_us(m: re.Match) -> str:
    mo, d, y = int(m.group(1)), int(m.group(2)), m.group(3)
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return m.group(0)
    year = int(y) + (2000 if len(y) == 2 else 0)
    return f"{_MONTHS[mo - 1]} {_ordinal(d)}, {year_words(year)}"


def _month_day(m: re.Match) -> str:
    month = _MONTH_ABBR.get(m.group(1).lower().rstrip("."), m.group(1))
    out = f"{month} {_ordinal(int(m.group(2)))}"
    if m.group(3):
        out += f", {year_words(int(m.group(3)))}"
    return out


def _unit(m: re.Match) -> str:
    amount, unit = m.group(1), m.group(2)
    singular, plural = _UNITS[unit.lower()]
    return f"{_number(amount)} {singular if amount.replace(',', '') in ('1', '1.0') else plural}"


def _plain_number(m: re.Match) -> str:
    token = m.group(0)
    digits = token.replace(",", "")
    if re.fullmatch(r"\d{4}", digits) and "," not in token:
        n = int(digits)
        if 1100 <= n <= 1999 or 2010 <= n <= 2099:
            return year_words(n)
    return _number(token)


def _url(m: re.Match) -> str:
    url = re.sub(r"^https?://", "", m.group(0)).rstrip("/")
    url = re.sub(r"^www\.", "w w w dot ", url)
    return _spell_address(url)


def _email(m: re.Match) -> str:
    user, domain = m.group(0).split("@", 1)
    return f"{_spell_address(user)} at {_spell_address(domain)}"


def _spell_address(s: str) -> str:
    s = s.replace(".", " dot ").replace("/", " slash ").replace("-", " dash ").replace("_", " underscore ")
    s = s.replace(":", " colon ").replace("?", " question mark ").replace("=", " equals ")
    return re.sub(r"\s+", " ", s).strip()


def normalize_english(text: str) -> str:
    """Expand everything written into spoken English words (see module docstring)."""
    text = clean(text)
    text = re.sub(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b", _email, text)
    text = re.sub(r"\b(?:https?://|www\.)[^\s]+[^\s.,;:!?)\]'\"]", _url, text)
    text = re.sub(r"\b[a-z0-9-]+\.(?:com|org|net|io|dev|edu|gov|ai|co\.uk)\b", _url, text)
    for abbr, full in _ABBREVIATIONS.items():
        text = re.sub(rf"(?<![\w.]){re.escape(abbr)}(?=\s|$|[,;:!?)])", full, text)
    for abbr, full in _NUMBERED.items():
        text = re.sub(rf"(?<![\w.]){re.escape(abbr)}\s*(?=\d)", full + " ", text)
    text = re.sub(r"\bSt\.(?=\s+[A-Z])", "Saint", text)
    text = re.sub(r"\bSt\.", "Street", text)
    text = re.sub(rf"\b(?P<h>\d{{1,2}}):(?P<min>\d{{2}})(?:\s*{_AMPM})?", _time, text)
    text = re.sub(rf"\b(?P<h>\d{{1,2}})\s*{_AMPM}", _time, text)
    # initialisms with dots: U.S.A. -> U S A
    text = re.sub(r"\b(?:[A-Za-z]\.){2,}", lambda m: " ".join(m.group(0).replace(".", "")) + " ", text)
    text = re.sub(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", _date_iso, text)
    text = re.sub(r"\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b", _date_us, text)
    months = "|".join(list(_MONTHS) + [m.capitalize() + r"\.?" for m in _MONTH_ABBR])
    text = re.sub(rf"\b({months})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}}))?", _month_day, text)
    cur = re.escape("".join(_CURRENCIES))
    text = re.sub(rf"(?P<sym>[{cur}])\s?(?P<amt>(?:{_NUM})(?:\.\d+)?)(?:\s?(?P<scale>{_SCALES}))?", _currency, text)
    text = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", lambda m: _ordinal(int(m.group(1))), text)
    text = re.sub(r"(?:'|\b)(\d{2}|\d{4})'?s\b", _decade, text)
    text = re.sub(r"\b\d+(?:\.\d+){2,}\b", lambda m: " point ".join(_number(p) for p in m.group(0).split(".")), text)
    text = re.sub(r"(?<![\w.])(\d+)\s?-\s?(\d+)(?!\w|\.\d)", r"\1 to \2", text)
    text = re.sub(r"(?<![\w.])(\d+)/(\d+)(?![\w/])", _fraction, text)
    units = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
    text = re.sub(rf"((?:(?<![\w.])-)?(?<![\w.])(?:{_NUM})(?:\.\d+)?)\s?({units})(?!\w)", _unit_case, text, flags=re.I)
    text = re.sub(r"(?<![\w])-(?=\d)", "minus ", text)
    text = re.sub(rf"(?:{_NUM})(?:\.\d+)?|\.\d+", _plain_number, text)
    for sym, word in _SYMBOLS.items():
        text = text.replace(sym, word)
    text = re.sub(r"\s+-\s+", ", ", text)  # a spaced hyphen is a pause, not the word "dash"
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    return re.sub(r"[ \t]+", " ", text).strip()


def _decade(m: re.Match) -> str:
    """1990s -> nineteen nineties, '80s / 80s -> eighties."""
    digits = m.group(1)
    words = year_words(int(digits)) if len(digits) == 4 else _int_words(int(digits))
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def _unit_case(m: re.Match) -> str:
    unit = m.group(2)
    # single-letter units only when they cannot be an ordinary word ("5 m" yes, "I have 5 in" no)
    if (
        unit.lower() in ("in", "m", "s", "h", "l", "g", "v", "w")
        and unit != unit.lower()
        and unit not in ("V", "W", "L")
    ):
        return m.group(0)
    if unit == "in":
        return m.group(0)
    return _unit(m)


def _fraction(m: re.Match) -> str:
    num, den = int(m.group(1)), int(m.group(2))
    if den == 0 or den > 100:
        return m.group(0)
    if den == 2:
        return f"{_int_words(num)} {'half' if num == 1 else 'halves'}"
    if den == 4:
        return f"{_int_words(num)} {'quarter' if num == 1 else 'quarters'}"
    ordinal = _ordinal(den)
    return f"{_int_words(num)} {ordinal if num == 1 else ordinal + 's'}"
