#!/usr/bin/env bash
# Regenerates the curated prompt set under audio/ (see audio/ATTRIBUTION.md).
#
#   en, ru: real human recordings copied UNCHANGED from Debian's Asterisk core sound
#           packages (8 kHz, 16-bit, mono WAV).
#   uk:     no Ukrainian set exists in Debian; synthetic espeak-ng placeholders, listed in
#           audio/uk/SYNTHETIC.txt so the scenario linter can flag them until a human records
#           them.
#
# Needs: apt-get (download only, no root), dpkg-deb, espeak-ng, sox.
# Usage: scripts/fetch-audio.sh [--sounds-root DIR]
#   --sounds-root DIR  use an already unpacked tree (DIR/usr/share/asterisk/sounds/...)
#                      instead of downloading the .deb packages.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$repo/audio"
root=""
if [[ "${1:-}" == "--sounds-root" ]]; then
    root="$2"
fi

if [[ -z "$root" ]]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && apt-get download asterisk-core-sounds-en-wav asterisk-core-sounds-ru-wav)
    for deb in "$work"/*.deb; do
        dpkg-deb -x "$deb" "$work/x"
        echo "unpacked $(basename "$deb")"
    done
    root="$work/x"
fi
sounds="$root/usr/share/asterisk/sounds"
src_en="$sounds/en_US_f_Allison"
src_ru="$sounds/ru_RU_f_IvrvoiceRU"

# Phrases (same names in every language).
phrases=(
    hello your number is if-correct-press vm-press for cancelled auth-thankyou goodbye
    please-try-again pm-invalid-option im-sorry one-moment-please transfer pbx-transfer
    you-entered vm-goodbye vm-tocancel to-call-this-number please-try-call-later vm-no
)
digits=(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 30 40 50 60 70 80 90
    hundred thousand million oh star pound
)

copy_set() { # copy_set SRC_DIR LANG [extra digit names...]
    local src="$1" lang="$2"
    shift 2
    mkdir -p "$out/$lang/digits"
    for p in "${phrases[@]}"; do
        local from="$src/$p.wav"
        # The ru set names this phrase pls-try-call-later; keep one name across languages.
        if [[ ! -f "$from" && "$p" == please-try-call-later ]]; then
            from="$src/pls-try-call-later.wav"
        fi
        cp "$from" "$out/$lang/$p.wav"
    done
    for d in "${digits[@]}" "$@"; do
        cp "$src/digits/$d.wav" "$out/$lang/digits/$d.wav"
    done
}

rm -rf "$out/en" "$out/ru" "$out/uk"
copy_set "$src_en" en
copy_set "$src_ru" ru 1n 2n # feminine "одна" / "две"; en has no such forms

# Ukrainian placeholders: name|text. Translations follow the English recordings' wording.
uk_text=(
    "hello|Добрий день."
    "your|ваш"
    "number|номер"
    "if-correct-press|Якщо це правильно, натисніть"
    "vm-press|Натисніть"
    "for|для"
    "cancelled|скасовано"
    "auth-thankyou|Дякуємо."
    "goodbye|До побачення."
    "please-try-again|Будь ласка, спробуйте ще раз."
    "pm-invalid-option|Ви обрали недійсний варіант."
    "im-sorry|Вибачте."
    "one-moment-please|Хвилинку, будь ласка."
    "transfer|Будь ласка, зачекайте, я з'єдную вас із цим номером."
    "pbx-transfer|переведення дзвінка"
    "you-entered|Ви ввели"
    "vm-goodbye|До побачення."
    "vm-tocancel|або решітку, щоб скасувати"
    "to-call-this-number|Щоб зателефонувати на цей номер, натисніть"
    "please-try-call-later|Будь ласка, зателефонуйте пізніше."
    "vm-no|ні"
    "digits/0|нуль"
    "digits/1|один"
    "digits/1n|одна"
    "digits/2|два"
    "digits/2n|дві"
    "digits/3|три"
    "digits/4|чотири"
    "digits/5|п'ять"
    "digits/6|шість"
    "digits/7|сім"
    "digits/8|вісім"
    "digits/9|дев'ять"
    "digits/10|десять"
    "digits/11|одинадцять"
    "digits/12|дванадцять"
    "digits/13|тринадцять"
    "digits/14|чотирнадцять"
    "digits/15|п'ятнадцять"
    "digits/16|шістнадцять"
    "digits/17|сімнадцять"
    "digits/18|вісімнадцять"
    "digits/19|дев'ятнадцять"
    "digits/20|двадцять"
    "digits/30|тридцять"
    "digits/40|сорок"
    "digits/50|п'ятдесят"
    "digits/60|шістдесят"
    "digits/70|сімдесят"
    "digits/80|вісімдесят"
    "digits/90|дев'яносто"
    "digits/hundred|сто"
    "digits/thousand|тисяча"
    "digits/million|мільйон"
    "digits/oh|нуль"
    "digits/star|зірочка"
    "digits/pound|решітка"
)
mkdir -p "$out/uk/digits"
tmp="$(mktemp --suffix=.wav)"
: >"$out/uk/SYNTHETIC.txt"
for entry in "${uk_text[@]}"; do
    name="${entry%%|*}"
    text="${entry#*|}"
    espeak-ng -v uk -w "$tmp" "$text"
    # 8 kHz, mono, 16-bit; sox's `rate` applies its own anti-alias low-pass. Peak-normalised
    # to -3 dBFS (close to the Asterisk sets) so resampling cannot clip; -D (no dither) keeps
    # the output byte-for-byte reproducible.
    sox -D "$tmp" -r 8000 -c 1 -b 16 "$out/uk/$name.wav" gain -n -3
    echo "$name" >>"$out/uk/SYNTHETIC.txt"
done
rm -f "$tmp"
# "is": like the ru set (Russian drops the copula), Ukrainian says "ваш номер …" without
# one, so the prompt is deliberately empty: nothing to record, not listed as synthetic.
sox -n -r 8000 -c 1 -b 16 "$out/uk/is.wav" trim 0 0

du -sh "$out"
