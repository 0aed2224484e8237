//! Understanding what a caller said: transcript text → intent, for ru, uk and en.
//!
//! Pure functions, no I/O. The dialogue calls [`classify`] with the transcript, the
//! language and the node's intents (name → phrases); speech recognition lives in `asr`.
//!
//! What it handles, in order:
//! 1. **Normalisation** ([`normalize`]): case, punctuation, «ё» → «е», Latin look-alike
//!    letters inside Cyrillic words (Whisper writes «нi» with a Latin i), apostrophes.
//! 2. **Numbers** ([`numbers_to_digits`]): number words become digits in all three
//!    languages — «один», «одна», «сорок два», "twenty one", «п'ять» — so the phrase "1"
//!    matches "one", «один» and "1."; runs of single digits also match as one number
//!    ("four seven one one" = "4711").
//! 3. **Synonyms**: a phrase that belongs to a built-in synonym group (yes/no/repeat/operator
//!    in each language, [`SYNONYMS`]) brings the rest of its group, at a slightly lower score.
//! 4. **Negation**: a phrase preceded by a negation word does not count for that phrase
//!    («нет, не надо» is not «надо»; "not correct" is not "correct"), unless the phrase
//!    itself includes the negation.
//! 5. **Near misses**: words within a small edit distance match (a transcript "yess",
//!    «подтвержаю»), scaled by the similarity; very short words must match exactly.
//!
//! The score is in [0, 1]: 1 for an exact phrase, less for a synonym, a near miss or an
//! ambiguous answer (two intents heard). The dialogue compares it with its threshold and
//! runs `nomatch` below it.

pub mod dates;

/// The best intent for a transcript, with a score in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct IntentMatch {
    pub intent: String,
    pub score: f32,
}

/// Score of a match through a synonym group rather than the scenario's own phrase.
pub const SYNONYM_SCORE: f32 = 0.9;
/// Words at least this similar (1 − edit distance / length) count as a near miss.
pub const NEAR_MISS_SIMILARITY: f32 = 0.75;
/// Factor applied when more than one intent was heard.
pub const AMBIGUITY_PENALTY: f32 = 0.7;

/// Lower-case, «ё» → «е», punctuation to spaces, whitespace collapsed; Latin look-alikes
/// inside Cyrillic words become Cyrillic; typographic apostrophes become `'`.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = match c {
            'ё' => 'е',
            '’' | 'ʼ' | '`' | '´' | 'ʻ' => '\'',
            c if c.is_alphanumeric() || c == '\'' => c,
            _ => ' ',
        };
        out.push(c);
    }
    out.split_whitespace()
        .map(|w| fix_mixed_script(w.trim_matches('\'')))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_cyrillic(c: char) -> bool {
    ('\u{0400}'..='\u{04FF}').contains(&c)
}

/// «нi» (Latin i) → «ні»: a word with Cyrillic letters gets its Latin look-alikes replaced.
fn fix_mixed_script(w: &str) -> String {
    if !w.chars().any(is_cyrillic) || w.chars().all(|c| !c.is_ascii_alphabetic()) {
        return w.to_owned();
    }
    w.chars()
        .map(|c| match c {
            'a' => 'а',
            'e' => 'е',
            'o' => 'о',
            'p' => 'р',
            'c' => 'с',
            'x' => 'х',
            'y' => 'у',
            'i' => 'і',
            'k' => 'к',
            'm' => 'м',
            't' => 'т',
            'h' => 'н',
            'b' => 'в',
            c => c,
        })
        .collect()
}

/// Built-in synonym groups: (language, words). A scenario phrase found in a group brings
/// the others at [`SYNONYM_SCORE`].
pub const SYNONYMS: &[(&str, &[&str])] = &[
    (
        "en",
        &[
            "yes",
            "yeah",
            "yep",
            "yup",
            "sure",
            "correct",
            "right",
            "that's right",
            "confirm",
            "of course",
            "absolutely",
            "affirmative",
        ],
    ),
    (
        "en",
        &[
            "no",
            "nope",
            "nah",
            "incorrect",
            "wrong",
            "cancel",
            "not right",
            "not yet",
            "not really",
            "not quite",
        ],
    ),
    (
        "en",
        &[
            "repeat",
            "again",
            "say again",
            "say that again",
            "once more",
            "pardon",
            "what",
        ],
    ),
    (
        "en",
        &[
            "operator",
            "agent",
            "human",
            "person",
            "representative",
            "real person",
            "live agent",
        ],
    ),
    (
        "ru",
        &[
            "да",
            "ага",
            "угу",
            "конечно",
            "верно",
            "правильно",
            "точно",
            "подтверждаю",
            "давай",
            "давайте",
            "хорошо",
            "согласен",
            "согласна",
        ],
    ),
    (
        "ru",
        &[
            "нет",
            "неа",
            "не надо",
            "не нужно",
            "отмена",
            "отменить",
            "отмените",
            "неверно",
            "неправильно",
            "еще нет",
            "пока нет",
            "не совсем",
        ],
    ),
    (
        "ru",
        &[
            "повторите",
            "повтори",
            "еще раз",
            "повторить",
            "не расслышал",
            "не понял",
            "что",
        ],
    ),
    (
        "ru",
        &[
            "оператор",
            "оператора",
            "человек",
            "специалист",
            "менеджер",
            "живой человек",
            "соедините с оператором",
        ],
    ),
    (
        "uk",
        &[
            "так",
            "ага",
            "звісно",
            "звичайно",
            "авжеж",
            "вірно",
            "правильно",
            "точно",
            "підтверджую",
            "добре",
            "згоден",
            "згодна",
        ],
    ),
    (
        "uk",
        &[
            "ні",
            "не треба",
            "не потрібно",
            "скасувати",
            "скасуйте",
            "відміна",
            "невірно",
            "неправильно",
            "ще ні",
            "поки ні",
            "не зовсім",
        ],
    ),
    (
        "uk",
        &[
            "повторіть",
            "повтори",
            "ще раз",
            "повторити",
            "не почув",
            "не зрозумів",
            "що",
        ],
    ),
    (
        "uk",
        &[
            "оператор",
            "оператора",
            "людина",
            "спеціаліст",
            "менеджер",
            "жива людина",
            "з'єднайте з оператором",
        ],
    ),
];

/// Negation words. A phrase that starts within [`NEGATION_SCOPE`] words after one of them
/// is negated ("it is not right", «не совсем верно», «ще не сплатив»), unless the phrase
/// itself starts with a negation ("not right" is a phrase of its own) or a contrast word
/// ("but", «но», «але») comes between. Contractions are expanded first ("isn't" → "is
/// not", [`expand_contractions`]).
pub const NEGATIONS: &[&str] = &[
    "не",
    "not",
    "never",
    "ни",
    "ніколи",
    "никогда",
    "нiколи",
    "nothing",
    "neither",
    "nor",
];

/// How many words after a negation it reaches when the words between are degree or time
/// adverbs ([`NEGATION_ADVERBS`]): "not right" (1), "not quite right" and «не совсем
/// верно» (2), "not yet really paid" (3). Any other word between ends it: "I don't know…
/// yes" is a yes.
pub const NEGATION_SCOPE: usize = 3;

/// Words a negation reaches across: "not *quite* right", «не *совсем* верно», "have not
/// *yet* paid", «ще *зовсім* не».
const NEGATION_ADVERBS: &[&str] = &[
    "quite",
    "really",
    "yet",
    "exactly",
    "entirely",
    "completely",
    "very",
    "so",
    "all",
    "at",
    "совсем",
    "совершенно",
    "очень",
    "еще",
    "пока",
    "вполне",
    "точно",
    "зовсім",
    "дуже",
    "ще",
    "поки",
    "цілком",
    "зовсем",
];

/// Words that end a negation's reach: "not this one but the second".
const CONTRASTS: &[&str] = &[
    "but",
    "no",
    "нет",
    "ні",
    "но",
    "а",
    "але",
    "однак",
    "однако",
    "yes",
    "да",
    "так",
];

/// English contractions (with and without the apostrophe, as Whisper writes both) → their
/// words: "isn't" → "is not", "won't" → "will not", "can't" → "can not", "dont" → "do not".
const CONTRACTIONS: &[(&str, &str)] = &[
    ("won't", "will not"),
    ("wont", "will not"),
    ("can't", "can not"),
    ("cant", "can not"),
    ("cannot", "can not"),
    ("shan't", "shall not"),
    ("ain't", "is not"),
    ("aint", "is not"),
    ("dont", "do not"),
    ("doesnt", "does not"),
    ("didnt", "did not"),
    ("isnt", "is not"),
    ("arent", "are not"),
    ("wasnt", "was not"),
    ("werent", "were not"),
    ("havent", "have not"),
    ("hasnt", "has not"),
    ("hadnt", "had not"),
    ("couldnt", "could not"),
    ("shouldnt", "should not"),
    ("wouldnt", "would not"),
    ("mustnt", "must not"),
    ("neednt", "need not"),
];

/// "it isn't right" → "it is not right": English negative contractions become two words so
/// that negation is one word, `not`, wherever it was written. Other words are left alone
/// ("that's" stays: it is matched as written).
pub fn expand_contractions(normalized: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for w in normalized.split_whitespace() {
        if let Some((_, full)) = CONTRACTIONS.iter().find(|(c, _)| *c == w) {
            out.extend(full.split(' ').map(str::to_owned));
        } else if let Some(stem) = w.strip_suffix("n't")
            && !stem.is_empty()
        {
            out.push(stem.to_owned());
            out.push("not".to_owned());
        } else {
            out.push(w.to_owned());
        }
    }
    out.join(" ")
}

/// Whether the phrase found at `start` of `said` is negated by a word before it.
fn negated_at(said: &[String], start: usize) -> Option<usize> {
    let from = start.saturating_sub(NEGATION_SCOPE);
    for i in (from..start).rev() {
        let w = said[i].as_str();
        if NEGATIONS.contains(&w) {
            return Some(i);
        }
        if CONTRASTS.contains(&w) || !NEGATION_ADVERBS.contains(&w) {
            return None;
        }
    }
    None
}

// --- numbers ---------------------------------------------------------------------------

/// (word, value, kind): kind 1 = units 0–9, 2 = teens 10–19, 3 = tens 20–90, 4 = hundreds,
/// 5 = thousand multiplier.
const NUMBER_WORDS: &[(&str, u64, u8)] = &[
    // en
    ("zero", 0, 1),
    ("oh", 0, 1),
    ("one", 1, 1),
    ("two", 2, 1),
    ("three", 3, 1),
    ("four", 4, 1),
    ("five", 5, 1),
    ("six", 6, 1),
    ("seven", 7, 1),
    ("eight", 8, 1),
    ("nine", 9, 1),
    ("ten", 10, 2),
    ("eleven", 11, 2),
    ("twelve", 12, 2),
    ("thirteen", 13, 2),
    ("fourteen", 14, 2),
    ("fifteen", 15, 2),
    ("sixteen", 16, 2),
    ("seventeen", 17, 2),
    ("eighteen", 18, 2),
    ("nineteen", 19, 2),
    ("twenty", 20, 3),
    ("thirty", 30, 3),
    ("forty", 40, 3),
    ("fifty", 50, 3),
    ("sixty", 60, 3),
    ("seventy", 70, 3),
    ("eighty", 80, 3),
    ("ninety", 90, 3),
    ("hundred", 100, 4),
    ("thousand", 1000, 5),
    // ru
    ("ноль", 0, 1),
    ("нуль", 0, 1),
    ("один", 1, 1),
    ("одна", 1, 1),
    ("одно", 1, 1),
    ("два", 2, 1),
    ("две", 2, 1),
    ("три", 3, 1),
    ("четыре", 4, 1),
    ("пять", 5, 1),
    ("шесть", 6, 1),
    ("семь", 7, 1),
    ("восемь", 8, 1),
    ("девять", 9, 1),
    ("десять", 10, 2),
    ("одиннадцать", 11, 2),
    ("двенадцать", 12, 2),
    ("тринадцать", 13, 2),
    ("четырнадцать", 14, 2),
    ("пятнадцать", 15, 2),
    ("шестнадцать", 16, 2),
    ("семнадцать", 17, 2),
    ("восемнадцать", 18, 2),
    ("девятнадцать", 19, 2),
    ("двадцать", 20, 3),
    ("тридцать", 30, 3),
    ("сорок", 40, 3),
    ("пятьдесят", 50, 3),
    ("шестьдесят", 60, 3),
    ("семьдесят", 70, 3),
    ("восемьдесят", 80, 3),
    ("девяносто", 90, 3),
    ("сто", 100, 4),
    ("двести", 200, 4),
    ("триста", 300, 4),
    ("четыреста", 400, 4),
    ("пятьсот", 500, 4),
    ("шестьсот", 600, 4),
    ("семьсот", 700, 4),
    ("восемьсот", 800, 4),
    ("девятьсот", 900, 4),
    ("тысяча", 1000, 5),
    ("тысячи", 1000, 5),
    ("тысяч", 1000, 5),
    // uk (words identical to ru are listed once above)
    ("одна", 1, 1),
    ("одне", 1, 1),
    ("дві", 2, 1),
    ("чотири", 4, 1),
    ("п'ять", 5, 1),
    ("шість", 6, 1),
    ("сім", 7, 1),
    ("вісім", 8, 1),
    ("дев'ять", 9, 1),
    ("десять", 10, 2),
    ("одинадцять", 11, 2),
    ("дванадцять", 12, 2),
    ("тринадцять", 13, 2),
    ("чотирнадцять", 14, 2),
    ("п'ятнадцять", 15, 2),
    ("шістнадцять", 16, 2),
    ("сімнадцять", 17, 2),
    ("вісімнадцять", 18, 2),
    ("дев'ятнадцять", 19, 2),
    ("двадцять", 20, 3),
    ("тридцять", 30, 3),
    ("п'ятдесят", 50, 3),
    ("шістдесят", 60, 3),
    ("сімдесят", 70, 3),
    ("вісімдесят", 80, 3),
    ("дев'яносто", 90, 3),
    ("двісті", 200, 4),
    ("чотириста", 400, 4),
    ("п'ятсот", 500, 4),
    ("шістсот", 600, 4),
    ("сімсот", 700, 4),
    ("вісімсот", 800, 4),
    ("дев'ятсот", 900, 4),
    ("тисяча", 1000, 5),
    ("тисячі", 1000, 5),
    ("тисяч", 1000, 5),
    // Whisper's apostrophe-less spellings of Ukrainian numbers
    ("пять", 5, 1),
    ("девять", 9, 1),
];

fn number_word(w: &str) -> Option<(u64, u8)> {
    NUMBER_WORDS
        .iter()
        .find(|(word, _, _)| *word == w)
        .map(|&(_, v, k)| (v, k))
        .or_else(|| ordinal_word(w))
}

/// English ordinals (whole words; "twenty-first" is "twenty" + "first").
const ORDINALS_EN: &[(&str, u64)] = &[
    ("first", 1),
    ("second", 2),
    ("third", 3),
    ("fourth", 4),
    ("fifth", 5),
    ("sixth", 6),
    ("seventh", 7),
    ("eighth", 8),
    ("ninth", 9),
    ("tenth", 10),
    ("eleventh", 11),
    ("twelfth", 12),
    ("thirteenth", 13),
    ("fourteenth", 14),
    ("fifteenth", 15),
    ("sixteenth", 16),
    ("seventeenth", 17),
    ("eighteenth", 18),
    ("nineteenth", 19),
    ("twentieth", 20),
    ("thirtieth", 30),
    ("fortieth", 40),
    ("fiftieth", 50),
    ("sixtieth", 60),
    ("seventieth", 70),
    ("eightieth", 80),
    ("ninetieth", 90),
    ("hundredth", 100),
];

/// Russian and Ukrainian ordinal stems: a stem followed by one of its endings
/// ([`ORDINAL_ENDINGS`], or the soft endings of «третий»/«третій») is the ordinal in any
/// gender and case: «пятнадцатого», «первое», «двадцатому», «п'ятнадцятого», «перша».
/// Stems are written without apostrophes («пятнадцят» matches «п'ятнадцятого» too).
const ORDINAL_STEMS: &[(&str, u64)] = &[
    // ru
    ("перв", 1),
    ("втор", 2),
    ("четверт", 4),
    ("пят", 5),
    ("шест", 6),
    ("седьм", 7),
    ("восьм", 8),
    ("девят", 9),
    ("десят", 10),
    ("одиннадцат", 11),
    ("двенадцат", 12),
    ("тринадцат", 13),
    ("четырнадцат", 14),
    ("пятнадцат", 15),
    ("шестнадцат", 16),
    ("семнадцат", 17),
    ("восемнадцат", 18),
    ("девятнадцат", 19),
    ("двадцат", 20),
    ("тридцат", 30),
    ("сороков", 40),
    ("пятидесят", 50),
    ("шестидесят", 60),
    ("семидесят", 70),
    ("восьмидесят", 80),
    ("девяност", 90),
    ("сот", 100),
    // uk
    ("перш", 1),
    ("друг", 2),
    ("шост", 6),
    ("сьом", 7),
    ("одинадцят", 11),
    ("дванадцят", 12),
    ("тринадцят", 13),
    ("чотирнадцят", 14),
    ("пятнадцят", 15),
    ("шістнадцят", 16),
    ("сімнадцят", 17),
    ("вісімнадцят", 18),
    ("девятнадцят", 19),
    ("двадцят", 20),
    ("тридцят", 30),
    ("пятдесят", 50),
    ("шістдесят", 60),
    ("сімдесят", 70),
    ("вісімдесят", 80),
];

/// Adjective endings of ordinals, ru and uk.
const ORDINAL_ENDINGS: &[&str] = &[
    "ый", "ой", "ий", "ая", "ое", "ые", "ого", "ому", "ую", "ым", "ом", "ых", "ыми", "ей", "а",
    "е", "у", "і", "ої", "ій", "ою", "им", "их", "ими", "ім",
];

/// «третий», «третьего», «третій», «третього», «третя», «третє».
const THIRD_ENDINGS: &[&str] = &[
    "ий", "ьего", "ьему", "ья", "ье", "ьи", "ью", "ьим", "ьем", "ьей", "ьих", "ій", "ього", "ьому",
    "я", "є", "ю", "ьої", "ім", "іх",
];

/// The value of an ordinal word, as a number-word kind (1 units, 2 teens, 3 tens,
/// 4 hundreds); "twenty-first" is "twenty" + "first" and combines as "twenty one" does.
/// Russian «второго»/«другого»: «друг» (uk "second") only with an ordinal ending that is not
/// also Russian for "other" (so «другой», «другого», «другое» stay words).
fn ordinal_word(w: &str) -> Option<(u64, u8)> {
    let kind = |v: u64| match v {
        0..=9 => 1,
        10..=19 => 2,
        20..=99 => 3,
        _ => 4,
    };
    if let Some(&(_, v)) = ORDINALS_EN.iter().find(|(o, _)| *o == w) {
        return Some((v, kind(v)));
    }
    if !w.chars().any(|c| ('\u{0400}'..='\u{04FF}').contains(&c)) {
        return None;
    }
    let bare: String = w.chars().filter(|&c| c != '\'').collect();
    if let Some(rest) = bare.strip_prefix("трет")
        && THIRD_ENDINGS.contains(&rest)
    {
        return Some((3, 1));
    }
    // The longest stem that leaves an ordinal ending.
    ORDINAL_STEMS
        .iter()
        .filter_map(|&(stem, v)| {
            let rest = bare.strip_prefix(stem)?;
            if !ORDINAL_ENDINGS.contains(&rest) {
                return None;
            }
            if stem == "друг" && !matches!(rest, "ий" | "ій" | "а" | "е" | "у" | "ої" | "ою")
            {
                return None;
            }
            if stem == "сот" && !matches!(rest, "ый" | "ого" | "ая" | "ое" | "ий") {
                return None;
            }
            Some((stem.chars().count(), v))
        })
        .max_by_key(|&(len, _)| len)
        .map(|(_, v)| (v, kind(v)))
}

/// Whether `w` is an ordinal word (an ordinal ends the number it is part of).
fn is_ordinal(w: &str) -> bool {
    ordinal_word(w).is_some() && NUMBER_WORDS.iter().all(|(n, _, _)| *n != w)
}

/// Case endings written after digits: "15th", "21st", «15-го», «1-е», «2-й» (normalised to
/// "15 th", "15 го").
const DIGIT_SUFFIXES: &[&str] = &[
    "st", "nd", "rd", "th", "го", "ого", "е", "ое", "й", "ый", "ой", "ий", "ье", "ьего", "те",
    "ті", "ше", "ге", "тє", "ого", "ому",
];

/// Replaces number words with digits in a normalised text: «сорок два» → "42",
/// "twenty one" → "21", "one two" → "1 2" (units after units stay separate). Ordinals
/// count as their number and end it: "twenty first" → "21", «пятнадцатого» → "15",
/// «двадцать первого» → "21"; "15th" and «15-го» → "15".
pub fn numbers_to_digits(normalized: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    // The number being built: (value, kind of the last word).
    let mut cur: Option<(u64, u8)> = None;
    let flush = |cur: &mut Option<(u64, u8)>, out: &mut Vec<String>| {
        if let Some((v, _)) = cur.take() {
            out.push(v.to_string());
        }
    };
    for w in normalized.split_whitespace() {
        // "15th" → "15"; "15 th" (after normalisation of «15-го») → "15".
        let split = w.find(|c: char| !c.is_ascii_digit()).filter(|&i| i > 0);
        if let Some(i) = split
            && DIGIT_SUFFIXES.contains(&&w[i..])
        {
            flush(&mut cur, &mut out);
            out.push(w[..i].to_owned());
            continue;
        }
        if DIGIT_SUFFIXES.contains(&w) && cur.is_none() && out.last().is_some_and(|l| is_digits(l))
        {
            continue;
        }
        if w == "and" || w == "и" || w == "і" {
            // "one hundred and five": keep building only inside a number.
            if matches!(cur, Some((_, 4))) {
                continue;
            }
        }
        // «двадцять другого»: after tens, «друг…» is "second" in any case (alone, Russian
        // «другого» is "other's").
        let second = matches!(cur, Some((_, 3)))
            && w.strip_prefix("друг")
                .is_some_and(|rest| ORDINAL_ENDINGS.contains(&rest));
        let Some((v, kind)) = number_word(w).or(second.then_some((2, 1))) else {
            flush(&mut cur, &mut out);
            out.push(w.to_owned());
            continue;
        };
        let ordinal = second || is_ordinal(w);
        cur = match cur {
            None => Some((v, kind)),
            Some((acc, last)) => {
                let combines = match (last, kind) {
                    (3, 1) => v > 0,                  // twenty + one
                    (4, 1) | (4, 2) | (4, 3) => true, // hundred + …
                    (1, 4) if v == 100 => true,       // one hundred
                    (_, 5) => acc < 1000,             // … thousand
                    (5, k) => k <= 4,                 // thousand + …
                    _ => false,
                };
                if !combines {
                    out.push(acc.to_string());
                    Some((v, kind))
                } else if v == 100 && kind == 4 && last == 1 {
                    Some((acc * 100, 4))
                } else if kind == 5 {
                    Some((acc.max(1) * 1000, 5))
                } else {
                    Some((acc + v, kind))
                }
            }
        };
        if ordinal {
            flush(&mut cur, &mut out);
        }
    }
    flush(&mut cur, &mut out);
    out.join(" ")
}

/// 0–19 and the tens, per language, for saying a number ([`spoken_forms`]).
const SAY_EN: ([&str; 20], [&str; 8]) = (
    [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ],
    [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ],
);
const SAY_RU: ([&str; 20], [&str; 8]) = (
    [
        "ноль",
        "один",
        "два",
        "три",
        "четыре",
        "пять",
        "шесть",
        "семь",
        "восемь",
        "девять",
        "десять",
        "одиннадцать",
        "двенадцать",
        "тринадцать",
        "четырнадцать",
        "пятнадцать",
        "шестнадцать",
        "семнадцать",
        "восемнадцать",
        "девятнадцать",
    ],
    [
        "двадцать",
        "тридцать",
        "сорок",
        "пятьдесят",
        "шестьдесят",
        "семьдесят",
        "восемьдесят",
        "девяносто",
    ],
);
const SAY_UK: ([&str; 20], [&str; 8]) = (
    [
        "нуль",
        "один",
        "два",
        "три",
        "чотири",
        "п'ять",
        "шість",
        "сім",
        "вісім",
        "дев'ять",
        "десять",
        "одинадцять",
        "дванадцять",
        "тринадцять",
        "чотирнадцять",
        "п'ятнадцять",
        "шістнадцять",
        "сімнадцять",
        "вісімнадцять",
        "дев'ятнадцять",
    ],
    [
        "двадцять",
        "тридцять",
        "сорок",
        "п'ятдесят",
        "шістдесят",
        "сімдесят",
        "вісімдесят",
        "дев'яносто",
    ],
);

/// A number 0–99 in words in `lang` ("ru", "uk", else English).
pub fn say_number(n: u64, lang: &str) -> Option<String> {
    let (small, tens) = match lang {
        "ru" => SAY_RU,
        "uk" => SAY_UK,
        _ => SAY_EN,
    };
    match n {
        0..=19 => Some(small[n as usize].to_owned()),
        20..=99 => {
            let t = tens[(n / 10 - 2) as usize];
            Some(if n.is_multiple_of(10) {
                t.to_owned()
            } else {
                format!("{t} {}", small[(n % 10) as usize])
            })
        }
        _ => None,
    }
}

/// How a phrase may be said: itself, and for a number ("1", "42") its words in `lang`
/// ("один", "сорок два"). The recogniser scores these forms for closed questions.
pub fn spoken_forms(phrase: &str, lang: &str) -> Vec<String> {
    let mut out = vec![phrase.trim().to_owned()];
    let toks = canonical(phrase);
    if toks.len() == 1
        && is_digits(&toks[0])
        && let Ok(n) = toks[0].parse::<u64>()
        && let Some(words) = say_number(n, lang)
    {
        out.push(words);
        // «одна», «одно», «две»; «одна», «одне», «дві»: the other genders of 1 and 2.
        let other: &[&str] = match (lang, n) {
            ("ru", 1) => &["одна", "одно"],
            ("ru", 2) => &["две"],
            ("uk", 1) => &["одна", "одне"],
            ("uk", 2) => &["дві"],
            _ => &[],
        };
        out.extend(other.iter().map(|w| w.to_string()));
    }
    out.retain(|s| !s.is_empty());
    out.dedup();
    out
}

/// Digits glued to words ("1st") stay as they are; a token of digits is a number.
fn is_digits(w: &str) -> bool {
    !w.is_empty() && w.chars().all(|c| c.is_ascii_digit())
}

/// Runs of single-digit tokens joined: "4 7 1 1" → "4711" (a number read digit by digit).
fn join_digit_runs(tokens: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut run = String::new();
    for t in tokens {
        if is_digits(t) {
            run.push_str(t);
        } else {
            if !run.is_empty() {
                out.push(std::mem::take(&mut run));
            }
            out.push(t.clone());
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

/// The canonical tokens of a text: normalised, numbers as digits.
fn canonical(text: &str) -> Vec<String> {
    numbers_to_digits(&expand_contractions(&normalize(text)))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The numbers a transcript says, in order, as digits: "number one" → ["1"], «двадцать
/// первого» → ["21"], "one two" → ["12"] (a number read digit by digit), "one or two" →
/// ["1", "2"]. The dialogue lets a spoken key ("one" for key 1) count only when exactly
/// one number was said.
pub fn numbers_said(text: &str) -> Vec<String> {
    join_digit_runs(&canonical(text))
        .into_iter()
        .filter(|w| is_digits(w))
        .collect()
}

// --- matching --------------------------------------------------------------------------

fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Similarity of two words in [0, 1]; 1 when equal. Words of ≤ 3 letters and numbers
/// match only exactly ("да"/"на", "no"/"so", "1"/"7" must not be near misses).
fn word_similarity(said: &str, expected: &str) -> f32 {
    if said == expected {
        return 1.0;
    }
    let a: Vec<char> = said.chars().collect();
    let b: Vec<char> = expected.chars().collect();
    if a.len().min(b.len()) <= 3 || is_digits(said) || is_digits(expected) {
        return 0.0;
    }
    let d = levenshtein(&a, &b);
    1.0 - d as f32 / a.len().max(b.len()) as f32
}

/// Best match of `phrase` (tokens) inside `said` (tokens): (similarity, position).
fn find_phrase(said: &[String], phrase: &[String]) -> Option<(f32, usize)> {
    scan_phrase(said, phrase).best
}

/// Where a phrase was found in a transcript, and where it was found but negated.
#[derive(Debug, Clone, PartialEq)]
struct Scan {
    /// (similarity, start) of the best occurrence that counts.
    best: Option<(f32, usize)>,
    /// (start, index of the negation word) of an occurrence that does not count.
    negated: Option<(usize, usize)>,
}

fn scan_phrase(said: &[String], phrase: &[String]) -> Scan {
    let mut scan = Scan {
        best: None,
        negated: None,
    };
    if phrase.is_empty() || phrase.len() > said.len() {
        return scan;
    }
    let phrase_negated = NEGATIONS.contains(&phrase[0].as_str());
    for start in 0..=said.len() - phrase.len() {
        let mut sim = 1.0f32;
        for (s, p) in said[start..start + phrase.len()].iter().zip(phrase) {
            let w = word_similarity(s, p);
            if w < NEAR_MISS_SIMILARITY {
                sim = 0.0;
                break;
            }
            sim = sim.min(w);
        }
        if sim == 0.0 {
            continue;
        }
        if !phrase_negated && let Some(neg) = negated_at(said, start) {
            // «не надо» is not «надо»; "it isn't right" is not "right".
            scan.negated.get_or_insert((start, neg));
            continue;
        }
        if sim < 1.0 {
            sim *= 0.9; // a near miss is never as good as the word itself
        }
        if scan
            .best
            .is_none_or(|(b, p)| sim > b || (sim == b && start > p))
        {
            scan.best = Some((sim, start));
        }
    }
    scan
}

/// Phrases for `name` in `lang` with their weight: the scenario's own at 1.0, plus the
/// synonym groups they belong to at [`SYNONYM_SCORE`].
fn expand(phrases: &[String], lang: &str) -> Vec<(Vec<String>, f32)> {
    let mut out: Vec<(Vec<String>, f32)> = Vec::new();
    for p in phrases {
        let toks = canonical(p);
        if toks.is_empty() {
            continue;
        }
        out.push((toks, 1.0));
    }
    let own: Vec<String> = out.iter().map(|(t, _)| t.join(" ")).collect();
    for (glang, words) in SYNONYMS {
        if !lang.is_empty() && *glang != lang {
            continue;
        }
        let group: Vec<String> = words.iter().map(|w| canonical(w).join(" ")).collect();
        if group.iter().any(|g| own.contains(g)) {
            for g in group {
                if !own.contains(&g) {
                    out.push((g.split(' ').map(str::to_owned).collect(), SYNONYM_SCORE));
                }
            }
        }
    }
    out
}

/// In how many separate places of the transcript an expected phrase (its synonyms and
/// near misses included) is heard: matches that overlap count once. "Yes." against
/// [yes, confirm, correct, that's right] is one place (all four are synonyms of the one
/// word said); "5, 6, 7, 8, 9" against the digits is five.
pub fn phrase_places(text: &str, lang: &str, phrases: &[String]) -> usize {
    let said = canonical(text);
    if said.is_empty() {
        return 0;
    }
    let mut spans: Vec<(usize, usize)> = expand(phrases, lang)
        .into_iter()
        .filter_map(|(phrase, _)| {
            find_phrase(&said, &phrase).map(|(_, at)| (at, at + phrase.len()))
        })
        .collect();
    spans.sort_unstable();
    let mut places = 0;
    let mut end = 0;
    for (start, stop) in spans {
        if places == 0 || start >= end {
            places += 1;
            end = stop;
        } else {
            end = end.max(stop);
        }
    }
    places
}

/// Which of `phrases` (by index) the transcript names, each with its synonyms and near
/// misses, as [`classify`] would find them.
pub fn named_phrases(text: &str, lang: &str, phrases: &[String]) -> Vec<usize> {
    let said = canonical(text);
    if said.is_empty() {
        return Vec::new();
    }
    let joined = join_digit_runs(&said);
    (0..phrases.len())
        .filter(|&i| {
            expand(std::slice::from_ref(&phrases[i]), lang)
                .iter()
                .any(|(phrase, _)| {
                    find_phrase(&said, phrase).is_some()
                        || (phrase.len() == 1
                            && is_digits(&phrase[0])
                            && joined.len() != said.len()
                            && find_phrase(&joined, phrase).is_some())
                })
        })
        .collect()
}

/// Pick the intent the transcript expresses. `intents` are (name, phrases) for the call's
/// language `lang` ("ru", "uk", "en"; it selects the synonym groups). Returns None when no
/// phrase, synonym or near miss is heard.
pub fn classify(text: &str, lang: &str, intents: &[(String, Vec<String>)]) -> Option<IntentMatch> {
    let said = canonical(text);
    if said.is_empty() {
        return None;
    }
    let joined = join_digit_runs(&said);
    // Per intent: (index, score, phrase length, end position).
    let mut scored: Vec<(usize, f32, usize, usize)> = Vec::new();
    for (i, (_, phrases)) in intents.iter().enumerate() {
        let mut best: Option<(f32, usize, usize)> = None;
        for (phrase, weight) in expand(phrases, lang) {
            let hit = find_phrase(&said, &phrase).or_else(|| {
                // "4711" said as "four seven one one".
                if phrase.len() == 1 && is_digits(&phrase[0]) && joined.len() != said.len() {
                    find_phrase(&joined, &phrase)
                } else {
                    None
                }
            });
            if let Some((sim, pos)) = hit {
                let s = sim * weight;
                let len = phrase.iter().map(|w| w.chars().count()).sum::<usize>();
                let end = pos + phrase.len();
                if best.is_none_or(|(bs, bl, _)| s > bs || (s == bs && len > bl)) {
                    best = Some((s, len, end));
                }
            }
        }
        if let Some((s, len, pos)) = best {
            scored.push((i, s, len, pos));
        }
    }
    if scored.is_empty() {
        return None;
    }
    // Highest score; then the one said last (a caller who corrects themselves: "yes… no");
    // then, for phrases ending at the same word, the longer one ("cancel the order" over
    // "order").
    scored.sort_by(|a, b| {
        b.1.partial_cmp(&a.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.3.cmp(&a.3))
            .then(b.2.cmp(&a.2))
    });
    let (i, mut score, _, _) = scored[0];
    if scored.len() > 1 {
        score *= AMBIGUITY_PENALTY;
    }
    Some(IntentMatch {
        intent: intents[i].0.clone(),
        score: score.clamp(0.0, 1.0),
    })
}

/// Speech confidence threshold of an `ask` node in the shipped scenarios (the dialogue's
/// own default is `scenario::DEFAULT_CONFIDENCE`).
pub const DEFAULT_THRESHOLD: f32 = 0.6;

/// What the dialogue does with a spoken answer to a closed question (its intents), by the
/// rule of `dialogue::on_utterance`: the answer's score is min(recogniser confidence,
/// [`classify`] score); at or above the node's `confidence` the intent is taken as it is;
/// below it, with a `confirm:` block and at least its `min`, the robot reads the intent
/// back ("did you say …?"); otherwise the node's `nomatch` runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Taken without asking again.
    Accept { intent: String, score: f32 },
    /// Read back for confirmation first.
    Confirm { intent: String, score: f32 },
    /// Asked again (`nomatch`).
    NoMatch { heard: Option<IntentMatch> },
}

impl Verdict {
    /// The intent taken without a read-back, if any.
    pub fn accepted(&self) -> Option<&str> {
        match self {
            Verdict::Accept { intent, .. } => Some(intent),
            _ => None,
        }
    }
}

/// [`Verdict`] of `text` heard with `confidence` against `intents`; `threshold` is the
/// node's `confidence`, `confirm_min` its `confirm.min` when it has a `confirm:` block.
pub fn verdict(
    text: &str,
    confidence: f32,
    lang: &str,
    intents: &[(String, Vec<String>)],
    threshold: f32,
    confirm_min: Option<f32>,
) -> Verdict {
    let confidence = if confidence.is_finite() {
        confidence.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let Some(m) = classify(text, lang, intents) else {
        return Verdict::NoMatch { heard: None };
    };
    let score = confidence.min(m.score);
    if score >= threshold {
        Verdict::Accept {
            intent: m.intent,
            score,
        }
    } else if confirm_min.is_some_and(|min| score >= min) {
        Verdict::Confirm {
            intent: m.intent,
            score,
        }
    } else {
        Verdict::NoMatch { heard: Some(m) }
    }
}

/// How one phrase fared against a transcript, for [`explain`].
#[derive(Debug, Clone, PartialEq)]
pub struct PhraseTrace {
    pub intent: String,
    /// The phrase as matched: canonical words (numbers as digits).
    pub phrase: String,
    /// "own" (the scenario's phrase) or "synonym" (a built-in group).
    pub source: &'static str,
    pub weight: f32,
    pub outcome: PhraseOutcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PhraseOutcome {
    /// Found at word `at` with this similarity (1 = exact; a near miss is less).
    Found {
        at: usize,
        similarity: f32,
        score: f32,
    },
    /// Found at word `at`, but negated by the word at `by`.
    Negated {
        at: usize,
        by: usize,
    },
    NotFound,
}

/// Every step of [`classify`] on one transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub normalized: String,
    pub contractions_expanded: String,
    /// The words matched against: numbers and ordinals as digits.
    pub canonical: Vec<String>,
    pub phrases: Vec<PhraseTrace>,
    /// Intents heard, with their best score, before the ambiguity penalty.
    pub heard: Vec<(String, f32)>,
    pub result: Option<IntentMatch>,
}

/// [`classify`], step by step: what normalisation, contractions, numbers, negation,
/// synonyms and near misses did with `text` (for `ivrflow explain`).
pub fn explain(text: &str, lang: &str, intents: &[(String, Vec<String>)]) -> Explanation {
    let normalized = normalize(text);
    let contractions_expanded = expand_contractions(&normalized);
    let canonical: Vec<String> = numbers_to_digits(&contractions_expanded)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let joined = join_digit_runs(&canonical);
    let mut phrases = Vec::new();
    let mut heard: Vec<(String, f32)> = Vec::new();
    for (name, own) in intents {
        let mut best: Option<f32> = None;
        for (phrase, weight) in expand(own, lang) {
            let mut scan = scan_phrase(&canonical, &phrase);
            if scan.best.is_none()
                && phrase.len() == 1
                && is_digits(&phrase[0])
                && joined.len() != canonical.len()
            {
                let j = scan_phrase(&joined, &phrase);
                if j.best.is_some() {
                    scan = j;
                }
            }
            let outcome = match (scan.best, scan.negated) {
                (Some((similarity, at)), _) => PhraseOutcome::Found {
                    at,
                    similarity,
                    score: similarity * weight,
                },
                (None, Some((at, by))) => PhraseOutcome::Negated { at, by },
                (None, None) => PhraseOutcome::NotFound,
            };
            if let PhraseOutcome::Found { score, .. } = outcome {
                best = Some(best.map_or(score, |b: f32| b.max(score)));
            }
            phrases.push(PhraseTrace {
                intent: name.clone(),
                phrase: phrase.join(" "),
                source: if weight < 1.0 { "synonym" } else { "own" },
                weight,
                outcome,
            });
        }
        if let Some(b) = best {
            heard.push((name.clone(), b));
        }
    }
    Explanation {
        normalized,
        contractions_expanded,
        canonical,
        phrases,
        heard,
        result: classify(text, lang, intents),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synonyms_of_one_word_are_one_place() {
        let ph = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let confirm = ph(&[
            "yes",
            "confirm",
            "correct",
            "that's right",
            "cancel",
            "change",
        ]);
        assert_eq!(phrase_places("Yes.", "en", &confirm), 1);
        assert_eq!(phrase_places("that's correct,", "en", &confirm), 1);
        assert_eq!(phrase_places("Yes, that's right.", "en", &confirm), 2);
        assert_eq!(phrase_places("no idea", "en", &ph(&["yes"])), 0);
        let digits = ph(&["1", "2", "3", "4", "5", "6", "7", "8", "9"]);
        assert_eq!(phrase_places("5, 6, 7, 8, 9", "en", &digits), 5);
        assert_eq!(phrase_places("", "en", &digits), 0);
    }

    fn intents(spec: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        spec.iter()
            .map(|(n, p)| (n.to_string(), p.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn confirm() -> Vec<(String, Vec<String>)> {
        intents(&[
            ("confirm", &["yes", "да", "так", "1", "надо"]),
            ("cancel", &["no", "нет", "ні", "2"]),
            ("repeat", &["repeat", "повторите", "повторіть"]),
            ("operator", &["operator", "оператор"]),
        ])
    }

    fn intent(text: &str, lang: &str) -> Option<String> {
        classify(text, lang, &confirm()).map(|m| m.intent)
    }

    #[test]
    fn normalises_case_punctuation_yo_and_look_alikes() {
        assert_eq!(normalize("  Да, ВСЁ верно! "), "да все верно");
        assert_eq!(normalize("Нi."), "ні");
        assert_eq!(normalize("П’ять"), "п'ять");
    }

    #[test]
    fn whole_phrase_match_longest_wins() {
        let intents = intents(&[("yes", &["yes"]), ("no", &["no", "not yes"])]);
        assert_eq!(classify("Yes.", "en", &intents).unwrap().intent, "yes");
        assert_eq!(
            classify("well, not yes", "en", &intents).unwrap().intent,
            "no"
        );
        assert_eq!(classify("yesterday", "en", &intents), None);
    }

    #[test]
    fn numbers_in_words_and_digits() {
        assert_eq!(numbers_to_digits("сорок два"), "42");
        assert_eq!(numbers_to_digits("twenty one"), "21");
        assert_eq!(numbers_to_digits("one two"), "1 2");
        assert_eq!(numbers_to_digits("one hundred and five"), "105");
        assert_eq!(numbers_to_digits("двести тридцать один"), "231");
        assert_eq!(numbers_to_digits("дві тисячі двадцять"), "2020");
        assert_eq!(numbers_to_digits("п'ять"), "5");
        assert_eq!(intent("One.", "en").unwrap(), "confirm");
        assert_eq!(intent("Один", "ru").unwrap(), "confirm");
        assert_eq!(intent("1", "uk").unwrap(), "confirm");
        assert_eq!(intent("Два!", "ru").unwrap(), "cancel");
        let order = intents(&[("ok", &["4711"])]);
        assert!(classify("four seven one one", "en", &order).is_some());
        assert!(classify("четыре семь один один", "ru", &order).is_some());
        assert!(classify("4, 7, 1, 1.", "ru", &order).is_some());
        assert!(classify("four seven one two", "en", &order).is_none());
    }

    #[test]
    fn numbers_are_said_in_each_language() {
        assert_eq!(spoken_forms("1", "ru"), ["1", "один", "одна", "одно"]);
        assert_eq!(spoken_forms("42", "uk"), ["42", "сорок два"]);
        assert_eq!(spoken_forms("20", "en"), ["20", "twenty"]);
        assert_eq!(spoken_forms("да", "ru"), ["да"]);
        for lang in ["en", "ru", "uk"] {
            for n in 0..100 {
                let words = say_number(n, lang).unwrap();
                assert_eq!(
                    numbers_to_digits(&normalize(&words)),
                    n.to_string(),
                    "{lang} {n}"
                );
            }
        }
    }

    #[test]
    fn negation_is_not_the_positive_phrase() {
        assert_eq!(intent("Нет, не надо", "ru").unwrap(), "cancel");
        assert_eq!(intent("не надо", "ru").unwrap(), "cancel");
        let only_pos = intents(&[("go", &["надо"])]);
        assert_eq!(classify("не надо", "ru", &only_pos), None);
        let m = intents(&[("ok", &["correct"]), ("bad", &["not correct"])]);
        assert_eq!(
            classify("That's not correct", "en", &m).unwrap().intent,
            "bad"
        );
    }

    #[test]
    fn contractions_and_negation_never_match_what_they_negate() {
        assert_eq!(expand_contractions("it isn't right"), "it is not right");
        assert_eq!(expand_contractions("i havent paid"), "i have not paid");
        assert_eq!(expand_contractions("we won't"), "we will not");
        let yes = intents(&[("confirm", &["yes", "correct", "right"])]);
        for text in [
            "It isn't right.",
            "that's not right",
            "It wasn't correct",
            "No, that is not quite right",
            "not correct",
            "This isnt correct",
        ] {
            assert_ne!(
                classify(text, "en", &yes).map(|m| m.intent),
                Some("confirm".to_owned()),
                "{text}"
            );
        }
        let paid = intents(&[("paid", &["paid", "i paid"]), ("later", &["later"])]);
        assert_eq!(classify("I haven't paid yet", "en", &paid), None);
        assert_eq!(classify("I have not yet paid", "en", &paid), None);
        assert_eq!(classify("Yes, I paid", "en", &paid).unwrap().intent, "paid");
        // The negative answers themselves.
        let yn = intents(&[("confirm", &["yes"]), ("cancel", &["no"])]);
        assert_eq!(classify("Not yet.", "en", &yn).unwrap().intent, "cancel");
        assert_eq!(
            classify("it isn't right", "en", &yn).unwrap().intent,
            "cancel"
        );
        let ru = intents(&[("confirm", &["да", "верно"]), ("cancel", &["нет"])]);
        assert_eq!(classify("Ещё нет", "ru", &ru).unwrap().intent, "cancel");
        assert_eq!(
            classify("не совсем верно", "ru", &ru).unwrap().intent,
            "cancel"
        );
        let oplatil = intents(&[("paid", &["оплатил"])]);
        assert_eq!(classify("ещё не оплатил", "ru", &oplatil), None);
        let uk = intents(&[("confirm", &["так", "вірно"]), ("cancel", &["ні"])]);
        assert_eq!(classify("Ще ні.", "uk", &uk).unwrap().intent, "cancel");
        assert_eq!(
            classify("не зовсім вірно", "uk", &uk).unwrap().intent,
            "cancel"
        );
        let splatyv = intents(&[("paid", &["сплатив"])]);
        assert_eq!(classify("ще не сплатив", "uk", &splatyv), None);
        // A negation reaches two words, not the rest of the answer.
        assert_eq!(
            classify("I don't know, yes", "en", &yn).unwrap().intent,
            "confirm"
        );
        // A contrast ends it.
        assert_eq!(
            classify("not no but yes", "en", &yn).unwrap().intent,
            "confirm"
        );
    }

    #[test]
    fn ordinals_are_numbers() {
        for (text, want) in [
            ("fifteenth", "15"),
            ("twenty-first", "21"),
            ("twenty first", "21"),
            ("the thirty first", "the 31"),
            ("пятнадцатого", "15"),
            ("двадцать первого", "21"),
            ("двадцать первое", "21"),
            ("третьего", "3"),
            ("второго", "2"),
            ("п'ятнадцятого", "15"),
            ("пятнадцятого", "15"),
            ("двадцять першого", "21"),
            ("двадцять другого", "22"),
            ("третього", "3"),
            ("15th", "15"),
            ("21st", "21"),
            ("15 го", "15"),
            ("first second", "1 2"),
        ] {
            assert_eq!(
                numbers_to_digits(&normalize(want_text(text))),
                want,
                "{text}"
            );
        }
        // Words that only look like ordinals.
        for word in ["четверть", "вторник", "другой", "сотня", "перевод"]
        {
            assert_eq!(numbers_to_digits(word), word, "{word}");
        }
        let dom = intents(&[("d15", &["15"]), ("d21", &["21"])]);
        assert_eq!(classify("Пятнадцатого", "ru", &dom).unwrap().intent, "d15");
        assert_eq!(
            classify("the twenty-first", "en", &dom).unwrap().intent,
            "d21"
        );
    }

    fn want_text(t: &str) -> &str {
        t
    }

    #[test]
    fn explain_shows_each_step() {
        let ex = explain(
            "It isn't right",
            "en",
            &intents(&[("confirm", &["yes", "correct"]), ("cancel", &["no"])]),
        );
        assert_eq!(ex.normalized, "it isn't right");
        assert_eq!(ex.contractions_expanded, "it is not right");
        assert!(ex.phrases.iter().any(|p| p.phrase == "right"
            && p.source == "synonym"
            && matches!(p.outcome, PhraseOutcome::Negated { at: 3, by: 2 })));
        assert!(
            ex.phrases.iter().any(|p| p.phrase == "not right"
                && matches!(p.outcome, PhraseOutcome::Found { at: 2, .. }))
        );
        assert_eq!(ex.result.unwrap().intent, "cancel");
    }

    #[test]
    fn verdict_follows_the_dialogue_rule() {
        let c = confirm();
        assert!(matches!(
            verdict("yes", 0.9, "en", &c, 0.6, None),
            Verdict::Accept { .. }
        ));
        assert!(matches!(
            verdict("yes", 0.4, "en", &c, 0.6, Some(0.2)),
            Verdict::Confirm { .. }
        ));
        assert!(matches!(
            verdict("yes", 0.4, "en", &c, 0.6, None),
            Verdict::NoMatch { heard: Some(_) }
        ));
        assert_eq!(
            verdict("banana", 1.0, "en", &c, 0.6, Some(0.2)),
            Verdict::NoMatch { heard: None }
        );
    }

    #[test]
    fn synonyms_and_globals() {
        let m = classify("Yeah, sure", "en", &confirm()).unwrap();
        assert_eq!((m.intent.as_str(), m.score), ("confirm", SYNONYM_SCORE));
        assert_eq!(intent("Конечно", "ru").unwrap(), "confirm");
        assert_eq!(intent("Звісно", "uk").unwrap(), "confirm");
        assert_eq!(intent("Скасувати", "uk").unwrap(), "cancel");
        assert_eq!(intent("Повторите, пожалуйста", "ru").unwrap(), "repeat");
        assert_eq!(intent("Соедините с оператором", "ru").unwrap(), "operator");
        assert_eq!(intent("I want a real person", "en").unwrap(), "operator");
        // Synonym groups of another language do not apply.
        assert_eq!(intent("конечно", "en"), None);
    }

    #[test]
    fn near_misses_count_but_short_words_must_be_exact() {
        let m = classify("Подтвержаю", "ru", &intents(&[("c", &["подтверждаю"])])).unwrap();
        assert!(m.score > 0.7 && m.score < 1.0, "{m:?}");
        assert_eq!(intent("на", "ru"), None);
        assert_eq!(intent("so", "en"), None);
        assert!(classify("operater", "en", &confirm()).is_some());
    }

    #[test]
    fn ambiguity_lowers_the_score_and_the_last_word_wins_ties() {
        let m = classify("yes no", "en", &confirm()).unwrap();
        assert!(m.score < 1.0);
        assert_eq!(m.intent, "cancel");
        assert_eq!(classify("", "en", &confirm()), None);
        assert_eq!(classify("...", "en", &confirm()), None);
    }
}
