//! Numbers, money, dates and times as the bundled prompt set speaks them in Russian and
//! Ukrainian: the exact fragments, and exactly which of them are still synthetic
//! placeholders (everything else is a human recording, audio/SOURCES.tsv).

use std::path::PathBuf;

use ivrflow::media::prompts::PromptCache;
use ivrflow::sayas::{self, DateStyle, Gender};

fn cache() -> PromptCache {
    PromptCache::load_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("audio")).unwrap()
}

/// (fragments, the ones that are placeholders). Every fragment must exist.
fn spoken(cache: &PromptCache, lang: &str, fragments: Vec<String>) -> (String, Vec<String>) {
    for f in &fragments {
        assert!(cache.get(lang, f).is_some(), "{lang}/{f} is missing");
    }
    let synthetic = fragments
        .iter()
        .filter(|f| cache.is_synthetic(lang, f))
        .cloned()
        .collect();
    (fragments.join(" "), synthetic)
}

fn money(cache: &PromptCache, lang: &str, text: &str, cur: &str) -> (String, Vec<String>) {
    let (neg, major, minor) = sayas::parse_money(text).unwrap();
    spoken(
        cache,
        lang,
        sayas::money(lang, neg, major, minor, cur).unwrap(),
    )
}

fn date(cache: &PromptCache, lang: &str, text: &str, year: bool) -> (String, Vec<String>) {
    let style = DateStyle {
        year,
        weekday: false,
    };
    let d = sayas::parse_date(text).unwrap();
    spoken(cache, lang, sayas::date(lang, d, style).unwrap())
}

fn time(cache: &PromptCache, lang: &str, text: &str) -> (String, Vec<String>) {
    let (h, m) = sayas::parse_time(text).unwrap();
    spoken(cache, lang, sayas::time(lang, h, m).unwrap())
}

fn number(cache: &PromptCache, lang: &str, n: i64, g: Gender) -> (String, Vec<String>) {
    spoken(cache, lang, sayas::number(lang, n, g).unwrap())
}

fn none() -> Vec<String> {
    Vec::new()
}

fn only(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn russian_is_human_with_its_case_forms() {
    let c = cache();
    // «тысяча четыреста девяносто девять рублей девяносто копеек»
    assert_eq!(
        money(&c, "ru", "1499.90", "RUB"),
        (
            "digits/thousand digits/400 digits/90 digits/9 money/rub-many digits/90 money/rub-cents-many"
                .into(),
            none()
        )
    );
    // «двадцать одна тысяча двести один рубль одна копейка»: feminine «одна» for
    // thousands and kopecks, «рубль» after «один».
    assert_eq!(
        money(&c, "ru", "21201.01", "RUB"),
        (
            "digits/20 digits/1f digits/thousand digits/200 digits/1 money/rub-one digits/1f money/rub-cents-one"
                .into(),
            none()
        )
    );
    // «две тысячи два рубля две копейки»
    assert_eq!(
        money(&c, "ru", "2002.02", "RUB"),
        (
            "digits/2f digits/thousand-few digits/2 money/rub-few digits/2f money/rub-cents-few"
                .into(),
            none()
        )
    );
    // «пять миллионов», «два миллиона»
    assert_eq!(
        number(&c, "ru", 5_000_000, Gender::Masculine),
        ("digits/5 digits/million-many".into(), none())
    );
    assert_eq!(
        number(&c, "ru", 2_000_000, Gender::Masculine),
        ("digits/2 digits/million-few".into(), none())
    );
    // «одно» (neuter)
    assert_eq!(
        number(&c, "ru", 1, Gender::Neuter),
        ("digits/1n".into(), none())
    );
    // «пять долларов», «один доллар», «три евро» — and «два доллара» still to record.
    assert_eq!(
        money(&c, "ru", "5", "USD"),
        ("digits/5 money/usd-many".into(), none())
    );
    assert_eq!(
        money(&c, "ru", "1", "USD"),
        ("digits/1 money/usd-one".into(), none())
    );
    assert_eq!(
        money(&c, "ru", "3", "EUR"),
        ("digits/3 money/eur".into(), none())
    );
    assert_eq!(
        money(&c, "ru", "2", "USD"),
        ("digits/2 money/usd-few".into(), only(&["money/usd-few"]))
    );
    // «двадцать три часа пятьдесят девять минут», «двадцать один час одна минута»
    assert_eq!(
        time(&c, "ru", "23:59"),
        (
            "digits/20 digits/3 time/hour-few digits/50 digits/9 time/minute-many".into(),
            none()
        )
    );
    assert_eq!(
        time(&c, "ru", "21:01"),
        (
            "digits/20 digits/1 time/hour-one digits/1f time/minute-one".into(),
            none()
        )
    );
    // «двадцать первого ноября»: the month is human, the genitive ordinal is not yet.
    assert_eq!(
        date(&c, "ru", "2026-11-21", false),
        (
            "digits/20 ordinal/1 date/month-11".into(),
            only(&["ordinal/1"])
        )
    );
    // «… две тысячи двадцать шестого года»
    assert_eq!(
        date(&c, "ru", "2026-11-23", true),
        (
            "digits/20 ordinal/3 date/month-11 digits/2f digits/thousand-few digits/20 ordinal/6 date/year"
                .into(),
            only(&["ordinal/3", "ordinal/6", "date/year"])
        )
    );
}

#[test]
fn ukrainian_is_human_where_the_set_has_the_word() {
    let c = cache();
    // «тисяча тридцять чотири»
    assert_eq!(
        number(&c, "uk", 1034, Gender::Masculine),
        ("digits/thousand digits/30 digits/4".into(), none())
    );
    // «три тисячі», «два мільйони» — and «п'ять тисяч» still to record.
    assert_eq!(
        number(&c, "uk", 3000, Gender::Masculine),
        ("digits/3 digits/thousand-few".into(), none())
    );
    assert_eq!(
        number(&c, "uk", 2_000_000, Gender::Masculine),
        ("digits/2 digits/million-few".into(), none())
    );
    assert_eq!(
        number(&c, "uk", 5000, Gender::Masculine),
        (
            "digits/5 digits/thousand-many".into(),
            only(&["digits/thousand-many"])
        )
    );
    // «одне» (neuter) is human; the feminine «одна» is not recorded in the set.
    assert_eq!(
        number(&c, "uk", 1, Gender::Neuter),
        ("digits/1n".into(), none())
    );
    assert_eq!(
        number(&c, "uk", 21, Gender::Feminine),
        ("digits/20 digits/1f".into(), only(&["digits/1f"]))
    );
    // «п'ять доларів»
    assert_eq!(
        money(&c, "uk", "5", "USD"),
        ("digits/5 money/usd-many".into(), none())
    );
    // «двадцять дві гривні»: «дві» and «гривні» still to record.
    assert_eq!(
        money(&c, "uk", "22", "UAH"),
        (
            "digits/20 digits/2f money/uah-few".into(),
            only(&["digits/2f", "money/uah-few"])
        )
    );
    // «десять годин», «двадцять годин одна хвилина»
    assert_eq!(
        time(&c, "uk", "10:00"),
        ("digits/10 time/hour-many".into(), none())
    );
    assert_eq!(
        time(&c, "uk", "20:01"),
        (
            "digits/20 time/hour-many digits/1f time/minute-one".into(),
            only(&["digits/1f"])
        )
    );
    // «двадцять третього листопада»: the month is human.
    assert_eq!(
        date(&c, "uk", "2026-11-23", false),
        (
            "digits/20 ordinal/3 date/month-11".into(),
            only(&["ordinal/3"])
        )
    );
    // Every genitive month is a human recording, in both languages.
    for lang in ["ru", "uk"] {
        for m in 1..=12 {
            let name = format!("date/month-{m}");
            assert!(c.get(lang, &name).is_some(), "{lang}/{name}");
            assert!(!c.is_synthetic(lang, &name), "{lang}/{name}");
        }
    }
}
