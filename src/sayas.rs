//! Say-as: typed values → the recorded fragments that speak them, with the grammar of
//! English, Russian and Ukrainian.
//!
//! Pure functions, no I/O. Each returns fragment names relative to `audio/<lang>/`
//! (`digits/20`, `money/rub-many`, …) in the order they are played. Gendered forms follow
//! the Asterisk sound sets' naming: `digits/1f`, `digits/2f` are feminine («одна», «две» /
//! «дві»), `digits/1n` is neuter («одно» / «одне»); the neuter and masculine `2` are the
//! same word. The grammar:
//!
//! - **en** — "one thousand two hundred thirty four" (no "and" inside numbers, US style),
//!   "twenty-one dollars and five cents", "November twenty-third, twenty twenty-six",
//!   12-hour times ("eleven fifty-nine p m", "ten o'clock a m"). Plural: one / other.
//! - **ru**, **uk** — numbers agree with the noun that follows: masculine, feminine or neuter
//!   `1`/`2` (`один`/`одна`/`одно`, `два`/`две`/`дві`), thousands are feminine (`одна тысяча`,
//!   `две тысячи`, `пять тысяч`), millions masculine; nouns take the one / few / many form
//!   (`1 рубль`, `2 рубля`, `5 рублей`, `11 рублей`, `21 рубль`). Dates are spoken in the
//!   genitive, as after «до» / «с» or as a date of an event: «двадцать третьего ноября
//!   две тысячи двадцать шестого года». Times are 24-hour with units: «двадцать три часа
//!   пятьдесят девять минут», «двадцять три години».
//!
//! Deliberately not here: reading call data (the caller passes parsed numbers; the
//! `parse_*` helpers accept the formats the scenario language documents), deciding what to
//! do with a value that cannot be spoken (the prompt renderer falls back to digits and
//! logs), and finding the files (the linter checks [`fragments`] against the prompt cache).
//! Numbers are integers with |n| < 10⁹; larger values are [`SayError::OutOfRange`].
//!
//! It uses no other module of the crate: the scenario compiler checks literal values with
//! the `parse_*` helpers, the linter lists [`fragments`], and the dialogue speaks call data
//! with it, so it sits below both `scenario` and `dialogue`.

use std::fmt;

/// Languages with a say-as grammar.
pub const LANGUAGES: [&str; 3] = ["en", "ru", "uk"];

/// Currencies money items can speak (ISO 4217 codes).
pub const CURRENCIES: [&str; 4] = ["RUB", "UAH", "USD", "EUR"];

/// Largest absolute value [`number`] speaks.
pub const MAX_NUMBER: u64 = 999_999_999;

/// Grammatical gender of the counted noun (ru, uk; ignored in en).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Gender {
    #[default]
    Masculine,
    Feminine,
    /// «одно место» / «одне місце»; 2 is «два» as in the masculine.
    Neuter,
}

/// CLDR plural category of a count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plural {
    One,
    Few,
    Many,
    Other,
}

impl Plural {
    pub fn as_str(self) -> &'static str {
        match self {
            Plural::One => "one",
            Plural::Few => "few",
            Plural::Many => "many",
            Plural::Other => "other",
        }
    }
}

/// Why a value cannot be spoken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SayError {
    /// No say-as grammar for this language.
    Language(String),
    /// The value is outside what the grammar covers (|n| ≥ 10⁹, a year outside 1000–2999, …).
    OutOfRange(String),
    /// The value does not parse as the type (`"12,5"` as money, `"2026-13-01"` as a date).
    Invalid(String),
    /// A currency that is not in [`CURRENCIES`].
    Currency(String),
}

impl fmt::Display for SayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SayError::Language(l) => write!(f, "no say-as grammar for language `{l}`"),
            SayError::OutOfRange(v) => write!(f, "`{v}` is out of the range that can be spoken"),
            SayError::Invalid(v) => write!(f, "`{v}` is not a valid value"),
            SayError::Currency(c) => write!(
                f,
                "unknown currency `{c}` (known: {})",
                CURRENCIES.join(", ")
            ),
        }
    }
}

fn check_lang(lang: &str) -> Result<(), SayError> {
    if LANGUAGES.contains(&lang) {
        Ok(())
    } else {
        Err(SayError::Language(lang.to_string()))
    }
}

/// The plural category of `n` in `lang` (en: one/other; ru, uk: one/few/many).
pub fn plural(lang: &str, n: u64) -> Plural {
    match lang {
        "ru" | "uk" => {
            let (d10, d100) = (n % 10, n % 100);
            if (11..=14).contains(&d100) {
                Plural::Many
            } else if d10 == 1 {
                Plural::One
            } else if (2..=4).contains(&d10) {
                Plural::Few
            } else {
                Plural::Many
            }
        }
        _ => {
            if n == 1 {
                Plural::One
            } else {
                Plural::Other
            }
        }
    }
}

fn d(name: impl fmt::Display) -> String {
    format!("digits/{name}")
}

/// Speaks 1..=999 (en).
fn en_triad(n: u64, out: &mut Vec<String>) {
    let (h, r) = (n / 100, n % 100);
    if h > 0 {
        out.push(d(h));
        out.push(d("hundred"));
    }
    en_below_100(r, out);
}

fn en_below_100(r: u64, out: &mut Vec<String>) {
    if r == 0 {
        return;
    }
    if r <= 20 {
        out.push(d(r));
    } else {
        out.push(d(r / 10 * 10));
        if !r.is_multiple_of(10) {
            out.push(d(r % 10));
        }
    }
}

/// Speaks 1..=999 (ru, uk) with the gender of the counted noun.
fn slavic_triad(n: u64, gender: Gender, out: &mut Vec<String>) {
    let (h, r) = (n / 100, n % 100);
    match h {
        0 => {}
        1 => out.push(d("hundred")),
        _ => out.push(d(h * 100)),
    }
    if r == 0 {
        return;
    }
    let u = if r < 20 {
        r
    } else {
        out.push(d(r / 10 * 10));
        r % 10
    };
    match (u, gender) {
        (0, _) => {}
        (1, Gender::Feminine) => out.push(d("1f")),
        (2, Gender::Feminine) => out.push(d("2f")),
        (1, Gender::Neuter) => out.push(d("1n")),
        (u, _) => out.push(d(u)),
    }
}

/// The fragment of a "thousand"/"million" word in the form `n` needs.
fn scale_word(lang: &str, word: &str, n: u64) -> String {
    match plural(lang, n) {
        Plural::One | Plural::Other => d(word),
        Plural::Few => d(format!("{word}-few")),
        Plural::Many => d(format!("{word}-many")),
    }
}

/// A cardinal number. In ru/uk `gender` is the gender of the noun that follows.
pub fn number(lang: &str, n: i64, gender: Gender) -> Result<Vec<String>, SayError> {
    check_lang(lang)?;
    let abs = n.unsigned_abs();
    if abs > MAX_NUMBER {
        return Err(SayError::OutOfRange(n.to_string()));
    }
    let mut out = Vec::new();
    if n < 0 {
        out.push(d("minus"));
    }
    if abs == 0 {
        out.push(d(0));
        return Ok(out);
    }
    let (millions, thousands, rest) = (abs / 1_000_000, abs / 1000 % 1000, abs % 1000);
    if lang == "en" {
        if millions > 0 {
            en_triad(millions, &mut out);
            out.push(d("million"));
        }
        if thousands > 0 {
            en_triad(thousands, &mut out);
            out.push(d("thousand"));
        }
        en_triad(rest, &mut out);
        return Ok(out);
    }
    if millions > 0 {
        if millions > 1 {
            slavic_triad(millions, Gender::Masculine, &mut out);
        }
        out.push(scale_word(lang, "million", millions));
    }
    if thousands > 0 {
        // «тысяча», not «одна тысяча», for exactly one thousand; «двадцать одна тысяча».
        if thousands > 1 {
            slavic_triad(thousands, Gender::Feminine, &mut out);
        }
        out.push(scale_word(lang, "thousand", thousands));
    }
    slavic_triad(rest, gender, &mut out);
    Ok(out)
}

/// The noun of a currency: (major unit gender, minor unit gender) in ru/uk.
fn currency_genders(lang: &str, currency: &str) -> (Gender, Gender) {
    match (lang, currency) {
        ("ru" | "uk", "UAH") => (Gender::Feminine, Gender::Feminine),
        (_, "RUB") => (Gender::Masculine, Gender::Feminine),
        ("uk", _) => (Gender::Masculine, Gender::Masculine),
        _ => (Gender::Masculine, Gender::Masculine),
    }
}

/// Fragment for `count` of a currency's major (`minor = false`) or minor unit.
fn currency_word(lang: &str, currency: &str, minor: bool, count: u64) -> String {
    let code = currency.to_ascii_lowercase();
    let unit = if minor {
        format!("{code}-cents")
    } else {
        code.clone()
    };
    // The euro does not decline in ru/uk: one word for every count.
    if !minor && code == "eur" && lang != "en" {
        return "money/eur".to_string();
    }
    // en "dollars" is the human recording digits/dollars.
    let form = plural(lang, count);
    if lang == "en" && code == "usd" && !minor && form == Plural::Other {
        return d("dollars");
    }
    format!("money/{unit}-{}", form.as_str())
}

/// A money amount: `major` units and `minor` hundredths (`minor < 100`). Zero minor units
/// are not spoken; zero major units are not spoken when there are minor units.
pub fn money(
    lang: &str,
    negative: bool,
    major: u64,
    minor: u32,
    currency: &str,
) -> Result<Vec<String>, SayError> {
    check_lang(lang)?;
    let currency = currency.to_ascii_uppercase();
    if !CURRENCIES.contains(&currency.as_str()) {
        return Err(SayError::Currency(currency));
    }
    if major > MAX_NUMBER || minor > 99 {
        return Err(SayError::OutOfRange(format!("{major}.{minor:02}")));
    }
    let (g_major, g_minor) = currency_genders(lang, &currency);
    let mut out = Vec::new();
    if negative && (major > 0 || minor > 0) {
        out.push(d("minus"));
    }
    let major_i = i64::try_from(major).map_err(|_| SayError::OutOfRange(major.to_string()))?;
    if major > 0 || minor == 0 {
        out.extend(number(lang, major_i, g_major)?);
        out.push(currency_word(lang, &currency, false, major));
    }
    if minor > 0 {
        if major > 0 && lang == "en" {
            out.push("vm-and".to_string());
        }
        out.extend(number(lang, i64::from(minor), g_minor)?);
        out.push(currency_word(lang, &currency, true, u64::from(minor)));
    }
    Ok(out)
}

/// Parses `1234`, `1234.5`, `1234.50`, `-3.05` (a `.` decimal point, at most two decimals,
/// no thousands separators) into (negative, major, minor).
pub fn parse_money(text: &str) -> Result<(bool, u64, u32), SayError> {
    let invalid = || SayError::Invalid(text.to_string());
    let t = text.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() || !int.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid());
    }
    if frac.len() > 2 || !frac.chars().all(|c| c.is_ascii_digit()) || t.ends_with('.') {
        return Err(invalid());
    }
    let major: u64 = int
        .parse()
        .map_err(|_| SayError::OutOfRange(text.to_string()))?;
    let minor: u32 = match frac.len() {
        0 => 0,
        1 => frac.parse::<u32>().map_err(|_| invalid())? * 10,
        _ => frac.parse().map_err(|_| invalid())?,
    };
    Ok((negative, major, minor))
}

/// Parses an integer (`42`, `-7`, `+3`).
pub fn parse_integer(text: &str) -> Result<i64, SayError> {
    let t = text.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(SayError::Invalid(text.to_string()));
    }
    t.parse()
        .map_err(|_| SayError::OutOfRange(text.to_string()))
}

/// A calendar date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// Parses `YYYY-MM-DD` (ISO 8601 calendar date; a trailing `THH:MM…` is ignored).
pub fn parse_date(text: &str) -> Result<Date, SayError> {
    let invalid = || SayError::Invalid(text.to_string());
    let t = text.trim();
    let t = t.split_once('T').map_or(t, |(date, _)| date);
    let mut parts = t.split('-');
    let (Some(y), Some(m), Some(dd), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    if y.len() != 4 || m.len() != 2 || dd.len() != 2 {
        return Err(invalid());
    }
    let num = |s: &str| -> Result<u32, SayError> {
        if s.chars().all(|c| c.is_ascii_digit()) {
            s.parse().map_err(|_| invalid())
        } else {
            Err(invalid())
        }
    };
    let (year, month, day) = (num(y)?, num(m)?, num(dd)?);
    let year = i32::try_from(year).map_err(|_| invalid())?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(invalid());
    }
    Ok(Date { year, month, day })
}

/// Parses `HH:MM` or `HH:MM:SS` (24-hour; seconds are not spoken).
pub fn parse_time(text: &str) -> Result<(u32, u32), SayError> {
    let invalid = || SayError::Invalid(text.to_string());
    let t = text.trim();
    let mut parts = t.split(':');
    let (Some(h), Some(m)) = (parts.next(), parts.next()) else {
        return Err(invalid());
    };
    let s = parts.next();
    if parts.next().is_some() {
        return Err(invalid());
    }
    let ok = |p: &str, max: u32| -> Result<u32, SayError> {
        if p.is_empty() || p.len() > 2 || !p.chars().all(|c| c.is_ascii_digit()) {
            return Err(invalid());
        }
        let v: u32 = p.parse().map_err(|_| invalid())?;
        if v > max { Err(invalid()) } else { Ok(v) }
    };
    if m.len() != 2 {
        return Err(invalid());
    }
    let (h, m) = (ok(h, 23)?, ok(m, 59)?);
    if let Some(s) = s {
        ok(s, 59)?;
    }
    Ok((h, m))
}

/// Day of the week, 0 = Sunday … 6 = Saturday (the numbering of the `digits/day-N` files).
pub fn weekday(date: Date) -> u32 {
    // Sakamoto's method.
    const T: [i32; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let month = date.month.clamp(1, 12);
    let mut y = date.year;
    if month < 3 {
        y -= 1;
    }
    let day = i32::try_from(date.day.min(31)).unwrap_or(1);
    let w = (y + y / 4 - y / 100 + y / 400 + T[(month - 1) as usize] + day).rem_euclid(7);
    w as u32
}

/// Options of a date item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DateStyle {
    /// Speak the year too.
    pub year: bool,
    /// Start with the day of the week.
    pub weekday: bool,
}

/// A genitive ordinal in ru/uk (`ordinal/N`: «первого», «двадцатого», «двухтысячного»):
/// 1..=99 as (tens cardinal +) ordinal.
fn slavic_ordinal_gen(n: u32, out: &mut Vec<String>) {
    if n <= 20 || n.is_multiple_of(10) {
        out.push(format!("ordinal/{n}"));
    } else {
        out.push(d(n / 10 * 10));
        out.push(format!("ordinal/{}", n % 10));
    }
}

fn en_ordinal(n: u32, out: &mut Vec<String>) {
    if n <= 20 || n.is_multiple_of(10) {
        out.push(d(format!("h-{n}")));
    } else {
        out.push(d(n / 10 * 10));
        out.push(d(format!("h-{}", n % 10)));
    }
}

fn en_year(y: u32, out: &mut Vec<String>) -> Result<(), SayError> {
    if !(1000..=2999).contains(&y) {
        return Err(SayError::OutOfRange(y.to_string()));
    }
    let (hi, lo) = (y / 100, y % 100);
    if y.is_multiple_of(1000) || (2001..=2009).contains(&y) {
        out.extend(number("en", i64::from(y), Gender::Masculine)?);
    } else {
        en_below_100(u64::from(hi), out);
        match lo {
            0 => out.push(d("hundred")),
            1..=9 => {
                out.push(d("oh"));
                out.push(d(lo));
            }
            _ => en_below_100(u64::from(lo), out),
        }
    }
    Ok(())
}

/// ru/uk year in the genitive: «две тысячи двадцать шестого года». Years 2000–2099.
fn slavic_year(y: u32, out: &mut Vec<String>) -> Result<(), SayError> {
    if !(2000..=2099).contains(&y) {
        return Err(SayError::OutOfRange(y.to_string()));
    }
    if y == 2000 {
        out.push("ordinal/2000".to_string());
    } else {
        out.push(d("2f"));
        out.push(d("thousand-few"));
        slavic_ordinal_gen(y - 2000, out);
    }
    out.push("date/year".to_string());
    Ok(())
}

/// An ordinal 1-99: en "fifteenth", "twenty-first" (`digits/h-N`); ru/uk the genitive
/// masculine/neuter «пятнадцатого», «двадцать первого», «п'ятнадцятого» (`ordinal/N`) —
/// the case of a day in a date («пятнадцатого марта») and after «до» / «с» / «з», and the
/// only case the Russian and Ukrainian sets record.
///
/// English goes up to 39: the English set records "first" … "twentieth" and "thirtieth"
/// only (a day of the month, the use it is for, needs no more).
pub fn ordinal(lang: &str, n: u32) -> Result<Vec<String>, SayError> {
    check_lang(lang)?;
    let max = if lang == "en" { 39 } else { 99 };
    if !(1..=max).contains(&n) {
        return Err(SayError::OutOfRange(n.to_string()));
    }
    let mut out = Vec::new();
    if lang == "en" {
        en_ordinal(n, &mut out);
    } else {
        slavic_ordinal_gen(n, &mut out);
    }
    Ok(out)
}

/// A date: en "Monday, November twenty-third, twenty twenty-six"; ru/uk «понедельник,
/// двадцать третьего ноября две тысячи двадцать шестого года».
pub fn date(lang: &str, date: Date, style: DateStyle) -> Result<Vec<String>, SayError> {
    check_lang(lang)?;
    if !(1..=12).contains(&date.month) || date.day == 0 || date.day > 31 {
        return Err(SayError::Invalid(format!(
            "{}-{:02}-{:02}",
            date.year, date.month, date.day
        )));
    }
    let year = u32::try_from(date.year).map_err(|_| SayError::OutOfRange(date.year.to_string()))?;
    let mut out = Vec::new();
    if style.weekday {
        out.push(d(format!("day-{}", weekday(date))));
    }
    if lang == "en" {
        out.push(d(format!("mon-{}", date.month - 1)));
        en_ordinal(date.day, &mut out);
        if style.year {
            en_year(year, &mut out)?;
        }
    } else {
        slavic_ordinal_gen(date.day, &mut out);
        out.push(format!("date/month-{}", date.month));
        if style.year {
            slavic_year(year, &mut out)?;
        }
    }
    Ok(out)
}

/// A time of day (24-hour input): en "eleven fifty-nine p m", "ten o'clock a m",
/// "nine oh five a m"; ru/uk «двадцать три часа пятьдесят девять минут», «девять часов».
pub fn time(lang: &str, hour: u32, minute: u32) -> Result<Vec<String>, SayError> {
    check_lang(lang)?;
    if hour > 23 || minute > 59 {
        return Err(SayError::Invalid(format!("{hour}:{minute:02}")));
    }
    let mut out = Vec::new();
    if lang == "en" {
        let h12 = match hour % 12 {
            0 => 12,
            h => h,
        };
        en_below_100(u64::from(h12), &mut out);
        match minute {
            0 => out.push(d("oclock")),
            1..=9 => {
                out.push(d("oh"));
                out.push(d(minute));
            }
            m => en_below_100(u64::from(m), &mut out),
        }
        out.push(d(if hour < 12 { "a-m" } else { "p-m" }));
        return Ok(out);
    }
    // ru «час» is masculine, uk «година» feminine; «минута» / «хвилина» feminine.
    let hour_gender = if lang == "uk" {
        Gender::Feminine
    } else {
        Gender::Masculine
    };
    out.extend(number(lang, i64::from(hour), hour_gender)?);
    out.push(format!(
        "time/hour-{}",
        plural(lang, u64::from(hour)).as_str()
    ));
    if minute > 0 {
        out.extend(number(lang, i64::from(minute), Gender::Feminine)?);
        out.push(format!(
            "time/minute-{}",
            plural(lang, u64::from(minute)).as_str()
        ));
    }
    Ok(out)
}

/// The kinds of say-as item, for [`fragments`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SayKind {
    Digits,
    Number,
    /// 1-99 (see [`ordinal`]).
    Ordinal,
    Money,
    Date {
        year: bool,
        weekday: bool,
    },
    Time,
}

/// Every fragment a say-as item of `kind` may need in `lang` (for `money`, in `currency`;
/// `None` = every supported currency). The linter checks these exist. Empty for a
/// language without a grammar.
pub fn fragments(kind: SayKind, lang: &str, currency: Option<&str>) -> Vec<String> {
    if !LANGUAGES.contains(&lang) {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    let numbers = |out: &mut Vec<String>| {
        out.extend((0..=20).map(d));
        out.extend((3..=9).map(|t| d(t * 10)));
        out.extend([d("hundred"), d("thousand"), d("million"), d("minus")]);
        if lang != "en" {
            out.extend((2..=9).map(|h| d(h * 100)));
            out.extend(["1f", "2f", "1n"].map(d));
            for w in ["thousand", "million"] {
                out.push(d(format!("{w}-few")));
                out.push(d(format!("{w}-many")));
            }
        }
    };
    match kind {
        SayKind::Digits => out.extend((0..=9).map(d)),
        SayKind::Number => numbers(&mut out),
        SayKind::Ordinal => {
            if lang == "en" {
                out.extend((1..=20).map(|n| d(format!("h-{n}"))));
                out.extend([d("h-30"), d(20), d(30)]);
            } else {
                out.extend((1..=20).map(|n| format!("ordinal/{n}")));
                out.extend((3..=9).map(|t| format!("ordinal/{}", t * 10)));
                out.extend((2..=9).map(|t| d(t * 10)));
            }
        }
        SayKind::Money => {
            numbers(&mut out);
            if lang == "en" {
                out.push("vm-and".to_string());
            }
            let currencies: Vec<&str> = match currency {
                Some(c) => vec![c],
                None => CURRENCIES.to_vec(),
            };
            let counts: &[u64] = if lang == "en" { &[1, 2] } else { &[1, 2, 5] };
            for c in currencies {
                for &n in counts {
                    out.push(currency_word(lang, c, false, n));
                    out.push(currency_word(lang, c, true, n));
                }
            }
        }
        SayKind::Date { year, weekday } => {
            if weekday {
                out.extend((0..7).map(|w| d(format!("day-{w}"))));
            }
            if lang == "en" {
                out.extend((0..12).map(|m| d(format!("mon-{m}"))));
                out.extend((1..=20).map(|n| d(format!("h-{n}"))));
                out.extend([d("20"), d("30"), d("h-30")]);
                if year {
                    numbers(&mut out);
                    out.push(d("oh"));
                }
            } else {
                out.extend((1..=12).map(|m| format!("date/month-{m}")));
                out.extend((1..=20).map(|n| format!("ordinal/{n}")));
                out.extend([d("20"), d("30"), "ordinal/30".to_string()]);
                if year {
                    out.extend((4..=9).map(|t| format!("ordinal/{}", t * 10)));
                    out.extend((2..=9).map(|t| d(t * 10)));
                    out.extend([
                        "ordinal/2000".to_string(),
                        "date/year".to_string(),
                        d("2f"),
                        d("thousand-few"),
                    ]);
                }
            }
        }
        SayKind::Time => {
            if lang == "en" {
                out.extend((0..=20).map(d));
                out.extend([
                    d(30),
                    d(40),
                    d(50),
                    d("oclock"),
                    d("oh"),
                    d("a-m"),
                    d("p-m"),
                ]);
            } else {
                out.extend((0..=20).map(d));
                out.extend([d(30), d(40), d(50), d("1f"), d("2f")]);
                for f in ["one", "few", "many"] {
                    out.push(format!("time/hour-{f}"));
                    out.push(format!("time/minute-{f}"));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(lang: &str, v: i64, g: Gender) -> String {
        number(lang, v, g)
            .unwrap()
            .iter()
            .map(|f| f.trim_start_matches("digits/"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn ordinals_in_three_languages() {
        let o = |lang: &str, n: u32| ordinal(lang, n).unwrap().join(" ");
        assert_eq!(o("en", 15), "digits/h-15");
        assert_eq!(o("en", 21), "digits/20 digits/h-1");
        assert_eq!(o("en", 30), "digits/h-30");
        assert_eq!(o("ru", 15), "ordinal/15");
        assert_eq!(o("ru", 21), "digits/20 ordinal/1");
        assert_eq!(o("uk", 42), "digits/40 ordinal/2");
        assert!(ordinal("en", 40).is_err());
        assert!(ordinal("ru", 0).is_err());
        assert!(ordinal("ru", 100).is_err());
        for lang in LANGUAGES {
            let all = fragments(SayKind::Ordinal, lang, None);
            let max = if lang == "en" { 39 } else { 99 };
            for n in 1..=max {
                for f in ordinal(lang, n).unwrap() {
                    assert!(all.contains(&f), "{lang} {n}: {f} not in the fragment list");
                }
            }
        }
    }

    #[test]
    fn english_numbers() {
        let m = Gender::Masculine;
        for (v, want) in [
            (0, "0"),
            (7, "7"),
            (15, "15"),
            (20, "20"),
            (21, "20 1"),
            (99, "90 9"),
            (100, "1 hundred"),
            (105, "1 hundred 5"),
            (1200, "1 thousand 2 hundred"),
            (1234, "1 thousand 2 hundred 30 4"),
            (20_000, "20 thousand"),
            (1_000_001, "1 million 1"),
            (
                999_999_999,
                "9 hundred 90 9 million 9 hundred 90 9 thousand 9 hundred 90 9",
            ),
            (-3, "minus 3"),
        ] {
            assert_eq!(n("en", v, m), want, "{v}");
        }
        assert!(matches!(
            number("en", 1_000_000_000, m),
            Err(SayError::OutOfRange(_))
        ));
    }

    #[test]
    fn russian_numbers_agree_in_gender_and_number() {
        let (m, f, n_) = (Gender::Masculine, Gender::Feminine, Gender::Neuter);
        for (v, g, want) in [
            (1, n_, "1n"),
            (2, n_, "2"),
            (31, n_, "30 1n"),
            (101_001, n_, "hundred 1f thousand 1n"),
            (1, m, "1"),
            (1, f, "1f"),
            (2, f, "2f"),
            (21, f, "20 1f"),
            (22, m, "20 2"),
            (11, f, "11"),
            (100, m, "hundred"),
            (200, m, "200"),
            (342, f, "300 40 2f"),
            (1000, m, "thousand"),
            (1001, m, "thousand 1"),
            (2000, m, "2f thousand-few"),
            (5000, m, "5 thousand-many"),
            (11_000, m, "11 thousand-many"),
            (21_000, m, "20 1f thousand"),
            (22_500, m, "20 2f thousand-few 500"),
            (1_000_000, m, "million"),
            (2_000_000, m, "2 million-few"),
            (5_000_000, m, "5 million-many"),
            (21_000_000, m, "20 1 million"),
        ] {
            assert_eq!(n("ru", v, g), want, "{v} {g:?}");
            assert_eq!(n("uk", v, g), want, "uk {v} {g:?}");
        }
    }

    /// Whole phrases as a person says them, fragment by fragment (the words in the
    /// comments are what the recordings say).
    #[test]
    fn russian_and_ukrainian_phrases_in_full() {
        let money = |lang: &str, text: &str, cur: &str| money_s(lang, text, cur);
        let date_s = |lang: &str, text: &str, year: bool| {
            let style = DateStyle {
                year,
                weekday: false,
            };
            date(lang, parse_date(text).unwrap(), style)
                .unwrap()
                .join(" ")
        };
        // «двадцать одна тысяча двести рублей одна копейка»
        assert_eq!(
            money("ru", "21200.01", "RUB"),
            "digits/20 digits/1f digits/thousand digits/200 money/rub-many digits/1f money/rub-cents-one"
        );
        // «две тысячи два рубля две копейки»
        assert_eq!(
            money("ru", "2002.02", "RUB"),
            "digits/2f digits/thousand-few digits/2 money/rub-few digits/2f money/rub-cents-few"
        );
        // «сто одиннадцать рублей пятнадцать копеек»
        assert_eq!(
            money("ru", "111.15", "RUB"),
            "digits/hundred digits/11 money/rub-many digits/15 money/rub-cents-many"
        );
        // «одна гривна», «двадцать две гривны», «пять гривен» (ru); «дві гривні» (uk)
        assert_eq!(money("ru", "1", "UAH"), "digits/1f money/uah-one");
        assert_eq!(
            money("ru", "22", "UAH"),
            "digits/20 digits/2f money/uah-few"
        );
        assert_eq!(money("ru", "5", "UAH"), "digits/5 money/uah-many");
        assert_eq!(money("uk", "2", "UAH"), "digits/2f money/uah-few");
        // «одна гривня одна копійка», «три тисячі гривень» (uk)
        assert_eq!(
            money("uk", "1.01", "UAH"),
            "digits/1f money/uah-one digits/1f money/uah-cents-one"
        );
        assert_eq!(
            money("uk", "3000", "UAH"),
            "digits/3 digits/thousand-few money/uah-many"
        );
        // «два доллара», «пять долларов», «один доллар» (ru)
        assert_eq!(money("ru", "2", "USD"), "digits/2 money/usd-few");
        assert_eq!(money("ru", "5", "USD"), "digits/5 money/usd-many");
        assert_eq!(money("ru", "1", "USD"), "digits/1 money/usd-one");
        // «двадцать первого ноября», «двадцять першого листопада»
        assert_eq!(
            date_s("ru", "2026-11-21", false),
            "digits/20 ordinal/1 date/month-11"
        );
        assert_eq!(
            date_s("uk", "2026-11-21", false),
            "digits/20 ordinal/1 date/month-11"
        );
        // «второго января две тысячи тридцать первого года»
        assert_eq!(
            date_s("ru", "2031-01-02", true),
            "ordinal/2 date/month-1 digits/2f digits/thousand-few digits/30 ordinal/1 date/year"
        );
        // «одиннадцатого марта две тысячи одиннадцатого года»
        assert_eq!(
            date_s("ru", "2011-03-11", true),
            "ordinal/11 date/month-3 digits/2f digits/thousand-few ordinal/11 date/year"
        );
    }

    #[test]
    fn plural_categories() {
        let cases = [
            (0, Plural::Many),
            (1, Plural::One),
            (2, Plural::Few),
            (4, Plural::Few),
            (5, Plural::Many),
            (11, Plural::Many),
            (12, Plural::Many),
            (14, Plural::Many),
            (21, Plural::One),
            (22, Plural::Few),
            (25, Plural::Many),
            (101, Plural::One),
            (111, Plural::Many),
            (112, Plural::Many),
        ];
        for (v, want) in cases {
            assert_eq!(plural("ru", v), want, "{v}");
        }
        assert_eq!(plural("en", 1), Plural::One);
        assert_eq!(plural("en", 0), Plural::Other);
        assert_eq!(plural("en", 21), Plural::Other);
    }

    fn money_s(lang: &str, text: &str, cur: &str) -> String {
        let (neg, major, minor) = parse_money(text).unwrap();
        money(lang, neg, major, minor, cur).unwrap().join(" ")
    }

    #[test]
    fn money_in_three_languages() {
        for (lang, text, cur, want) in [
            ("ru", "1", "RUB", "digits/1 money/rub-one"),
            ("ru", "2", "RUB", "digits/2 money/rub-few"),
            ("ru", "5", "RUB", "digits/5 money/rub-many"),
            ("ru", "11", "RUB", "digits/11 money/rub-many"),
            ("ru", "21", "RUB", "digits/20 digits/1 money/rub-one"),
            (
                "ru",
                "1501.22",
                "RUB",
                "digits/thousand digits/500 digits/1 money/rub-one digits/20 digits/2f money/rub-cents-few",
            ),
            ("ru", "0.01", "RUB", "digits/1f money/rub-cents-one"),
            ("ru", "0", "RUB", "digits/0 money/rub-many"),
            ("ru", "2", "UAH", "digits/2f money/uah-few"),
            ("ru", "3", "EUR", "digits/3 money/eur"),
            ("uk", "1", "UAH", "digits/1f money/uah-one"),
            ("uk", "22", "UAH", "digits/20 digits/2f money/uah-few"),
            (
                "uk",
                "5.05",
                "UAH",
                "digits/5 money/uah-many digits/5 money/uah-cents-many",
            ),
            ("en", "1", "USD", "digits/1 money/usd-one"),
            (
                "en",
                "21.05",
                "USD",
                "digits/20 digits/1 digits/dollars vm-and digits/5 money/usd-cents-other",
            ),
            ("en", "0.01", "EUR", "digits/1 money/eur-cents-one"),
            (
                "en",
                "1200",
                "EUR",
                "digits/1 digits/thousand digits/2 digits/hundred money/eur-other",
            ),
            (
                "en",
                "-2.5",
                "RUB",
                "digits/minus digits/2 money/rub-other vm-and digits/50 money/rub-cents-other",
            ),
        ] {
            assert_eq!(money_s(lang, text, cur), want, "{lang} {text} {cur}");
        }
        assert!(matches!(
            money("en", false, 1, 0, "XYZ"),
            Err(SayError::Currency(_))
        ));
    }

    #[test]
    fn money_parsing() {
        assert_eq!(parse_money("12"), Ok((false, 12, 0)));
        assert_eq!(parse_money("12.5"), Ok((false, 12, 50)));
        assert_eq!(parse_money("12.05"), Ok((false, 12, 5)));
        assert_eq!(parse_money("-0.99"), Ok((true, 0, 99)));
        for bad in ["", "12,5", "1.234", "abc", "1.", ".5", "1 000"] {
            assert!(parse_money(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates() {
        let nov23 = parse_date("2026-11-23").unwrap();
        assert_eq!(weekday(nov23), 1, "23 Nov 2026 is a Monday");
        assert_eq!(weekday(parse_date("2000-01-01").unwrap()), 6);
        let style = DateStyle {
            year: true,
            weekday: true,
        };
        assert_eq!(
            date("en", nov23, style).unwrap().join(" "),
            "digits/day-1 digits/mon-10 digits/20 digits/h-3 digits/20 digits/20 digits/6"
        );
        assert_eq!(
            date("ru", nov23, style).unwrap().join(" "),
            "digits/day-1 digits/20 ordinal/3 date/month-11 digits/2f digits/thousand-few digits/20 ordinal/6 date/year"
        );
        let plain = DateStyle::default();
        for (text, want) in [
            ("2026-01-01", "ordinal/1 date/month-1"),
            ("2026-03-20", "ordinal/20 date/month-3"),
            ("2026-05-30", "ordinal/30 date/month-5"),
            ("2026-12-31", "digits/30 ordinal/1 date/month-12"),
        ] {
            assert_eq!(
                date("uk", parse_date(text).unwrap(), plain)
                    .unwrap()
                    .join(" "),
                want
            );
        }
        let years = DateStyle {
            year: true,
            weekday: false,
        };
        let en_year = |y: &str| {
            date("en", parse_date(&format!("{y}-01-02")).unwrap(), years)
                .unwrap()
                .into_iter()
                .skip(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(en_year("2000"), "digits/2 digits/thousand");
        assert_eq!(en_year("2005"), "digits/2 digits/thousand digits/5");
        assert_eq!(en_year("1999"), "digits/19 digits/90 digits/9");
        assert_eq!(en_year("1905"), "digits/19 digits/oh digits/5");
        assert_eq!(en_year("1900"), "digits/19 digits/hundred");
        let ru2000 = date("ru", parse_date("2000-02-29").unwrap(), years).unwrap();
        assert_eq!(
            ru2000.join(" "),
            "digits/20 ordinal/9 date/month-2 ordinal/2000 date/year"
        );
        assert!(date("ru", parse_date("1999-01-01").unwrap(), years).is_err());
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "26-01-01",
            "2026/01/01",
            "2025-02-29",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_date("2024-02-29T10:00:00Z"),
            Ok(Date {
                year: 2024,
                month: 2,
                day: 29
            })
        );
    }

    #[test]
    fn times() {
        let t = |lang: &str, s: &str| {
            let (h, m) = parse_time(s).unwrap();
            time(lang, h, m).unwrap().join(" ")
        };
        assert_eq!(t("en", "23:59"), "digits/11 digits/50 digits/9 digits/p-m");
        assert_eq!(t("en", "10:00"), "digits/10 digits/oclock digits/a-m");
        assert_eq!(t("en", "09:05"), "digits/9 digits/oh digits/5 digits/a-m");
        assert_eq!(t("en", "00:30"), "digits/12 digits/30 digits/a-m");
        assert_eq!(t("en", "12:15"), "digits/12 digits/15 digits/p-m");
        assert_eq!(
            t("ru", "23:59"),
            "digits/20 digits/3 time/hour-few digits/50 digits/9 time/minute-many"
        );
        assert_eq!(
            t("ru", "21:01"),
            "digits/20 digits/1 time/hour-one digits/1f time/minute-one"
        );
        assert_eq!(t("ru", "10:00"), "digits/10 time/hour-many");
        assert_eq!(t("ru", "00:00"), "digits/0 time/hour-many");
        assert_eq!(
            t("uk", "22:32"),
            "digits/20 digits/2f time/hour-few digits/30 digits/2f time/minute-few"
        );
        for bad in ["24:00", "12:60", "1200", "12:5", "a:b", "12:00:61"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_time("7:30:15"), Ok((7, 30)));
    }

    #[test]
    fn fragments_cover_every_rendering() {
        // Whatever a value renders to is in the fragment list the linter checks.
        for lang in LANGUAGES {
            let nums = fragments(SayKind::Number, lang, None);
            for v in [
                0, 1, 2, 5, 11, 21, 99, 100, 342, 1000, 2000, 21_000, 1_234_567, -5,
            ] {
                for g in [Gender::Masculine, Gender::Feminine] {
                    for f in number(lang, v, g).unwrap() {
                        assert!(nums.contains(&f), "{lang} {v}: {f}");
                    }
                }
            }
            let money_f = fragments(SayKind::Money, lang, None);
            for cur in CURRENCIES {
                for text in ["0", "1", "2", "5", "21.01", "1234.56", "0.02", "0.05"] {
                    let (neg, ma, mi) = parse_money(text).unwrap();
                    for f in money(lang, neg, ma, mi, cur).unwrap() {
                        assert!(money_f.contains(&f), "{lang} {text} {cur}: {f}");
                    }
                }
            }
            let style = DateStyle {
                year: true,
                weekday: true,
            };
            let date_f = fragments(
                SayKind::Date {
                    year: true,
                    weekday: true,
                },
                lang,
                None,
            );
            for text in [
                "2026-01-01",
                "2026-11-23",
                "2031-12-31",
                "2099-07-10",
                "2000-02-29",
                "2045-06-15",
            ] {
                for f in date(lang, parse_date(text).unwrap(), style).unwrap() {
                    assert!(date_f.contains(&f), "{lang} {text}: {f}");
                }
            }
            let time_f = fragments(SayKind::Time, lang, None);
            for h in 0..24 {
                for m in [0, 1, 5, 10, 21, 32, 45, 59] {
                    for f in time(lang, h, m).unwrap() {
                        assert!(time_f.contains(&f), "{lang} {h}:{m}: {f}");
                    }
                }
            }
        }
        assert!(fragments(SayKind::Number, "de", None).is_empty());
    }
}
