#!/usr/bin/env bash
# Regenerates the prompt set under audio/ (see audio/ATTRIBUTION.md), in two steps:
#
#   1. Human recordings: every line of audio/SOURCES.tsv — the one table that maps the sets'
#      Asterisk file names to the names ivrflow uses — is copied UNCHANGED from its set and
#      checked against the SHA-256 recorded there. Sets:
#        debian-en   asterisk-core-sounds-en-wav 1.6.1-1 (Debian; en, Allison Smith)
#        debian-ru   asterisk-core-sounds-ru-wav 1.6.1-1 (Debian; ru, IvrvoiceRU)
#        vikdon-uk   github.com/vikdon/asterisk-core-sounds-uk @ fad9eda (uk, Tetyana Ivankova)
#        pbxware-ru  github.com/pbxware/asterisk-sounds-additional @ 1bc5821 (ru, same voice)
#   2. Synthetic placeholders (espeak-ng, then sox) for the phrases below that no line of
#      SOURCES.tsv provides, each listed in audio/<lang>/SYNTHETIC.txt so that `ivrflow
#      validate` reports it until a human records it. To replace a placeholder: add the
#      recording to SOURCES.tsv (lang, name, set, file, sha256) and run this again.
#
# Needs: apt-get (download only, no root), dpkg-deb, git (or --prompts-root), sha256sum,
# espeak-ng, sox.
# Usage: scripts/fetch-audio.sh [--sounds-root DIR] [--prompts-root DIR] [--out DIR]
#                               [--keep-existing]
#   --sounds-root DIR   an already unpacked tree of the two Debian packages
#                       (DIR/usr/share/asterisk/sounds/...) instead of downloading them.
#   --prompts-root DIR  DIR/uk and DIR/ru-additional are checkouts of the two GitHub sets at
#                       the commits above, instead of cloning them.
#   --out DIR           write the prompt set there instead of audio/ (SOURCES.tsv is always
#                       read from audio/).
#   --keep-existing     add missing files only: nothing under the output is deleted or
#                       rewritten (use it to add fragments without touching recordings).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
table="$repo/audio/SOURCES.tsv"
out="$repo/audio"
root=""
prompts=""
keep=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --sounds-root) root="$2"; shift 2 ;;
        --prompts-root) prompts="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --keep-existing) keep=1; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [[ -z "$root" ]]; then
    (cd "$work" && apt-get download asterisk-core-sounds-en-wav asterisk-core-sounds-ru-wav)
    for deb in "$work"/*.deb; do
        dpkg-deb -x "$deb" "$work/x"
        echo "unpacked $(basename "$deb")"
    done
    root="$work/x"
fi
if [[ -z "$prompts" ]]; then
    prompts="$work/prompts"
    clone() { # clone URL COMMIT DIR
        git clone --quiet "$1" "$3"
        git -C "$3" checkout --quiet "$2"
    }
    clone https://github.com/vikdon/asterisk-core-sounds-uk fad9eda "$prompts/uk"
    clone https://github.com/pbxware/asterisk-sounds-additional 1bc5821 "$prompts/ru-additional"
fi
sounds="$root/usr/share/asterisk/sounds"

set_dir() { # set_dir SET — where the set's files are
    case "$1" in
        debian-en) echo "$sounds/en_US_f_Allison" ;;
        debian-ru) echo "$sounds/ru_RU_f_IvrvoiceRU" ;;
        vikdon-uk) echo "$prompts/uk" ;;
        pbxware-ru) echo "$prompts/ru-additional" ;;
        *) echo "unknown set $1 in $table" >&2; exit 1 ;;
    esac
}

if [[ $keep == 0 ]]; then
    rm -rf "$out/en" "$out/ru" "$out/uk"
fi
mkdir -p "$out/en" "$out/ru" "$out/uk"

# ---------------------------------------------------------------------------------------
# 1. Human recordings, by the table.
declare -A human_names=()
while IFS=$'\t' read -r lang name set file sha; do
    [[ -z "$lang" || "$lang" == \#* ]] && continue
    human_names["$lang/$name"]=1
    dest="$out/$lang/$name.wav"
    if [[ $keep == 1 && -f "$dest" ]]; then continue; fi
    mkdir -p "$(dirname "$dest")"
    cp "$(set_dir "$set")/$file" "$dest"
    if ! echo "$sha  $dest" | sha256sum --check --quiet --status; then
        echo "$set/$file is not the recording SOURCES.tsv names for $lang/$name" >&2
        exit 1
    fi
done <"$table"
# The licences and credits of the GitHub sets travel with their recordings.
cp "$prompts/uk/LICENSE-asterisk-core-uk" "$prompts/uk/CREDITS-asterisk-core-uk" "$out/uk/"
cp "$prompts/ru-additional/LICENSE" "$out/ru/LICENSE-asterisk-sounds-additional"
cp "$prompts/ru-additional/CREDITS" "$out/ru/CREDITS-asterisk-sounds-additional"

# ---------------------------------------------------------------------------------------
# 2. Placeholders for what no human has recorded yet.
tmp="$(mktemp --suffix=.wav)"
if [[ $keep == 0 ]]; then
    for lang in en ru uk; do : >"$out/$lang/SYNTHETIC.txt"; done
fi

mark_synthetic() { # mark_synthetic LANG NAME
    local list="$out/$1/SYNTHETIC.txt"
    touch "$list"
    grep -qxF "$2" "$list" || echo "$2" >>"$list"
}

synth() { # synth LANG NAME TEXT — an espeak-ng placeholder, unless a human recorded it
    local lang="$1" name="$2" text="$3" voice
    local dest="$out/$lang/$name.wav"
    if [[ -n "${human_names["$lang/$name"]:-}" ]]; then return; fi
    case "$lang" in en) voice=en-us ;; *) voice="$lang" ;; esac
    mark_synthetic "$lang" "$name"
    if [[ $keep == 1 && -f "$dest" ]]; then return; fi
    mkdir -p "$(dirname "$dest")"
    espeak-ng -v "$voice" -w "$tmp" "$text"
    # 8 kHz, mono, 16-bit; sox's `rate` applies its own anti-alias low-pass. Peak-normalised
    # to -3 dBFS (close to the Asterisk sets) so resampling cannot clip; -D (no dither) keeps
    # the output byte-for-byte reproducible.
    sox -D "$tmp" -r 8000 -c 1 -b 16 "$dest" gain -n -3
}

synth_list() { # synth_list LANG ENTRY... (each "name|text")
    local lang="$1" entry
    shift
    for entry in "$@"; do
        synth "$lang" "${entry%%|*}" "${entry#*|}"
    done
}

# Ukrainian words of the base set that the Ukrainian recordings do not have: the feminine
# «одна», «дві» (the set's 1n/2n are neuter), zero as "oh", the # key (the set's `pound` is
# the currency).
uk_base=("digits/1f|одна" "digits/2f|дві" "digits/oh|нуль" "digits/pound|решітка")
synth_list uk "${uk_base[@]}"

# Say-as fragments no human recording has.
ru_fragments=(
    "ordinal/1|первого" "ordinal/2|второго" "ordinal/3|третьего" "ordinal/4|четвёртого"
    "ordinal/5|пятого" "ordinal/6|шестого" "ordinal/7|седьмого" "ordinal/8|восьмого"
    "ordinal/9|девятого" "ordinal/10|десятого" "ordinal/11|одиннадцатого"
    "ordinal/12|двенадцатого" "ordinal/13|тринадцатого" "ordinal/14|четырнадцатого"
    "ordinal/15|пятнадцатого" "ordinal/16|шестнадцатого" "ordinal/17|семнадцатого"
    "ordinal/18|восемнадцатого" "ordinal/19|девятнадцатого" "ordinal/20|двадцатого"
    "ordinal/30|тридцатого" "ordinal/40|сорокового" "ordinal/50|пятидесятого"
    "ordinal/60|шестидесятого" "ordinal/70|семидесятого" "ordinal/80|восьмидесятого"
    "ordinal/90|девяностого" "ordinal/2000|двухтысячного" "date/year|года"
    "money/uah-one|гривна" "money/uah-few|гривны" "money/uah-many|гривен"
    "money/usd-few|доллара" "money/usd-cents-one|цент" "money/usd-cents-few|цента"
    "money/usd-cents-many|центов" "money/eur-cents-one|цент" "money/eur-cents-few|цента"
    "money/eur-cents-many|центов"
)
uk_fragments=(
    "digits/200|двісті" "digits/300|триста" "digits/400|чотириста" "digits/500|п'ятсот"
    "digits/600|шістсот" "digits/700|сімсот" "digits/800|вісімсот" "digits/900|дев'ятсот"
    "digits/thousand-many|тисяч" "digits/million-many|мільйонів" "ordinal/1|першого"
    "ordinal/2|другого" "ordinal/3|третього" "ordinal/4|четвертого" "ordinal/5|п'ятого"
    "ordinal/6|шостого" "ordinal/7|сьомого" "ordinal/8|восьмого" "ordinal/9|дев'ятого"
    "ordinal/10|десятого" "ordinal/11|одинадцятого" "ordinal/12|дванадцятого"
    "ordinal/13|тринадцятого" "ordinal/14|чотирнадцятого" "ordinal/15|п'ятнадцятого"
    "ordinal/16|шістнадцятого" "ordinal/17|сімнадцятого" "ordinal/18|вісімнадцятого"
    "ordinal/19|дев'ятнадцятого" "ordinal/20|двадцятого" "ordinal/30|тридцятого"
    "ordinal/40|сорокового" "ordinal/50|п'ятдесятого" "ordinal/60|шістдесятого"
    "ordinal/70|сімдесятого" "ordinal/80|вісімдесятого" "ordinal/90|дев'яностого"
    "ordinal/2000|двохтисячного" "date/year|року" "time/hour-one|година"
    "time/hour-few|години" "time/minute-few|хвилини" "money/rub-one|рубль"
    "money/rub-few|рублі" "money/rub-many|рублів" "money/rub-cents-one|копійка"
    "money/rub-cents-few|копійки" "money/rub-cents-many|копійок" "money/uah-one|гривня"
    "money/uah-few|гривні" "money/uah-many|гривень" "money/uah-cents-one|копійка"
    "money/uah-cents-few|копійки" "money/uah-cents-many|копійок" "money/usd-one|долар"
    "money/usd-few|долари" "money/usd-cents-one|цент" "money/usd-cents-few|центи"
    "money/usd-cents-many|центів" "money/eur|євро" "money/eur-cents-one|цент"
    "money/eur-cents-few|центи" "money/eur-cents-many|центів"
)
en_fragments=(
    "money/usd-one|dollar" "money/usd-cents-one|cent" "money/usd-cents-other|cents"
    "money/eur-one|euro" "money/eur-other|euros" "money/eur-cents-one|cent"
    "money/eur-cents-other|cents" "money/rub-one|ruble" "money/rub-other|rubles"
    "money/rub-cents-one|kopeck" "money/rub-cents-other|kopecks" "money/uah-one|hryvnia"
    "money/uah-other|hryvnias" "money/uah-cents-one|kopiyka"
    "money/uah-cents-other|kopiykas"
)
synth_list ru "${ru_fragments[@]}"
synth_list uk "${uk_fragments[@]}"
synth_list en "${en_fragments[@]}"

# Shop phrases of the bundled scenarios (scenarios/*.yaml), until a voice talent records
# them. Each list: name|text.
shop_en=(
    "names/anna|Anna" "names/ivan|Ivan"
    "shop/item-one|item" "shop/item-few|items" "shop/item-many|items"
    "shop/total|for a total of" "shop/delivery|delivery on"
    "shop/to-change-order|to change the order." "shop/did-you-say|Did you say"
    "shop/confirm-order|confirm the order" "shop/cancel-order|cancel the order"
    "shop/change-order|change the order" "shop/otherwise-press|otherwise press"
    "shop/operator-will-call|An operator will call you back shortly."
    "shop/cart-reminder|You left some items in your shopping cart."
    "shop/discount-today|Today only, we can give you a discount of"
    "shop/percent-one|percent" "shop/percent-few|percent" "shop/percent-many|percent"
    "shop/on|on" "groups/shoes|shoes" "groups/cosmetics|cosmetics"
    "groups/electronics|electronics"
    "shop/order-now|Would you like to place the order now? Press 1 for yes, or 2 for no."
    "shop/stop-calls|To stop these calls, press 9."
    "shop/link-sent|We will send you a link to your cart by text message."
    "shop/promo-code-is|Your personal promo code is"
    "shop/valid-until|It is valid today until"
    "shop/repeat-or-ok|To hear the code again, press star or say repeat. If you have written it down, press 1."
    "shop/will-not-call|We will not call you again."
    "shop/survey-intro|Your order has been delivered. We would like to ask you a few short questions."
    "shop/yes-no|Press 1 or say yes. Press 2 or say no."
    "shop/q-quality|Do you have any complaints about the quality of the goods?"
    "shop/q-late|Was the delivery late?" "shop/q-polite|Was the courier polite?"
    "shop/describe-problem|Please describe the problem after the tone."
    "shop/q-suggestion|Do you have a suggestion for our website? Please speak after the tone."
    "shop/manager-will-call|We are sorry. A manager will call you back."
    "shop/thanks-for-answers|Thank you for your answers."
    "shop/menu-department|For sales, press 1 or say sales. To change an order, press 2 or say orders. For store addresses, press 3 or say addresses."
    "shop/dept-sales|sales" "shop/dept-orders|order changes"
    "shop/dept-addresses|store addresses"
    "shop/announce-caller|Caller speaks English."
    "shop/store-addresses|Our stores are at 12 Main Street and 5 Market Square, open daily from 10 to 21."
    "shop/closed-now|We are closed right now." "shop/no-agent|All our agents are busy."
    "shop/leave-request|Please tell us after the tone how we can help you."
    "shop/we-will-call-back|We will call you back" "shop/callback-time|at"
    "shop/call-back-soon|We will call you back as soon as possible."
    "shop/back-in-stock|Good news! The item you were waiting for is back in stock:"
    "shop/price|The price is"
    "shop/order-link-offer|To get a link to order it by text message, press 1. If you are not interested, press 2."
    "products/sneakers|running sneakers" "products/face-cream|face cream"
)
shop_ru=(
    "names/anna|Анна" "names/ivan|Иван"
    "shop/item-one|товар" "shop/item-few|товара" "shop/item-many|товаров"
    "shop/total|на сумму" "shop/delivery|доставка"
    "shop/to-change-order|чтобы изменить заказ." "shop/did-you-say|Вы сказали"
    "shop/confirm-order|подтвердить заказ" "shop/cancel-order|отменить заказ"
    "shop/change-order|изменить заказ" "shop/otherwise-press|иначе нажмите"
    "shop/operator-will-call|Оператор перезвонит вам в ближайшее время."
    "shop/cart-reminder|Вы оставили товары в корзине."
    "shop/discount-today|Только сегодня мы можем дать вам скидку"
    "shop/percent-one|процент" "shop/percent-few|процента" "shop/percent-many|процентов"
    "shop/on|на" "groups/shoes|обувь" "groups/cosmetics|косметику"
    "groups/electronics|электронику"
    "shop/order-now|Хотите оформить заказ сейчас? Нажмите 1, если да, или 2, если нет."
    "shop/stop-calls|Чтобы больше не получать наши звонки, нажмите 9."
    "shop/link-sent|Мы отправим вам ссылку на корзину в СМС."
    "shop/promo-code-is|Ваш персональный промокод"
    "shop/valid-until|Промокод действует сегодня. Время окончания:"
    "shop/repeat-or-ok|Чтобы прослушать код ещё раз, нажмите звёздочку или скажите: повторите. Если вы записали код, нажмите 1."
    "shop/will-not-call|Мы больше не будем вам звонить."
    "shop/survey-intro|Ваш заказ доставлен. Мы хотим задать вам несколько коротких вопросов."
    "shop/yes-no|Нажмите 1 или скажите да. Нажмите 2 или скажите нет."
    "shop/q-quality|Есть ли у вас претензии к качеству товара?"
    "shop/q-late|Доставка опоздала?" "shop/q-polite|Курьер был вежлив?"
    "shop/describe-problem|Пожалуйста, опишите проблему после сигнала."
    "shop/q-suggestion|Есть ли у вас пожелания к нашему сайту? Говорите после сигнала."
    "shop/manager-will-call|Приносим извинения. Менеджер вам перезвонит."
    "shop/thanks-for-answers|Спасибо за ваши ответы."
    "shop/menu-department|Отдел продаж: нажмите 1 или скажите продажи. Изменить заказ: нажмите 2 или скажите заказ. Адреса магазинов: нажмите 3 или скажите адреса."
    "shop/dept-sales|отдел продаж" "shop/dept-orders|изменение заказа"
    "shop/dept-addresses|адреса магазинов"
    "shop/announce-caller|Клиент говорит по-русски."
    "shop/store-addresses|Наши магазины: улица Главная, 12, и Рыночная площадь, 5. Работаем ежедневно с 10 до 21."
    "shop/closed-now|Сейчас мы не работаем." "shop/no-agent|Все операторы заняты."
    "shop/leave-request|Пожалуйста, после сигнала расскажите, чем мы можем помочь."
    "shop/we-will-call-back|Мы перезвоним вам" "shop/callback-time|время звонка:"
    "shop/call-back-soon|Мы перезвоним вам в ближайшее время."
    "shop/back-in-stock|Хорошая новость! Товар, который вы ждали, снова в продаже:"
    "shop/price|Цена"
    "shop/order-link-offer|Чтобы получить ссылку для заказа в СМС, нажмите 1. Если вам это не интересно, нажмите 2."
    "products/sneakers|беговые кроссовки" "products/face-cream|крем для лица"
)
shop_uk=(
    "names/anna|Анна" "names/ivan|Іван"
    "shop/item-one|товар" "shop/item-few|товари" "shop/item-many|товарів"
    "shop/total|на суму" "shop/delivery|доставка"
    "shop/to-change-order|щоб змінити замовлення." "shop/did-you-say|Ви сказали"
    "shop/confirm-order|підтвердити замовлення" "shop/cancel-order|скасувати замовлення"
    "shop/change-order|змінити замовлення" "shop/otherwise-press|інакше натисніть"
    "shop/operator-will-call|Оператор передзвонить вам найближчим часом."
    "shop/cart-reminder|Ви залишили товари в кошику."
    "shop/discount-today|Тільки сьогодні ми можемо дати вам знижку"
    "shop/percent-one|відсоток" "shop/percent-few|відсотки" "shop/percent-many|відсотків"
    "shop/on|на" "groups/shoes|взуття" "groups/cosmetics|косметику"
    "groups/electronics|електроніку"
    "shop/order-now|Бажаєте оформити замовлення зараз? Натисніть 1, якщо так, або 2, якщо ні."
    "shop/stop-calls|Щоб більше не отримувати наших дзвінків, натисніть 9."
    "shop/link-sent|Ми надішлемо вам посилання на кошик в СМС."
    "shop/promo-code-is|Ваш персональний промокод"
    "shop/valid-until|Промокод діє сьогодні. Час закінчення:"
    "shop/repeat-or-ok|Щоб прослухати код ще раз, натисніть зірочку або скажіть: повторіть. Якщо ви записали код, натисніть 1."
    "shop/will-not-call|Ми більше не будемо вам дзвонити."
    "shop/survey-intro|Ваше замовлення доставлено. Ми хочемо поставити вам кілька коротких запитань."
    "shop/yes-no|Натисніть 1 або скажіть так. Натисніть 2 або скажіть ні."
    "shop/q-quality|Чи є у вас претензії до якості товару?"
    "shop/q-late|Доставка запізнилася?" "shop/q-polite|Кур'єр був ввічливий?"
    "shop/describe-problem|Будь ласка, опишіть проблему після сигналу."
    "shop/q-suggestion|Чи є у вас побажання до нашого сайту? Говоріть після сигналу."
    "shop/manager-will-call|Просимо вибачення. Менеджер вам передзвонить."
    "shop/thanks-for-answers|Дякуємо за ваші відповіді."
    "shop/menu-department|Відділ продажів: натисніть 1 або скажіть продажі. Змінити замовлення: натисніть 2 або скажіть замовлення. Адреси магазинів: натисніть 3 або скажіть адреси."
    "shop/dept-sales|відділ продажів" "shop/dept-orders|зміна замовлення"
    "shop/dept-addresses|адреси магазинів"
    "shop/announce-caller|Клієнт говорить українською."
    "shop/store-addresses|Наші магазини: вулиця Головна, 12, та Ринкова площа, 5. Працюємо щодня з 10 до 21."
    "shop/closed-now|Зараз ми не працюємо." "shop/no-agent|Усі оператори зайняті."
    "shop/leave-request|Будь ласка, після сигналу розкажіть, чим ми можемо допомогти."
    "shop/we-will-call-back|Ми передзвонимо вам" "shop/callback-time|час дзвінка:"
    "shop/call-back-soon|Ми передзвонимо вам найближчим часом."
    "shop/back-in-stock|Гарна новина! Товар, на який ви чекали, знову в продажу:"
    "shop/price|Ціна"
    "shop/order-link-offer|Щоб отримати посилання для замовлення в СМС, натисніть 1. Якщо вам це не цікаво, натисніть 2."
    "products/sneakers|бігові кросівки" "products/face-cream|крем для обличчя"
)
synth_list en "${shop_en[@]}"
synth_list ru "${shop_ru[@]}"
synth_list uk "${shop_uk[@]}"

# The language menu speaks each language in its own voice: one file, the same in every
# language directory.
menu_parts=("en-us|For English, press 1." "ru|Для русского языка нажмите 2." "uk|Для української мови натисніть 3.")
parts=()
for i in "${!menu_parts[@]}"; do
    part="$(mktemp --suffix=.wav)"
    espeak-ng -v "${menu_parts[$i]%%|*}" -w "$tmp" "${menu_parts[$i]#*|}"
    sox -D "$tmp" -r 8000 -c 1 -b 16 "$part" gain -n -3
    parts+=("$part")
done
menu="$(mktemp --suffix=.wav)"
sox -D "${parts[@]}" "$menu"
for lang in en ru uk; do
    mark_synthetic "$lang" shop/menu-language
    if [[ $keep == 1 && -f "$out/$lang/shop/menu-language.wav" ]]; then continue; fi
    mkdir -p "$out/$lang/shop"
    cp "$menu" "$out/$lang/shop/menu-language.wav"
done
rm -f "${parts[@]}" "$menu" "$tmp"

du -sh "$out"
