//! Built-in answer types "day of month" and "date": transcript → calendar day, for ru, uk
//! and en. Pure functions; the dialogue decides what to ask and what to do with the answer.
//!
//! - [`day_of_month`]: "the fifteenth", "15th", «пятнадцатого», «двадцать первого числа»,
//!   «п'ятнадцятого», "twenty-first" → 1–31.
//! - [`parse_date`]: a day said relative to `today` ("tomorrow", «послезавтра», «у
//!   п'ятницю»), or by day and month ("March 15th", «15 марта», «п'ятнадцятого березня»,
//!   "15.03", «15.03.2027»), or by day alone (this month, or next month when that day has
//!   passed). Dates without a year are the next such date on or after `today` (answers to a
//!   robot are about deliveries, appointments, payments: the future). A day that does not
//!   exist (the 31st of April) is `None`, never a guess.
//!
//! Numbers in words, ordinals included, come from [`super::numbers_to_digits`].

use jiff::civil::{Date, Weekday};

/// Month names, any case, by language: (stem, month). A word that starts with the stem
/// is the month («марта», «березня», "march", "mar").
const MONTHS: &[(&str, i8)] = &[
    // en (full names and three-letter abbreviations)
    ("jan", 1),
    ("feb", 2),
    ("mar", 3),
    ("apr", 4),
    ("may", 5),
    ("jun", 6),
    ("jul", 7),
    ("aug", 8),
    ("sep", 9),
    ("oct", 10),
    ("nov", 11),
    ("dec", 12),
    // ru: «январь», «января», …
    ("январ", 1),
    ("феврал", 2),
    ("март", 3),
    ("апрел", 4),
    ("ма", 5),
    ("июн", 6),
    ("июл", 7),
    ("август", 8),
    ("сентябр", 9),
    ("октябр", 10),
    ("ноябр", 11),
    ("декабр", 12),
    // uk: «січень», «січня», …
    ("січ", 1),
    ("лют", 2),
    ("берез", 3),
    ("квіт", 4),
    ("трав", 5),
    ("черв", 6),
    ("лип", 7),
    ("серп", 8),
    ("верес", 9),
    ("жовт", 10),
    ("листопад", 11),
    ("груд", 12),
];

/// Whole words for May in ru (the stem «ма» alone would catch too much).
const MAY_RU: &[&str] = &["май", "мая", "мае", "маю"];

/// The month a word names, if any.
pub fn month_of(word: &str) -> Option<i8> {
    if MAY_RU.contains(&word) {
        return Some(5);
    }
    MONTHS
        .iter()
        .filter(|(stem, _)| *stem != "ма")
        .find(|(stem, m)| {
            if stem.is_ascii() {
                // "mar", "march"; not "mark" or "marry".
                let full = [
                    "january",
                    "february",
                    "march",
                    "april",
                    "may",
                    "june",
                    "july",
                    "august",
                    "september",
                    "october",
                    "november",
                    "december",
                ][*m as usize - 1];
                word == *stem || word == full || (*m == 9 && word == "sept")
            } else {
                word.starts_with(stem) && word.chars().count() <= stem.chars().count() + 3
            }
        })
        .map(|&(_, m)| m)
}

/// Words for days relative to today: (word, days from today).
const RELATIVE: &[(&str, i64)] = &[
    ("today", 0),
    ("tonight", 0),
    ("tomorrow", 1),
    ("yesterday", -1),
    ("сегодня", 0),
    ("завтра", 1),
    ("послезавтра", 2),
    ("вчера", -1),
    ("сьогодні", 0),
    ("післязавтра", 2),
    ("вчора", -1),
];

/// Weekday names, any case («пятницу», «п'ятницю», "friday").
const WEEKDAYS: &[(&str, Weekday)] = &[
    ("monday", Weekday::Monday),
    ("tuesday", Weekday::Tuesday),
    ("wednesday", Weekday::Wednesday),
    ("thursday", Weekday::Thursday),
    ("friday", Weekday::Friday),
    ("saturday", Weekday::Saturday),
    ("sunday", Weekday::Sunday),
    ("понедельник", Weekday::Monday),
    ("вторник", Weekday::Tuesday),
    ("сред", Weekday::Wednesday),
    ("четверг", Weekday::Thursday),
    ("пятниц", Weekday::Friday),
    ("суббот", Weekday::Saturday),
    ("воскресень", Weekday::Sunday),
    ("понеділ", Weekday::Monday),
    ("вівтор", Weekday::Tuesday),
    ("серед", Weekday::Wednesday),
    ("четвер", Weekday::Thursday),
    ("пятниц", Weekday::Friday),
    ("субот", Weekday::Saturday),
    ("неділ", Weekday::Sunday),
];

fn weekday_of(word: &str) -> Option<Weekday> {
    let bare: String = word.chars().filter(|&c| c != '\'').collect();
    WEEKDAYS
        .iter()
        .find(|(stem, _)| {
            if stem.is_ascii() {
                bare == *stem
            } else {
                bare.starts_with(stem) && bare.chars().count() <= stem.chars().count() + 3
            }
        })
        .map(|&(_, d)| d)
}

/// The canonical words of a transcript: normalised, contractions expanded, numbers (and
/// ordinals) as digits.
fn words(text: &str, lang: &str) -> Vec<String> {
    let mut normalized = super::expand_contractions(&super::normalize(text));
    if lang == "uk" {
        // «другого» alone is "the second" in Ukrainian (in Russian it is "other's").
        normalized = normalized
            .split_whitespace()
            .map(|w| match w {
                // As the Russian ordinal, so that «двадцять другого» still combines.
                "другого" | "другому" | "другий" | "друге" | "друга" => {
                    "второго"
                }
                w => w,
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    super::numbers_to_digits(&normalized)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn small_number(w: &str) -> Option<u32> {
    if w.is_empty() || w.len() > 4 || !w.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    w.parse().ok()
}

/// The day of the month said: the one number from 1 to 31 in the transcript ("the
/// fifteenth", «пятнадцатого числа», "on the 21st"). `None` when there is no such number or
/// more than one (an unsure answer is asked again, not guessed).
pub fn day_of_month(text: &str, lang: &str) -> Option<u32> {
    let days: Vec<u32> = words(text, lang)
        .iter()
        .filter_map(|w| small_number(w))
        .filter(|n| (1..=31).contains(n))
        .collect();
    match days.as_slice() {
        [d] => Some(*d),
        _ => None,
    }
}

/// Words a caller says around a day or a date that carry no value of their own.
const FILLERS: &[&str] = &[
    // en
    "the",
    "on",
    "of",
    "a",
    "an",
    "day",
    "date",
    "please",
    "it",
    "is",
    "um",
    "uh",
    "er",
    "yes",
    "yeah",
    "i",
    "think",
    "would",
    "like",
    "that",
    "be",
    "for",
    "and",
    "so",
    "okay",
    "ok",
    "well",
    "let",
    "us",
    "say",
    "next",
    "this",
    "month",
    "at",
    "in",
    "will",
    "do",
    // ru
    "числа",
    "число",
    "числу",
    "на",
    "в",
    "во",
    "с",
    "со",
    "к",
    "ко",
    "до",
    "пожалуйста",
    "давайте",
    "давай",
    "мне",
    "думаю",
    "это",
    "да",
    "ну",
    "наверное",
    "лучше",
    "можно",
    "хочу",
    "года",
    "году",
    "следующий",
    "следующую",
    "следующее",
    "этот",
    "эту",
    "этого",
    "месяца",
    "день",
    // uk
    "у",
    "з",
    "зі",
    "будь",
    "ласка",
    "мені",
    "це",
    "так",
    "мабуть",
    "краще",
    "можна",
    "хочу",
    "року",
    "наступний",
    "наступну",
    "наступне",
    "цей",
    "цю",
    "цього",
    "місяця",
    "день",
];

/// The words of `text` that neither a day or date reading uses nor are fillers around one
/// ("the fifteenth please" has none; «5 нацяти» — Whisper's garbling of «п'ятнадцятий» —
/// has «нацяти»). The dialogue does not take a value read from a transcript with such
/// words without a read-back: the number may be a fragment of a longer one.
pub fn unexplained_words(text: &str, lang: &str) -> Vec<String> {
    words(text, lang)
        .into_iter()
        .filter(|w| {
            !w.chars().all(|c| c.is_ascii_digit())
                && !FILLERS.contains(&w.as_str())
                && month_of(w).is_none()
                && weekday_of(w).is_none()
                && !RELATIVE.iter().any(|(r, _)| r == w)
                && !matches!(w.as_str(), "day" | "after")
        })
        .collect()
}

/// The next date on or after `today` with this month and day (this year or the next).
fn next_with(today: Date, month: i8, day: i8) -> Option<Date> {
    for year in [today.year(), today.year() + 1] {
        if let Ok(d) = Date::new(year, month, day)
            && d >= today
        {
            return Some(d);
        }
    }
    None
}

/// The date a caller names, relative to `today` (see the module doc). `None` when no date
/// is named, when it names two, or when the day does not exist.
pub fn parse_date(text: &str, lang: &str, today: Date) -> Option<Date> {
    let w = words(text, lang);
    if w.is_empty() {
        return None;
    }
    // "the day after tomorrow".
    let joined = w.join(" ");
    if joined.contains("day after tomorrow") {
        return today.checked_add(jiff::Span::new().days(2)).ok();
    }
    let relative: Vec<i64> = w
        .iter()
        .filter_map(|x| RELATIVE.iter().find(|(r, _)| r == x).map(|&(_, d)| d))
        .collect();
    let weekdays: Vec<Weekday> = w.iter().filter_map(|x| weekday_of(x)).collect();
    let months: Vec<(usize, i8)> = w
        .iter()
        .enumerate()
        .filter_map(|(i, x)| month_of(x).map(|m| (i, m)))
        .collect();
    let numbers: Vec<(usize, u32)> = w
        .iter()
        .enumerate()
        .filter_map(|(i, x)| small_number(x).map(|n| (i, n)))
        .collect();
    // A year said in full ("2027", «две тысячи двадцать седьмого» → 2027).
    let year: Option<i16> = numbers
        .iter()
        .find(|&&(_, n)| (2000..=2100).contains(&n))
        .and_then(|&(_, n)| i16::try_from(n).ok());
    let numbers: Vec<(usize, u32)> = numbers.into_iter().filter(|&(_, n)| n <= 31).collect();
    let kinds = usize::from(!relative.is_empty())
        + usize::from(!weekdays.is_empty())
        + usize::from(!months.is_empty() || !numbers.is_empty());
    if kinds != 1 {
        return None;
    }
    if let [d] = relative.as_slice() {
        return today.checked_add(jiff::Span::new().days(*d)).ok();
    }
    if let [wd] = weekdays.as_slice() {
        let ahead = (i64::from(wd.to_monday_zero_offset())
            - i64::from(today.weekday().to_monday_zero_offset()))
        .rem_euclid(7);
        let ahead = if ahead == 0 { 7 } else { ahead };
        return today.checked_add(jiff::Span::new().days(ahead)).ok();
    }
    let (day, month) = match (months.as_slice(), numbers.as_slice()) {
        // "15 March", "March 15th", «пятнадцатого марта».
        ([(_, m)], [(_, d)]) => (*d, *m),
        // "15 03" (from "15.03" or «15/03»): day first; "03 15" only when it cannot be a
        // day and a month the other way.
        ([], [(_, a), (_, b)]) if (1..=12).contains(b) => (*a, *b as i8),
        ([], [(_, a), (_, b)]) if (1..=12).contains(a) && *b > 12 => (*b, *a as i8),
        // The day alone: this month, or the next when it has passed.
        ([], [(_, d)]) => {
            let day = i8::try_from(*d).ok()?;
            let this = Date::new(today.year(), today.month(), day).ok();
            if let Some(this) = this
                && this >= today
            {
                return Some(this);
            }
            let next = today
                .first_of_month()
                .checked_add(jiff::Span::new().months(1))
                .ok()?;
            return Date::new(next.year(), next.month(), day).ok();
        }
        _ => return None,
    };
    let day = i8::try_from(day).ok()?;
    if !(1..=12).contains(&month) {
        return None;
    }
    match year {
        Some(y) => Date::new(y, month, day).ok(),
        None => next_with(today, month, day),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_a_value_does_not_explain() {
        assert!(unexplained_words("the fifteenth please", "en").is_empty());
        assert!(unexplained_words("on the 21st of March", "en").is_empty());
        assert!(unexplained_words("двадцать первого числа", "ru").is_empty());
        assert!(unexplained_words("в пятницу", "ru").is_empty());
        assert!(unexplained_words("п'ятнадцятого березня", "uk").is_empty());
        assert!(unexplained_words("the day after tomorrow", "en").is_empty());
        assert_eq!(unexplained_words("5 нацяти", "uk"), ["нацяти"]);
        assert_eq!(unexplained_words("1 динальсатий", "uk"), ["динальсатий"]);
    }

    fn d(y: i16, m: i8, day: i8) -> Date {
        Date::new(y, m, day).unwrap()
    }

    #[test]
    fn days_of_the_month_in_three_languages() {
        for (text, lang, want) in [
            ("the fifteenth", "en", Some(15)),
            ("On the 21st, please", "en", Some(21)),
            ("twenty-first", "en", Some(21)),
            ("thirty first", "en", Some(31)),
            ("Пятнадцатого.", "ru", Some(15)),
            ("двадцать первого числа", "ru", Some(21)),
            ("первое", "ru", Some(1)),
            ("третьего", "ru", Some(3)),
            ("15-го", "ru", Some(15)),
            ("П'ятнадцятого", "uk", Some(15)),
            ("пятнадцятого", "uk", Some(15)),
            ("двадцять другого", "uk", Some(22)),
            ("третього", "uk", Some(3)),
            ("тридцятого", "uk", Some(30)),
            ("другого", "uk", Some(2)),
            ("другого", "ru", None),
            ("sometime next week", "en", None),
            ("the 15th or the 16th", "en", None),
            ("the fortieth", "en", None),
        ] {
            assert_eq!(day_of_month(text, lang), want, "{text}");
        }
    }

    #[test]
    fn dates_relative_to_today() {
        let today = d(2026, 11, 22); // a Sunday
        for (text, lang, want) in [
            ("today", "en", Some(d(2026, 11, 22))),
            ("Tomorrow.", "en", Some(d(2026, 11, 23))),
            ("the day after tomorrow", "en", Some(d(2026, 11, 24))),
            ("послезавтра", "ru", Some(d(2026, 11, 24))),
            ("у п'ятницю", "uk", Some(d(2026, 11, 27))),
            ("в пятницу", "ru", Some(d(2026, 11, 27))),
            ("on Sunday", "en", Some(d(2026, 11, 29))),
            ("March 15th", "en", Some(d(2027, 3, 15))),
            ("пятнадцатого марта", "ru", Some(d(2027, 3, 15))),
            ("п'ятнадцятого березня", "uk", Some(d(2026 + 1, 3, 15))),
            ("двадцать пятого ноября", "ru", Some(d(2026, 11, 25))),
            ("третього грудня", "uk", Some(d(2026, 12, 3))),
            ("1 мая", "ru", Some(d(2027, 5, 1))),
            ("15.03", "ru", Some(d(2027, 3, 15))),
            ("15.03.2028", "ru", Some(d(2028, 3, 15))),
            ("the 25th", "en", Some(d(2026, 11, 25))),
            ("the 5th", "en", Some(d(2026, 12, 5))),
            ("тридцать первого", "ru", Some(d(2026, 12, 31))),
            ("April 31st", "en", None),
            ("tomorrow or on Friday", "en", None),
            ("I don't know", "en", None),
            ("", "en", None),
        ] {
            assert_eq!(parse_date(text, lang, today), want, "{text}");
        }
    }

    #[test]
    fn months_are_not_ordinary_words() {
        assert_eq!(month_of("mark"), None);
        assert_eq!(month_of("марта"), Some(3));
        assert_eq!(month_of("мама"), None);
        assert_eq!(month_of("мая"), Some(5));
        assert_eq!(month_of("березня"), Some(3));
        assert_eq!(month_of("sept"), Some(9));
    }
}
