#!/usr/bin/env bash
# Regenerates the curated prompt set under audio/ (see audio/ATTRIBUTION.md).
#
#   en, ru: real human recordings copied UNCHANGED from Debian's Asterisk core sound
#           packages (8 kHz, 16-bit, mono WAV).
#   uk:     no Ukrainian set exists in Debian; synthetic espeak-ng placeholders, listed in
#           audio/uk/SYNTHETIC.txt so the scenario linter can flag them until a human records
#           them.
#
# On top of the base set it adds the say-as fragments (numbers, money, dates, times in en,
# ru, uk) and the shop phrases the bundled scenarios use: human recordings where the Asterisk
# sets have them, espeak-ng placeholders (listed in audio/<lang>/SYNTHETIC.txt) where not.
#
# Needs: apt-get (download only, no root), dpkg-deb, espeak-ng, sox.
# Usage: scripts/fetch-audio.sh [--sounds-root DIR] [--keep-existing]
#   --sounds-root DIR  use an already unpacked tree (DIR/usr/share/asterisk/sounds/...)
#                      instead of downloading the .deb packages.
#   --keep-existing    add missing files only: nothing under audio/ is deleted or rewritten
#                      (use it to add fragments without touching recordings already there).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$repo/audio"
root=""
keep=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --sounds-root) root="$2"; shift 2 ;;
        --keep-existing) keep=1; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

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

if [[ $keep == 0 ]]; then
rm -rf "$out/en" "$out/ru" "$out/uk"
copy_set "$src_en" en
copy_set "$src_ru" ru 1n 2n # feminine "одна" / "две"; en has no such forms
fi

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
if [[ $keep == 0 ]]; then
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
# "is": like the ru set (Russian drops the copula), Ukrainian says "ваш номер …" without
# one, so the prompt is deliberately empty: nothing to record, not listed as synthetic.
sox -n -r 8000 -c 1 -b 16 "$out/uk/is.wav" trim 0 0
fi

# ---------------------------------------------------------------------------------------
# Extras: say-as fragments and shop phrases.

mark_synthetic() { # mark_synthetic LANG NAME
    local list="$out/$1/SYNTHETIC.txt"
    touch "$list"
    grep -qxF "$2" "$list" || echo "$2" >>"$list"
}

synth() { # synth LANG NAME TEXT — an espeak-ng placeholder, listed as synthetic
    local lang="$1" name="$2" text="$3" voice
    local dest="$out/$lang/$name.wav"
    case "$lang" in en) voice=en-us ;; *) voice="$lang" ;; esac
    mark_synthetic "$lang" "$name"
    if [[ $keep == 1 && -f "$dest" ]]; then return; fi
    mkdir -p "$(dirname "$dest")"
    espeak-ng -v "$voice" -w "$tmp" "$text"
    sox -D "$tmp" -r 8000 -c 1 -b 16 "$dest" gain -n -3
}

synth_list() { # synth_list LANG ENTRY... (each "name|text")
    local lang="$1" entry
    shift
    for entry in "$@"; do
        synth "$lang" "${entry%%|*}" "${entry#*|}"
    done
}

human() { # human SRC_DIR LANG NAME [SRC_NAME] — an unmodified copy of a human recording
    local src="$1" lang="$2" name="$3" from="${4:-$3}"
    local dest="$out/$lang/$name.wav"
    if [[ $keep == 1 && -f "$dest" ]]; then return; fi
    mkdir -p "$(dirname "$dest")"
    cp "$src/$from.wav" "$dest"
}

# Human recordings from the Asterisk sets: ordinals, months, weekdays, times, "dollars",
# "and", the recording tone, "please hold".
for n in $(seq 1 20) 30; do human "$src_en" en "digits/h-$n"; done
for m in $(seq 0 11); do human "$src_en" en "digits/mon-$m"; done
for d in $(seq 0 6); do
    human "$src_en" en "digits/day-$d"
    human "$src_ru" ru "digits/day-$d" # nominative «понедельник»…
done
for n in oclock a-m p-m minus dollars; do human "$src_en" en "digits/$n"; done
human "$src_ru" ru digits/minus
for lang in en ru; do
    src="$src_en"; [[ $lang == ru ]] && src="$src_ru"
    human "$src" "$lang" beep
    human "$src" "$lang" pls-hold-while-try
done
human "$src_en" en vm-and
# The tone is not language-specific: uk uses the en set's (CC-BY-SA, unmodified).
human "$src_en" uk beep

# Say-as fragments no human recording has.
ru_fragments=(
    "digits/200|двести" "digits/300|триста" "digits/400|четыреста" "digits/500|пятьсот"
    "digits/600|шестьсот" "digits/700|семьсот" "digits/800|восемьсот" "digits/900|девятьсот"
    "digits/thousand-few|тысячи" "digits/thousand-many|тысяч"
    "digits/million-few|миллиона" "digits/million-many|миллионов"
    "ordinal/1|первого" "ordinal/2|второго" "ordinal/3|третьего" "ordinal/4|четвёртого"
    "ordinal/5|пятого" "ordinal/6|шестого" "ordinal/7|седьмого" "ordinal/8|восьмого"
    "ordinal/9|девятого" "ordinal/10|десятого" "ordinal/11|одиннадцатого"
    "ordinal/12|двенадцатого" "ordinal/13|тринадцатого" "ordinal/14|четырнадцатого"
    "ordinal/15|пятнадцатого" "ordinal/16|шестнадцатого" "ordinal/17|семнадцатого"
    "ordinal/18|восемнадцатого" "ordinal/19|девятнадцатого" "ordinal/20|двадцатого"
    "ordinal/30|тридцатого" "ordinal/40|сорокового" "ordinal/50|пятидесятого"
    "ordinal/60|шестидесятого" "ordinal/70|семидесятого" "ordinal/80|восьмидесятого"
    "ordinal/90|девяностого" "ordinal/2000|двухтысячного" "date/year|года"
    "date/month-1|января" "date/month-2|февраля" "date/month-3|марта" "date/month-4|апреля"
    "date/month-5|мая" "date/month-6|июня" "date/month-7|июля" "date/month-8|августа"
    "date/month-9|сентября" "date/month-10|октября" "date/month-11|ноября"
    "date/month-12|декабря"
    "time/hour-one|час" "time/hour-few|часа" "time/hour-many|часов"
    "time/minute-one|минута" "time/minute-few|минуты" "time/minute-many|минут"
    "money/rub-one|рубль" "money/rub-few|рубля" "money/rub-many|рублей"
    "money/rub-cents-one|копейка" "money/rub-cents-few|копейки" "money/rub-cents-many|копеек"
    "money/uah-one|гривна" "money/uah-few|гривны" "money/uah-many|гривен"
    "money/uah-cents-one|копейка" "money/uah-cents-few|копейки" "money/uah-cents-many|копеек"
    "money/usd-one|доллар" "money/usd-few|доллара" "money/usd-many|долларов"
    "money/usd-cents-one|цент" "money/usd-cents-few|цента" "money/usd-cents-many|центов"
    "money/eur|евро"
    "money/eur-cents-one|цент" "money/eur-cents-few|цента" "money/eur-cents-many|центов"
)
uk_fragments=(
    "digits/200|двісті" "digits/300|триста" "digits/400|чотириста" "digits/500|п'ятсот"
    "digits/600|шістсот" "digits/700|сімсот" "digits/800|вісімсот" "digits/900|дев'ятсот"
    "digits/thousand-few|тисячі" "digits/thousand-many|тисяч"
    "digits/million-few|мільйони" "digits/million-many|мільйонів" "digits/minus|мінус"
    "digits/day-0|неділя" "digits/day-1|понеділок" "digits/day-2|вівторок"
    "digits/day-3|середа" "digits/day-4|четвер" "digits/day-5|п'ятниця" "digits/day-6|субота"
    "ordinal/1|першого" "ordinal/2|другого" "ordinal/3|третього" "ordinal/4|четвертого"
    "ordinal/5|п'ятого" "ordinal/6|шостого" "ordinal/7|сьомого" "ordinal/8|восьмого"
    "ordinal/9|дев'ятого" "ordinal/10|десятого" "ordinal/11|одинадцятого"
    "ordinal/12|дванадцятого" "ordinal/13|тринадцятого" "ordinal/14|чотирнадцятого"
    "ordinal/15|п'ятнадцятого" "ordinal/16|шістнадцятого" "ordinal/17|сімнадцятого"
    "ordinal/18|вісімнадцятого" "ordinal/19|дев'ятнадцятого" "ordinal/20|двадцятого"
    "ordinal/30|тридцятого" "ordinal/40|сорокового" "ordinal/50|п'ятдесятого"
    "ordinal/60|шістдесятого" "ordinal/70|сімдесятого" "ordinal/80|вісімдесятого"
    "ordinal/90|дев'яностого" "ordinal/2000|двохтисячного" "date/year|року"
    "date/month-1|січня" "date/month-2|лютого" "date/month-3|березня" "date/month-4|квітня"
    "date/month-5|травня" "date/month-6|червня" "date/month-7|липня" "date/month-8|серпня"
    "date/month-9|вересня" "date/month-10|жовтня" "date/month-11|листопада"
    "date/month-12|грудня"
    "time/hour-one|година" "time/hour-few|години" "time/hour-many|годин"
    "time/minute-one|хвилина" "time/minute-few|хвилини" "time/minute-many|хвилин"
    "money/rub-one|рубль" "money/rub-few|рублі" "money/rub-many|рублів"
    "money/rub-cents-one|копійка" "money/rub-cents-few|копійки" "money/rub-cents-many|копійок"
    "money/uah-one|гривня" "money/uah-few|гривні" "money/uah-many|гривень"
    "money/uah-cents-one|копійка" "money/uah-cents-few|копійки" "money/uah-cents-many|копійок"
    "money/usd-one|долар" "money/usd-few|долари" "money/usd-many|доларів"
    "money/usd-cents-one|цент" "money/usd-cents-few|центи" "money/usd-cents-many|центів"
    "money/eur|євро"
    "money/eur-cents-one|цент" "money/eur-cents-few|центи" "money/eur-cents-many|центів"
)
en_fragments=(
    "money/usd-one|dollar" "money/usd-cents-one|cent" "money/usd-cents-other|cents"
    "money/eur-one|euro" "money/eur-other|euros" "money/eur-cents-one|cent"
    "money/eur-cents-other|cents" "money/rub-one|ruble" "money/rub-other|rubles"
    "money/rub-cents-one|kopeck" "money/rub-cents-other|kopecks" "money/uah-one|hryvnia"
    "money/uah-other|hryvnias" "money/uah-cents-one|kopiyka" "money/uah-cents-other|kopiykas"
)
synth_list ru "${ru_fragments[@]}"
synth_list uk "${uk_fragments[@]}"
synth_list en "${en_fragments[@]}"
synth uk pls-hold-while-try "Зачекайте, будь ласка, я вас з'єдную."

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
